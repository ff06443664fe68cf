namespace OpenPurse.Protocol;

/// <summary>
/// A unit of value a purse can hold: an ISO 4217 currency or the card's points purse.
/// </summary>
/// <remarks>
/// The set is closed on purpose: a card, an operator and a store must agree on the
/// numeric code (on the card) and the exponent (for display) of every unit they meet,
/// so an unknown code is refused rather than guessed.
/// </remarks>
public sealed class Currency : IEquatable<Currency>
{
    /// <summary>Numeric code of the points purse. ISO 4217 never assigns 000.</summary>
    private const ushort PointsNumeric = 0;

    private static readonly Currency[] s_known =
    [
        new("EUR", 978, 2),
        new("USD", 840, 2),
        new("GBP", 826, 2),
        new("CHF", 756, 2),
        new("JPY", 392, 0),
        new("SEK", 752, 2),
        new("PTS", PointsNumeric, 0),
    ];

    private Currency(string code, ushort numeric, byte minorDigits)
    {
        Code = code;
        Numeric = numeric;
        MinorDigits = minorDigits;
    }

    /// <summary>The euro.</summary>
    public static Currency Eur => s_known[0];

    /// <summary>The US dollar.</summary>
    public static Currency Usd => s_known[1];

    /// <summary>The yen: a currency without minor units.</summary>
    public static Currency Jpy => s_known[4];

    /// <summary>Loyalty points: whole units, not money.</summary>
    public static Currency Points => s_known[^1];

    /// <summary>Alphabetic code, e.g. <c>EUR</c>; <c>PTS</c> for points.</summary>
    public string Code { get; }

    /// <summary>ISO 4217 numeric code as stored on the card; 0 for points.</summary>
    public ushort Numeric { get; }

    /// <summary>Digits after the decimal point when shown to a person (ISO 4217 exponent).</summary>
    public byte MinorDigits { get; }

    /// <summary>Whether this is the points purse rather than a currency.</summary>
    public bool IsPoints => Numeric == PointsNumeric;

    /// <summary>Looks a unit up by its alphabetic code (case-sensitive, as ISO 4217 writes it).</summary>
    public static bool TryFromCode(string? code, [System.Diagnostics.CodeAnalysis.NotNullWhen(true)] out Currency? currency)
    {
        currency = Array.Find(s_known, c => string.Equals(c.Code, code, StringComparison.Ordinal));
        return currency is not null;
    }

    /// <summary>Looks a unit up by its numeric code, as read from a card.</summary>
    public static bool TryFromNumeric(ushort numeric, [System.Diagnostics.CodeAnalysis.NotNullWhen(true)] out Currency? currency)
    {
        currency = Array.Find(s_known, c => c.Numeric == numeric);
        return currency is not null;
    }

    /// <summary>Looks a unit up by its alphabetic code.</summary>
    /// <exception cref="ArgumentException">The code is not a known unit.</exception>
    public static Currency FromCode(string code) =>
        TryFromCode(code, out var currency) ? currency : throw new ArgumentException($"Unknown currency code '{code}'.", nameof(code));

    /// <summary>Looks a unit up by its numeric code.</summary>
    /// <exception cref="ArgumentException">The code is not a known unit.</exception>
    public static Currency FromNumeric(ushort numeric) =>
        TryFromNumeric(numeric, out var currency) ? currency : throw new ArgumentException($"Unknown currency number {numeric:D3}.", nameof(numeric));

    /// <inheritdoc/>
    // Instances are unique per code, so reference equality is value equality.
    public bool Equals(Currency? other) => ReferenceEquals(this, other);

    /// <inheritdoc/>
    public override bool Equals(object? obj) => ReferenceEquals(this, obj);

    /// <inheritdoc/>
    public override int GetHashCode() => Numeric;

    /// <inheritdoc/>
    public override string ToString() => Code;
}
