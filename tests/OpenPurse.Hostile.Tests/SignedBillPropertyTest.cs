using System.Globalization;
using System.Text;
using System.Text.Json;
using CsCheck;
using OpenPurse.Protocol;
using OpenPurse.Protocol.Jose;
using OpenPurse.Protocol.Messages;

namespace OpenPurse.Hostile.Tests;

/// <summary>
/// Round trip 1 with bills that a registered member store really signed (SIG1 verifies) but whose
/// content has one flaw: amounts out of range, lines that overflow when summed, negative and zero
/// lines that still sum to the amount, unknown currencies, absurd dates, another store's or mall's
/// name. The signature is not what refuses them, nor the card: each flaw is refused with its bill.*
/// code, every answer is below 500 with a documented code, and no money moves.
/// </summary>
public sealed class SignedBillPropertyTest(HostileSystem system) : IClassFixture<HostileSystem>
{
    /// <summary>Enough samples to meet every shape many times; a few seconds on two cores.</summary>
    private const int Iterations = 300;

    // A plausible bill (a few euros, dated now, valid for minutes, of its signer) with one flaw, or none.
    private static readonly Gen<HostileBill> s_bills = Gen.Select(
        Gen.Long[1, 2_000],
        Gen.Long[-300, 60],
        Gen.Long[60, 3_600],
        Gen.Enum<Flaw>(),
        Gen.OneOf(Gen.Long[0, 1_000], Gen.Long[0, long.MaxValue / 4]))
        .Select((amount, issued, lifetime, flaw, size) => HostileBill.With(amount, issued, lifetime, flaw, size));

    [Fact]
    public async Task StartSettlement_SignedHostileBills_RefusedAsBillsAndNothingMoves()
    {
        var before = await system.BooksAsync();
        await s_bills.SampleAsync(
            async bill =>
            {
                var now = DateTimeOffset.UtcNow;
                var signed = Jws.Sign(system.StoreKeys.For(HostileSystem.StoreId), bill.Payload(now), MessageTypes.Bill);
                var probe = Probe.Json("signed hostile bill", HttpMethod.Post, "/v1/settlements",
                    JsonSerializer.Serialize(new StartSettlementRequest(signed, SettlementProfile.Signed, system.Greeting(signed)), ProtocolJson.Options));
                var answer = await probe.SendAsync(system.Operator);
                Assert.Null(answer.Fault(DocumentedCodes.Operator));
                if (bill.ExpectedCode is { } code)
                {
                    Assert.True(answer.Status >= 400, $"A bill with the flaw {bill.Flaw} was answered {answer.Status}: {answer.Body}");
                    Assert.Equal(code, JsonDocument.Parse(answer.Body).RootElement.GetProperty("code").GetString());
                }
            },
            iter: Iterations,
            threads: 1,
            print: bill => bill.ToString());
        (await system.BooksAsync()).AssertUnchangedSince(before);
    }

    /// <summary>What is wrong with a bill.</summary>
    internal enum Flaw
    {
        None,
        OtherStore,
        OtherMall,
        UnknownCurrency,
        AmountNotPositive,
        AmountBeyondMax,
        NoLines,
        LineOfNoQuantity,
        NegativeOrZeroLine,
        LinesDoNotSum,
        LinesOverflow,
        Expired,
        IssuedInFuture,
        LivesTooLong,
    }

    /// <summary>A bill's content, from which its JSON is written as a store would sign it.</summary>
    internal sealed record HostileBill(Flaw Flaw, long Amount, string Currency, (int Quantity, long Minor)[] Lines, long IssuedOffsetSeconds, long LifetimeSeconds, string StoreId, string MallId)
    {
        private readonly string _orderNo = "hostile-" + Guid.NewGuid().ToString("N")[..16];

        /// <summary>The code the operator refuses the flaw with; null for a bill without one.</summary>
        public string? ExpectedCode => Flaw switch
        {
            Flaw.None => null,
            Flaw.OtherStore or Flaw.OtherMall => "bill.signature_invalid",
            Flaw.Expired => "bill.expired",
            Flaw.IssuedInFuture or Flaw.LivesTooLong => "bill.not_yet_valid",
            _ => "bill.malformed",
        };

        /// <summary>A bill of <paramref name="amount"/> EUR, of one line, with <paramref name="flaw"/> of the given size.</summary>
        public static HostileBill With(long amount, long issued, long lifetime, Flaw flaw, long size)
        {
            var bill = new HostileBill(flaw, amount, "EUR", [(1, amount)], issued, lifetime, HostileSystem.StoreId, Demo.DemoSystem.MallId);
            var small = 1 + (size % 1_000);
            return flaw switch
            {
                Flaw.None => bill,
                Flaw.OtherStore => bill with { StoreId = HostileSystem.OtherStoreId },
                Flaw.OtherMall => bill with { MallId = "another-mall" },
                Flaw.UnknownCurrency => bill with { Currency = size % 2 == 0 ? "XXX" : "eur" },
                Flaw.AmountNotPositive => bill with { Amount = -(size % 5_000), Lines = [(1, -(size % 5_000))] },
                Flaw.AmountBeyondMax => bill with { Amount = Money.MaxMinorUnits + small, Lines = [(1, Money.MaxMinorUnits + small)] },
                Flaw.NoLines => bill with { Lines = [] },
                Flaw.LineOfNoQuantity => bill with { Lines = [(-(int)(size % 3), amount)] },
                Flaw.NegativeOrZeroLine => bill with { Lines = size % 2 == 0 ? [(1, amount), (1, 0)] : [(1, amount + small), (1, -small)] },
                Flaw.LinesDoNotSum => bill with { Lines = [(1, amount + small)] },
                Flaw.LinesOverflow => bill with { Lines = [(1, Money.MaxMinorUnits), (1, Money.MaxMinorUnits), .. Enumerable.Repeat((1, Money.MaxMinorUnits), (int)(size % 8)), (1, amount)] },
                Flaw.Expired => bill with { IssuedOffsetSeconds = -(lifetime + 10 + size) },
                Flaw.IssuedInFuture => bill with { IssuedOffsetSeconds = 180 + size },
                Flaw.LivesTooLong => bill with { LifetimeSeconds = 86_400 + 10 + size },
                _ => throw new ArgumentOutOfRangeException(nameof(flaw)),
            };
        }

        public DateTimeOffset IssuedAt(DateTimeOffset now) => Clamp(now, IssuedOffsetSeconds);

        public DateTimeOffset ExpiresAt(DateTimeOffset now) => Clamp(IssuedAt(now), LifetimeSeconds);

        /// <summary>The bill's JSON, with every member as the protocol writes it.</summary>
        public byte[] Payload(DateTimeOffset now)
        {
            string Amount(long minor) => string.Create(CultureInfo.InvariantCulture, $$"""{"minorUnits":{{minor}},"currency":"{{Currency}}"}""");
            var items = string.Join(',', Lines.Select((line, i) => string.Create(CultureInfo.InvariantCulture, $$"""{"sku":"sku-{{i}}","title":"Line {{i}}","quantity":{{line.Quantity}},"amount":{{Amount(line.Minor)}}}""")));
            return Encoding.UTF8.GetBytes(
                $$"""{"orderNo":"{{_orderNo}}","storeId":"{{StoreId}}","mallId":"{{MallId}}","amount":{{Amount(this.Amount)}},"items":[{{items}}],"issuedAt":{{JsonSerializer.Serialize(IssuedAt(now))}},"expiresAt":{{JsonSerializer.Serialize(ExpiresAt(now))}}}""");
        }

        public override string ToString() =>
            $"{Flaw}: amount {Amount} {Currency}, lines [{string.Join(", ", Lines.Select(l => $"{l.Quantity} x {l.Minor}"))}], issued {IssuedOffsetSeconds:+#;-#;0} s, lifetime {LifetimeSeconds} s, store '{StoreId}', mall '{MallId}'";

        // An offset from a date, kept inside what a DateTimeOffset can hold.
        private static DateTimeOffset Clamp(DateTimeOffset from, long seconds)
        {
            var ticks = Int128.Clamp((Int128)from.UtcTicks + ((Int128)seconds * TimeSpan.TicksPerSecond), DateTimeOffset.MinValue.UtcTicks, DateTimeOffset.MaxValue.UtcTicks);
            return new DateTimeOffset((long)ticks, TimeSpan.Zero);
        }
    }
}
