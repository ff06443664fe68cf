using System.Buffers.Binary;
using System.Diagnostics;
using System.Security.Cryptography;
using OpenPurse.Protocol;
using OpenPurse.Protocol.Purse;

namespace OpenPurse.Card;

/// <summary>
/// Everything the card remembers across power cycles. Immutable: a command builds the next
/// state, the memory commits it whole, and only then does the applet use it.
/// </summary>
internal sealed record CardState
{
    /// <summary>The log keeps this many newest records (a bounded cyclic file, as on real purses).</summary>
    public const int LogCapacity = 16;

    public const int KeyLength = 16;

    private const byte FormatVersion = 2;

    /// <summary>Encoded size; the card memory's slot payload.</summary>
    public const int ImageLength = 1 + CardId.Length + 1 + (2 * KeyLength) + 8 + 4 + 4
        + 1 + (PurseStatus.PursesMax * 10) + 1 + (LogCapacity * CardLogRecord.Length);

    public required CardId CardId { get; init; }

    public required byte KeyVersion { get; init; }

    public required byte[] EncKey { get; init; }

    public required byte[] MacKey { get; init; }

    /// <summary>No purse may hold more than this many minor units (the issuer's limit for an anonymous purse).</summary>
    public required long BalanceMaxMinor { get; init; }

    /// <summary>Incremented by every debit and credit; never decreases.</summary>
    public required uint Counter { get; init; }

    /// <summary>Incremented by every INITIALIZE UPDATE; tells the operator which greeting is the card's last.</summary>
    public required uint SessionCounter { get; init; }

    public required IReadOnlyList<Money> Purses { get; init; }

    /// <summary>Newest first, at most <see cref="LogCapacity"/>.</summary>
    public required IReadOnlyList<CardLogRecord> Log { get; init; }

    public PurseStatus Status => new(CardId, Counter, Purses);

    /// <summary>The state after a debit or credit: new balance, counter + 1, one more log record.</summary>
    public CardState Apply(ValueKind kind, ValueCommand command, Money balanceAfter)
    {
        Debug.Assert(balanceAfter.MinorUnits >= 0 && balanceAfter.MinorUnits <= BalanceMaxMinor, "Balances stay within 0..limit.");
        var purses = Purses.Where(p => !p.Currency.Equals(balanceAfter.Currency)).Append(balanceAfter)
            .OrderBy(p => p.Currency.Numeric).ToArray();
        var counter = checked(Counter + 1);
        var record = new CardLogRecord(counter, kind, command.Amount, balanceAfter, command.TransactionRef, command.Digest);
        return this with { Counter = counter, Purses = purses, Log = [record, .. Log.Take(LogCapacity - 1)] };
    }

    /// <summary>The state after an INITIALIZE UPDATE: the session counter + 1, nothing else.</summary>
    public CardState NextSession() => this with { SessionCounter = checked(SessionCounter + 1) };

    public byte[] ToBytes()
    {
        Debug.Assert(Purses.Count <= PurseStatus.PursesMax && Log.Count <= LogCapacity, "State within its bounds.");
        var bytes = new byte[ImageLength];
        var offset = 0;
        bytes[offset++] = FormatVersion;
        CardId.WriteTo(bytes.AsSpan(offset));
        offset += CardId.Length;
        bytes[offset++] = KeyVersion;
        EncKey.CopyTo(bytes, offset);
        offset += KeyLength;
        MacKey.CopyTo(bytes, offset);
        offset += KeyLength;
        BinaryPrimitives.WriteInt64BigEndian(bytes.AsSpan(offset), BalanceMaxMinor);
        offset += 8;
        BinaryPrimitives.WriteUInt32BigEndian(bytes.AsSpan(offset), Counter);
        offset += 4;
        BinaryPrimitives.WriteUInt32BigEndian(bytes.AsSpan(offset), SessionCounter);
        offset += 4;
        var status = Status.ToBytes();
        // Purse count and purses, as in the status after card id and counter.
        status.AsSpan(CardId.Length + 4).CopyTo(bytes.AsSpan(offset));
        offset += 1 + (PurseStatus.PursesMax * 10);
        bytes[offset++] = (byte)Log.Count;
        foreach (var record in Log)
        {
            record.WriteTo(bytes.AsSpan(offset));
            offset += CardLogRecord.Length;
        }

        return bytes;
    }

    /// <exception cref="InvalidDataException">The image is not a card state of this format.</exception>
    public static CardState FromBytes(ReadOnlySpan<byte> bytes)
    {
        if (bytes.Length != ImageLength || bytes[0] != FormatVersion)
        {
            throw new InvalidDataException("Unknown card memory format.");
        }

        var offset = 1;
        if (!CardId.TryRead(bytes[offset..], out var cardId))
        {
            throw new InvalidDataException("Card memory holds no valid card id.");
        }

        offset += CardId.Length;
        var keyVersion = bytes[offset++];
        var encKey = bytes.Slice(offset, KeyLength).ToArray();
        offset += KeyLength;
        var macKey = bytes.Slice(offset, KeyLength).ToArray();
        offset += KeyLength;
        var balanceMax = BinaryPrimitives.ReadInt64BigEndian(bytes[offset..]);
        offset += 8;
        var counter = BinaryPrimitives.ReadUInt32BigEndian(bytes[offset..]);
        offset += 4;
        var sessionCounter = BinaryPrimitives.ReadUInt32BigEndian(bytes[offset..]);
        offset += 4;
        var purseCount = bytes[offset];
        Span<byte> status = stackalloc byte[CardId.Length + 5 + (purseCount * 10)];
        cardId.WriteTo(status);
        BinaryPrimitives.WriteUInt32BigEndian(status[CardId.Length..], counter);
        if (purseCount > PurseStatus.PursesMax)
        {
            throw new InvalidDataException("Card memory holds too many purses.");
        }

        bytes.Slice(offset, 1 + (purseCount * 10)).CopyTo(status[(CardId.Length + 4)..]);
        offset += 1 + (PurseStatus.PursesMax * 10);
        if (!PurseStatus.TryParse(status, out var purses))
        {
            throw new InvalidDataException("Card memory holds a malformed purse.");
        }

        var logCount = bytes[offset++];
        if (logCount > LogCapacity
            || !CardLogRecord.TryParseMany(bytes.Slice(offset, logCount * CardLogRecord.Length), out var log))
        {
            throw new InvalidDataException("Card memory holds a malformed log.");
        }

        return new CardState
        {
            CardId = cardId,
            KeyVersion = keyVersion,
            EncKey = encKey,
            MacKey = macKey,
            BalanceMaxMinor = balanceMax,
            Counter = counter,
            SessionCounter = sessionCounter,
            Purses = purses.Balances,
            Log = log,
        };
    }

}
