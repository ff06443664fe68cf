using System.Buffers.Binary;
using System.Diagnostics;
using System.Security.Cryptography;

namespace OpenPurse.Protocol.Purse;

/// <summary>Instruction and class bytes of the OpenPurse applet (see docs/card.md).</summary>
public static class PurseInstruction
{
    /// <summary>Interindustry class, for SELECT.</summary>
    public const byte ClaIso = 0x00;

    /// <summary>Proprietary class, no secure messaging.</summary>
    public const byte ClaProprietary = 0x80;

    /// <summary>Proprietary class with the secure-messaging bit.</summary>
    public const byte ClaSecured = 0x84;

    /// <summary>SELECT by AID (ISO 7816-4).</summary>
    public const byte Select = 0xA4;

    /// <summary>INITIALIZE UPDATE (GlobalPlatform): host challenge in, card challenge and cryptogram out.</summary>
    public const byte InitializeUpdate = 0x50;

    /// <summary>EXTERNAL AUTHENTICATE (GlobalPlatform): host cryptogram in; opens the session.</summary>
    public const byte ExternalAuthenticate = 0x82;

    /// <summary>GET DATA: card id, counter and balances in clear.</summary>
    public const byte GetData = 0xCA;

    /// <summary>READ PURSE: the balance readout (BRC/BI) over the secure channel.</summary>
    public const byte ReadPurse = 0x5C;

    /// <summary>DEBIT: the settlement processing request (SPC): write the log and subtract.</summary>
    public const byte Debit = 0x54;

    /// <summary>CREDIT: the value update: write the log and add.</summary>
    public const byte Credit = 0x52;

    /// <summary>READ LOG: log records, newest first (READ RECORD's INS).</summary>
    public const byte ReadLog = 0xB2;
}

/// <summary>Which way value moved in a card transaction.</summary>
public enum ValueKind : byte
{
    /// <summary>Value left the card: a purchase or a decrease.</summary>
    Debit = 0x01,

    /// <summary>Value entered the card: a top-up or a refund.</summary>
    Credit = 0x02,
}

/// <summary>Encoding of amounts as the card stores them: numeric currency (2) ‖ minor units (8), big-endian.</summary>
internal static class CardMoney
{
    public const int Length = 10;

    public static void Write(Money amount, Span<byte> destination)
    {
        BinaryPrimitives.WriteUInt16BigEndian(destination, amount.Currency.Numeric);
        BinaryPrimitives.WriteInt64BigEndian(destination[2..], amount.MinorUnits);
    }

    public static bool TryRead(ReadOnlySpan<byte> source, out Money amount)
    {
        amount = default;
        var minor = BinaryPrimitives.ReadInt64BigEndian(source[2..]);
        if (!Currency.TryFromNumeric(BinaryPrimitives.ReadUInt16BigEndian(source), out var currency)
            || minor is < 0 or > Money.MaxMinorUnits)
        {
            return false;
        }

        amount = new Money(minor, currency);
        return true;
    }
}

/// <summary>
/// What a card says about itself: card id, transaction counter and every purse's balance.
/// The balance information (BI) of the specification.
/// </summary>
public sealed record PurseStatus(CardId CardId, uint Counter, IReadOnlyList<Money> Balances)
{
    /// <summary>The most purses (currencies plus points) a card holds.</summary>
    public const int PursesMax = 4;

    /// <summary>Encoded size with <see cref="PursesMax"/> purses.</summary>
    public const int LengthMax = CardId.Length + 4 + 1 + (PursesMax * CardMoney.Length);

    /// <summary>The balance of one purse, or null when the card has no purse in that currency.</summary>
    public Money? BalanceOf(Currency currency) =>
        Balances.Cast<Money?>().FirstOrDefault(b => b!.Value.Currency.Equals(currency));

    /// <summary>card id (8) ‖ counter (4) ‖ n (1) ‖ n × (currency (2) ‖ balance (8)).</summary>
    public byte[] ToBytes()
    {
        Debug.Assert(Balances.Count <= PursesMax, "A card holds at most PursesMax purses.");
        var bytes = new byte[CardId.Length + 5 + (Balances.Count * CardMoney.Length)];
        CardId.WriteTo(bytes);
        BinaryPrimitives.WriteUInt32BigEndian(bytes.AsSpan(CardId.Length), Counter);
        bytes[CardId.Length + 4] = (byte)Balances.Count;
        for (var i = 0; i < Balances.Count; i++)
        {
            CardMoney.Write(Balances[i], bytes.AsSpan(CardId.Length + 5 + (i * CardMoney.Length)));
        }

        return bytes;
    }

    /// <summary>Parses the encoding; false when it is malformed.</summary>
    public static bool TryParse(ReadOnlySpan<byte> bytes, [System.Diagnostics.CodeAnalysis.NotNullWhen(true)] out PurseStatus? status)
    {
        status = null;
        if (bytes.Length < CardId.Length + 5 || !CardId.TryRead(bytes, out var cardId))
        {
            return false;
        }

        var count = bytes[CardId.Length + 4];
        if (count > PursesMax || bytes.Length != CardId.Length + 5 + (count * CardMoney.Length))
        {
            return false;
        }

        var balances = new Money[count];
        for (var i = 0; i < count; i++)
        {
            if (!CardMoney.TryRead(bytes[(CardId.Length + 5 + (i * CardMoney.Length))..], out balances[i]))
            {
                return false;
            }
        }

        // One purse per currency: a second one would make BalanceOf ambiguous.
        if (balances.DistinctBy(b => b.Currency).Count() != balances.Length)
        {
            return false;
        }

        status = new PurseStatus(cardId, BinaryPrimitives.ReadUInt32BigEndian(bytes[CardId.Length..]), balances);
        return true;
    }
}

/// <summary>
/// What the person approved, sent to the card in clear beside the operator's encrypted command:
/// currency and amount (10) ‖ bill digest (32). The card refuses the debit when they differ.
/// </summary>
public sealed record Approval(Money Amount, ReadOnlyMemory<byte> Digest)
{
    /// <summary>Encoded size.</summary>
    public const int Length = CardMoney.Length + DigestLength;

    /// <summary>Size of a bill or value-update digest (SHA-256).</summary>
    public const int DigestLength = 32;

    /// <summary>The encoding.</summary>
    public byte[] ToBytes()
    {
        CheckDigest(Digest.Span);
        var bytes = new byte[Length];
        CardMoney.Write(Amount, bytes);
        Digest.Span.CopyTo(bytes.AsSpan(CardMoney.Length));
        return bytes;
    }

    /// <summary>Parses the encoding; false when it is malformed.</summary>
    public static bool TryParse(ReadOnlySpan<byte> bytes, [System.Diagnostics.CodeAnalysis.NotNullWhen(true)] out Approval? approval)
    {
        approval = null;
        if (bytes.Length != Length || !CardMoney.TryRead(bytes, out var amount))
        {
            return false;
        }

        approval = new Approval(amount, bytes[CardMoney.Length..].ToArray());
        return true;
    }

    internal static void CheckDigest(ReadOnlySpan<byte> digest)
    {
        if (digest.Length != DigestLength)
        {
            throw new ArgumentException($"A digest has {DigestLength} bytes.", nameof(digest));
        }
    }
}

/// <summary>
/// The operator's order to the card, encrypted under the session key: the settlement processing
/// request (SPC) for a debit, the value update information for a credit.
/// transaction reference (16) ‖ digest (32) ‖ currency and amount (10) ‖ expected counter (4).
/// </summary>
/// <param name="TransactionRef">The operator's settlement or value-update id, written to the card log.</param>
/// <param name="Digest">SHA-256 of the signed bill (debit) or of the signed value update (credit).</param>
/// <param name="Amount">How much to subtract or add; positive.</param>
/// <param name="ExpectedCounter">The card's transaction counter the operator read; any other value is refused, so a command can act once.</param>
public sealed record ValueCommand(Guid TransactionRef, ReadOnlyMemory<byte> Digest, Money Amount, uint ExpectedCounter)
{
    /// <summary>Encoded size.</summary>
    public const int Length = 16 + Approval.DigestLength + CardMoney.Length + 4;

    /// <summary>The approval a wallet would send for exactly this command.</summary>
    public Approval ToApproval() => new(Amount, Digest);

    /// <summary>The encoding.</summary>
    public byte[] ToBytes()
    {
        Approval.CheckDigest(Digest.Span);
        var bytes = new byte[Length];
        TransactionRef.TryWriteBytes(bytes, bigEndian: true, out _);
        Digest.Span.CopyTo(bytes.AsSpan(16));
        CardMoney.Write(Amount, bytes.AsSpan(16 + Approval.DigestLength));
        BinaryPrimitives.WriteUInt32BigEndian(bytes.AsSpan(Length - 4), ExpectedCounter);
        return bytes;
    }

    /// <summary>Parses the encoding; false when it is malformed.</summary>
    public static bool TryParse(ReadOnlySpan<byte> bytes, [System.Diagnostics.CodeAnalysis.NotNullWhen(true)] out ValueCommand? command)
    {
        command = null;
        if (bytes.Length != Length || !CardMoney.TryRead(bytes[(16 + Approval.DigestLength)..], out var amount))
        {
            return false;
        }

        command = new ValueCommand(
            new Guid(bytes[..16], bigEndian: true),
            bytes.Slice(16, Approval.DigestLength).ToArray(),
            amount,
            BinaryPrimitives.ReadUInt32BigEndian(bytes[(Length - 4)..]));
        return true;
    }
}

/// <summary>
/// One record of the card's log, and the card's answer to a debit or credit (the processing
/// completion notification, PCN, when it answers a debit).
/// counter (4) ‖ kind (1) ‖ amount (10) ‖ balance after (10) ‖ transaction reference (16) ‖ digest (32).
/// </summary>
public sealed record CardLogRecord(uint Counter, ValueKind Kind, Money Amount, Money BalanceAfter, Guid TransactionRef, ReadOnlyMemory<byte> Digest)
{
    /// <summary>Encoded size.</summary>
    public const int Length = 4 + 1 + CardMoney.Length + CardMoney.Length + 16 + Approval.DigestLength;

    /// <summary>Writes the encoding into <paramref name="destination"/>.</summary>
    public void WriteTo(Span<byte> destination)
    {
        Approval.CheckDigest(Digest.Span);
        BinaryPrimitives.WriteUInt32BigEndian(destination, Counter);
        destination[4] = (byte)Kind;
        CardMoney.Write(Amount, destination[5..]);
        CardMoney.Write(BalanceAfter, destination[(5 + CardMoney.Length)..]);
        TransactionRef.TryWriteBytes(destination[(5 + (2 * CardMoney.Length))..], bigEndian: true, out _);
        Digest.Span.CopyTo(destination[(21 + (2 * CardMoney.Length))..]);
    }

    /// <summary>The encoding.</summary>
    public byte[] ToBytes()
    {
        var bytes = new byte[Length];
        WriteTo(bytes);
        return bytes;
    }

    /// <summary>Parses one record; false when it is malformed.</summary>
    public static bool TryParse(ReadOnlySpan<byte> bytes, [System.Diagnostics.CodeAnalysis.NotNullWhen(true)] out CardLogRecord? record)
    {
        record = null;
        if (bytes.Length != Length || bytes[4] is not ((byte)ValueKind.Debit or (byte)ValueKind.Credit)
            || !CardMoney.TryRead(bytes[5..], out var amount)
            || !CardMoney.TryRead(bytes[(5 + CardMoney.Length)..], out var balanceAfter)
            || !amount.Currency.Equals(balanceAfter.Currency))
        {
            return false;
        }

        record = new CardLogRecord(
            BinaryPrimitives.ReadUInt32BigEndian(bytes),
            (ValueKind)bytes[4],
            amount,
            balanceAfter,
            new Guid(bytes.Slice(5 + (2 * CardMoney.Length), 16), bigEndian: true),
            bytes.Slice(21 + (2 * CardMoney.Length), Approval.DigestLength).ToArray());
        return true;
    }

    /// <summary>Parses a run of records, as READ LOG answers.</summary>
    public static bool TryParseMany(ReadOnlySpan<byte> bytes, [System.Diagnostics.CodeAnalysis.NotNullWhen(true)] out IReadOnlyList<CardLogRecord>? records)
    {
        records = null;
        if (bytes.Length % Length != 0)
        {
            return false;
        }

        var list = new List<CardLogRecord>(bytes.Length / Length);
        for (var offset = 0; offset < bytes.Length; offset += Length)
        {
            if (!TryParse(bytes.Slice(offset, Length), out var record))
            {
                return false;
            }

            list.Add(record);
        }

        records = list;
        return true;
    }
}

/// <summary>
/// The digests the operator's CREDITs carry, by what they credit: the card's log keeps the digest
/// beside the transaction reference, so a wallet tells the issuing station's load from a top-up.
/// </summary>
public static class CreditDigests
{
    /// <summary>The digest of the issuing station's load: SHA-256 of the load id (its .NET byte order).</summary>
    public static byte[] Load(Guid loadId) => SHA256.HashData(loadId.ToByteArray());

    /// <summary>
    /// The digest of a CREDIT the operator makes for a purpose (<c>ValueUpdatePurposes</c>): SHA-256
    /// over "openpurse-&lt;purpose&gt;:" and the source's id, so that the card's log names what the value came from.
    /// </summary>
    public static byte[] Of(string purpose, Guid sourceId)
    {
        ArgumentException.ThrowIfNullOrEmpty(purpose);
        return SHA256.HashData([.. System.Text.Encoding.ASCII.GetBytes($"openpurse-{purpose}:"), .. sourceId.ToByteArray(bigEndian: true)]);
    }

    /// <summary>The digest of a credit-card top-up's CREDIT, whose reference is the top-up id: <see cref="Of"/> its purpose and id.</summary>
    public static byte[] TopUp(Guid topUpId) => Of(Messages.ValueUpdatePurposes.TopUp, topUpId);

    /// <summary>Whether <paramref name="record"/> is a credit carrying <paramref name="digest"/> of its own reference.</summary>
    public static bool Carries(CardLogRecord record, Func<Guid, byte[]> digest)
    {
        ArgumentNullException.ThrowIfNull(record);
        ArgumentNullException.ThrowIfNull(digest);
        return record.Kind == ValueKind.Credit && record.Digest.Span.SequenceEqual(digest(record.TransactionRef));
    }
}
