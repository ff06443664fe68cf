using OpenPurse.Protocol.Messages;

namespace OpenPurse.Protocol.Tests;

/// <summary>Bill.AddsUp: the one check of a bill's lines that the operator and the wallet share.</summary>
public class BillTest
{
    private static Money Eur(long minor) => new(minor, Currency.Eur);

    private static Bill With(Money amount, params (int Quantity, Money Amount)[] lines) => new(
        "order-1", "shop", null, amount, [.. lines.Select((l, i) => new BillItem($"sku-{i}", "Item", l.Quantity, l.Amount))],
        DateTimeOffset.UnixEpoch, DateTimeOffset.UnixEpoch.AddMinutes(15));

    [Fact]
    public void AddsUp_PositiveLinesSummingToTheAmount()
    {
        Assert.True(With(Eur(1_750), (1, Eur(1_250)), (2, Eur(500))).AddsUp());
    }

    public static TheoryData<string, Bill> NotAddingUp => new()
    {
        { "a negative line under a positive total", With(Eur(1_000), (1, Eur(2_000)), (1, Eur(-1_000))) },
        { "a zero line", With(Eur(1_000), (1, Eur(1_000)), (1, Eur(0))) },
        { "a zero quantity", With(Eur(1_000), (0, Eur(1_000))) },
        { "a negative quantity", With(Eur(1_000), (-1, Eur(1_000))) },
        { "lines whose sum overflows", With(Eur(1_000), (1, new Money(Money.MaxMinorUnits, Currency.Eur)), (1, new Money(Money.MaxMinorUnits, Currency.Eur))) },
        { "a line in another currency", With(Eur(1_000), (1, new Money(1_000, Currency.Usd))) },
        { "lines not summing to the amount", With(Eur(1_000), (1, Eur(999))) },
        { "no lines", With(Eur(1_000)) },
        { "a zero amount", With(Eur(0), (1, Eur(0))) },
    };

    [Theory]
    [MemberData(nameof(NotAddingUp))]
    public void AddsUp_Refuses_WithoutThrowing(string what, Bill bill)
    {
        Assert.False(bill.AddsUp(), what);
    }
}
