using System.Buffers.Binary;
using System.Globalization;

namespace OpenPurse.Protocol;

/// <summary>
/// A card number: 16 decimal digits ending in a Luhn check digit, held on the card as
/// 8 bytes big-endian.
/// </summary>
/// <remarks>
/// <see cref="ToString"/> masks all but the last four digits, so a card number that
/// reaches a log line by accident is not a full card number; <see cref="Digits"/> is the
/// deliberate way to get all of them.
/// </remarks>
public readonly struct CardId : IEquatable<CardId>
{
    /// <summary>Bytes on the card.</summary>
    public const int Length = 8;

    private const ulong Min = 1_000_000_000_000_000;
    private const ulong Max = 9_999_999_999_999_999;

    private readonly ulong _value;

    private CardId(ulong value) => _value = value;

    /// <summary>All 16 digits. Show them to the card's holder or an operator, never to a log.</summary>
    public string Digits => _value.ToString("D16", CultureInfo.InvariantCulture);

    /// <summary>The last four digits, e.g. <c>•••• 0019</c>.</summary>
    public string Masked => "•••• " + Digits[^4..];

    /// <summary>Makes a card number from a 15-digit issuer serial by appending the Luhn digit.</summary>
    /// <exception cref="ArgumentOutOfRangeException">The serial does not have exactly 15 digits.</exception>
    public static CardId FromSerial(ulong serial15)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(serial15, Min / 10);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(serial15, Max / 10);
        var check = LuhnCheckDigit(serial15.ToString("D15", CultureInfo.InvariantCulture));
        return new CardId((serial15 * 10) + (ulong)check);
    }

    /// <summary>Parses 16 digits (spaces allowed) and checks the Luhn digit.</summary>
    public static bool TryParse(string? text, out CardId id)
    {
        id = default;
        var digits = text?.Replace(" ", "", StringComparison.Ordinal);
        if (digits is not { Length: 16 } || !digits.All(char.IsAsciiDigit) || digits[0] == '0'
            || LuhnCheckDigit(digits[..15]) != digits[15] - '0')
        {
            return false;
        }

        id = new CardId(ulong.Parse(digits, NumberStyles.None, CultureInfo.InvariantCulture));
        return true;
    }

    /// <summary>Parses like <see cref="TryParse(string?, out CardId)"/>.</summary>
    /// <exception cref="FormatException">Not 16 digits with a valid check digit.</exception>
    public static CardId Parse(string text) =>
        TryParse(text, out var id) ? id : throw new FormatException("A card number has 16 digits with a valid check digit.");

    /// <summary>Reads the 8 bytes a card holds.</summary>
    public static bool TryRead(ReadOnlySpan<byte> bytes, out CardId id)
    {
        id = default;
        if (bytes.Length < Length)
        {
            return false;
        }

        var value = BinaryPrimitives.ReadUInt64BigEndian(bytes);
        return TryParse(value.ToString(CultureInfo.InvariantCulture), out id);
    }

    /// <summary>Writes the 8 bytes a card holds.</summary>
    public void WriteTo(Span<byte> destination) => BinaryPrimitives.WriteUInt64BigEndian(destination, _value);

    /// <inheritdoc/>
    public bool Equals(CardId other) => _value == other._value;

    /// <inheritdoc/>
    public override bool Equals(object? obj) => obj is CardId other && Equals(other);

    /// <inheritdoc/>
    public override int GetHashCode() => _value.GetHashCode();

    /// <summary>Value equality.</summary>
    public static bool operator ==(CardId left, CardId right) => left.Equals(right);

    /// <summary>Value inequality.</summary>
    public static bool operator !=(CardId left, CardId right) => !left.Equals(right);

    /// <summary>The masked form; see <see cref="Masked"/>.</summary>
    public override string ToString() => Masked;

    private static int LuhnCheckDigit(string payload)
    {
        var sum = 0;
        for (var i = 0; i < payload.Length; i++)
        {
            var digit = payload[payload.Length - 1 - i] - '0';
            if (i % 2 == 0)
            {
                digit *= 2;
                if (digit > 9)
                {
                    digit -= 9;
                }
            }

            sum += digit;
        }

        return (10 - (sum % 10)) % 10;
    }
}
