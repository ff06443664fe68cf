using System.Security.Cryptography;
using BenchmarkDotNet.Attributes;
using OpenPurse.Card;
using OpenPurse.Protocol;
using OpenPurse.Protocol.Apdu;
using OpenPurse.Protocol.Channel;
using OpenPurse.Protocol.Purse;

namespace OpenPurse.Benchmarks;

/// <summary>
/// One whole purchase at the card: SELECT, INITIALIZE UPDATE, EXTERNAL AUTHENTICATE and DEBIT
/// with the person's approval, each answered 9000, on an emulated card whose memory is a
/// <see cref="MemoryStream"/>.
/// </summary>
/// <remarks>
/// <para>
/// The card's challenge is random, so the host's EXTERNAL AUTHENTICATE and DEBIT cannot be made
/// ahead of time and the card cannot be timed on its own. Hence two benchmarks:
/// </para>
/// <list type="bullet">
/// <item><see cref="WholeExchange"/>: host and card together; the card answers all four APDUs.</item>
/// <item><see cref="HostSide"/>: the same host code, step for step, against the card's four answers
/// recorded once in the setup; the card does nothing.</item>
/// </list>
/// <para>
/// The card's own cost of one purchase is WholeExchange − HostSide (time and allocation alike).
/// The card's commit (building and hashing its memory image, writing both to the stream) is in
/// WholeExchange; a disk flush is not, because the stream is in memory.
/// </para>
/// </remarks>
[MemoryDiagnoser]
public class CardPurchaseBenchmarks
{
    private const int ApdusPerPurchase = 4;
    private const byte KeyVersion = 1;

    // The issuer's master key, from which this card's K-ENC and K-MAC are diversified.
    private static readonly byte[] s_masterKey = Convert.FromHexString("000102030405060708090A0B0C0D0E0F");

    // Fixed, so that a recorded greeting fits the host's challenge when replayed; a live host
    // derives it from the signed bill, which costs one hash not measured here.
    private static readonly byte[] s_hostChallenge = Convert.FromHexString("B1B2B3B4B5B6B7B8");

    private static readonly Guid s_transactionRef = new("0f8fad5b-d9cb-469f-a165-70867728950e");

    // Every purchase is one cent and the setup loads the most a purse may hold (10^15 cents), so the
    // balance outlasts even the card's 32-bit transaction counter; no top-up between iterations.
    private static readonly Money s_price = new(1, Currency.Eur);

    private readonly byte[][] _recordedCommands = new byte[ApdusPerPurchase][];
    private readonly byte[][] _recordedAnswers = new byte[ApdusPerPurchase][];
    private readonly byte[] _billDigest = SHA256.HashData("ORD-2026-000123456 store-7f3a9c2e 0.01 EUR"u8);
    private EmulatedCard? _card;
    private AesCmac? _staticEnc;
    private AesCmac? _staticMac;

    private enum Link
    {
        /// <summary>Every command goes to the card.</summary>
        Card,

        /// <summary>Every command goes to the card; commands and answers are kept for <see cref="Replay"/>.</summary>
        Record,

        /// <summary>No card: the recorded answers come back, and each command must equal the recorded one.</summary>
        Replay,
    }

    [GlobalSetup]
    public void Setup()
    {
        var cardId = CardId.FromSerial(123_456_789_012_345);
        var encKey = new byte[AesCmac.BlockSize];
        var macKey = new byte[AesCmac.BlockSize];
        using (var master = new AesCmac(s_masterKey))
        {
            KeyDiversification.An10922Aes128(master, KeyDiversification.CardKeyInput(CardKeyUsage.Encryption, cardId), encKey);
            KeyDiversification.An10922Aes128(master, KeyDiversification.CardKeyInput(CardKeyUsage.Mac, cardId), macKey);
        }

        // The host holds the static keys as the security module would; the card got its copies at issue.
        _staticEnc = new AesCmac(encKey);
        _staticMac = new AesCmac(macKey);
        _card = EmulatedCard.Create(new MemoryStream(), new CardPersonalization(cardId, KeyVersion, encKey, macKey, Money.MaxMinorUnits));
        CryptographicOperations.ZeroMemory(encKey);
        CryptographicOperations.ZeroMemory(macKey);

        var loaded = Transact(Link.Card, ValueKind.Credit, new Money(Money.MaxMinorUnits, Currency.Eur));
        Check.That(loaded.BalanceAfter.MinorUnits == Money.MaxMinorUnits, "the card holds the full load");

        var recorded = Transact(Link.Record, ValueKind.Debit, s_price);
        Check.That(recorded.BalanceAfter.MinorUnits == Money.MaxMinorUnits - s_price.MinorUnits, "the purchase took one cent");

        // The host is deterministic, so replaying must rebuild the very same commands and PCN.
        var replayed = Transact(Link.Replay, ValueKind.Debit, s_price);
        Check.That(replayed.Counter == recorded.Counter && replayed.BalanceAfter == recorded.BalanceAfter, "the replay matches the recording");
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _card?.Dispose();
        _staticEnc?.Dispose();
        _staticMac?.Dispose();
    }

    /// <summary>Host and card: one purchase end to end. Returns the card's completion notice (PCN).</summary>
    [Benchmark]
    public CardLogRecord WholeExchange() => Transact(Link.Card, ValueKind.Debit, s_price);

    /// <summary>Host only, against the recorded answers: subtract from <see cref="WholeExchange"/> for the card's cost.</summary>
    [Benchmark]
    public CardLogRecord HostSide() => Transact(Link.Replay, ValueKind.Debit, s_price);

    // The host's side of one session (greeting check, key derivation, EXTERNAL AUTHENTICATE, the
    // secured value command, opening the PCN), with the card's answers coming over the given link.
    private CardLogRecord Transact(Link link, ValueKind kind, Money amount)
    {
        Exchange(link, 0, CardHostSession.Select());
        var initializeUpdate = Exchange(link, 1, CardHostSession.InitializeUpdate(s_hostChallenge, KeyVersion));
        if (!CardGreeting.TryParse(initializeUpdate.Data, out var greeting))
        {
            throw new InvalidOperationException("The card's greeting is malformed.");
        }

        using var session = CardHostSession.TryOpen(_staticEnc!, _staticMac!, s_hostChallenge, greeting, out var error)
            ?? throw new InvalidOperationException($"The card did not authenticate: {error}.");
        Exchange(link, 2, session.ExternalAuthenticate());

        // Bound to the counter the card just reported, as the operator binds every command.
        var order = new ValueCommand(s_transactionRef, _billDigest, amount, greeting.Status.Counter);
        var secured = kind == ValueKind.Debit ? session.Debit(order) : session.Credit(order);
        var answer = Exchange(link, 3, CardHostSession.WithApproval(secured, order.ToApproval()));
        if (!session.TryUnwrap(answer, out var plain) || !CardLogRecord.TryParse(plain.Data, out var record)
            || record.Kind != kind || record.Amount != amount || record.Counter != order.ExpectedCounter + 1)
        {
            throw new InvalidOperationException("The card's completion notice does not match the command.");
        }

        return record;
    }

    private ResponseApdu Exchange(Link link, int step, CommandApdu command)
    {
        var bytes = command.ToBytes();
        byte[] answer;
        if (link == Link.Replay)
        {
            // Checks determinism and keeps the host's encoding work from being optimised away.
            if (!bytes.AsSpan().SequenceEqual(_recordedCommands[step]))
            {
                throw new InvalidOperationException($"Replayed command {step} differs from the recorded one.");
            }

            answer = _recordedAnswers[step];
        }
        else
        {
            answer = _card!.Transmit(bytes);
            if (link == Link.Record)
            {
                (_recordedCommands[step], _recordedAnswers[step]) = (bytes, answer);
            }
        }

        var response = ResponseApdu.Parse(answer);
        if (!response.IsOk)
        {
            throw new InvalidOperationException($"Command {step} (INS {command.Ins:X2}) was answered {(ushort)response.Status:X4}, not 9000.");
        }

        return response;
    }
}
