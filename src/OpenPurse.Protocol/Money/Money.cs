using System.Diagnostics.Contracts;
using System.Globalization;

namespace OpenPurse.Protocol;

/// <summary>
/// An amount of one <see cref="Currency"/> in integer minor units (cents, yen, points).
/// Immutable; arithmetic is checked and refuses to mix currencies.
/// </summary>
/// <remarks>
/// There is no floating point anywhere on the path from a bill to a card: amounts are
/// <see cref="long"/> minor units on the wire, on the card and in the ledger, bounded by
/// <see cref="MaxMinorUnits"/> so that any sum of two valid amounts still fits in a long.
/// </remarks>
public readonly struct Money : IEquatable<Money>, IComparable<Money>
{
    /// <summary>
    /// The largest magnitude an amount may have: 10^15 minor units (10 trillion euro),
    /// far above any purse or settlement, and small enough that adding two never overflows.
    /// </summary>
    public const long MaxMinorUnits = 1_000_000_000_000_000;

    private readonly Currency? _currency;

    /// <summary>Creates an amount.</summary>
    /// <exception cref="ArgumentNullException"><paramref name="currency"/> is null.</exception>
    /// <exception cref="ArgumentOutOfRangeException">|<paramref name="minorUnits"/>| exceeds <see cref="MaxMinorUnits"/>.</exception>
    public Money(long minorUnits, Currency currency)
    {
        ArgumentNullException.ThrowIfNull(currency);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(minorUnits, MaxMinorUnits);
        ArgumentOutOfRangeException.ThrowIfLessThan(minorUnits, -MaxMinorUnits);
        MinorUnits = minorUnits;
        _currency = currency;
    }

    /// <summary>The amount in minor units (e.g. cents).</summary>
    public long MinorUnits { get; }

    /// <summary>The unit of the amount.</summary>
    /// <exception cref="InvalidOperationException">This is <c>default(Money)</c>, which has no currency.</exception>
    public Currency Currency => _currency ?? throw new InvalidOperationException("default(Money) has no currency.");

    /// <summary>Whether the amount is zero.</summary>
    public bool IsZero => MinorUnits == 0;

    /// <summary>Whether the amount is above zero.</summary>
    public bool IsPositive => MinorUnits > 0;

    /// <summary>Zero of a currency.</summary>
    public static Money Zero(Currency currency) => new(0, currency);

    /// <summary>Adds two amounts of one currency.</summary>
    /// <exception cref="CurrencyMismatchException">The currencies differ.</exception>
    /// <exception cref="OverflowException">The sum exceeds <see cref="MaxMinorUnits"/>.</exception>
    [Pure]
    public Money Plus(Money other) => new(Checked(MinorUnits + SameCurrency(other).MinorUnits), Currency);

    /// <summary>Subtracts an amount of the same currency.</summary>
    /// <exception cref="CurrencyMismatchException">The currencies differ.</exception>
    /// <exception cref="OverflowException">The difference exceeds <see cref="MaxMinorUnits"/>.</exception>
    [Pure]
    public Money Minus(Money other) => new(Checked(MinorUnits - SameCurrency(other).MinorUnits), Currency);

    /// <summary>The amount with its sign flipped.</summary>
    [Pure]
    public Money Negate() => new(-MinorUnits, Currency);

    /// <inheritdoc cref="Plus"/>
    public static Money operator +(Money left, Money right) => left.Plus(right);

    /// <inheritdoc cref="Minus"/>
    public static Money operator -(Money left, Money right) => left.Minus(right);

    /// <inheritdoc cref="Negate"/>
    public static Money operator -(Money value) => value.Negate();

    /// <summary>Compares amounts of one currency.</summary>
    /// <exception cref="CurrencyMismatchException">The currencies differ.</exception>
    public static bool operator <(Money left, Money right) => left.CompareTo(right) < 0;

    /// <inheritdoc cref="op_LessThan"/>
    public static bool operator >(Money left, Money right) => left.CompareTo(right) > 0;

    /// <inheritdoc cref="op_LessThan"/>
    public static bool operator <=(Money left, Money right) => left.CompareTo(right) <= 0;

    /// <inheritdoc cref="op_LessThan"/>
    public static bool operator >=(Money left, Money right) => left.CompareTo(right) >= 0;

    /// <summary>Value equality: same currency and same minor units.</summary>
    public static bool operator ==(Money left, Money right) => left.Equals(right);

    /// <summary>Value inequality.</summary>
    public static bool operator !=(Money left, Money right) => !left.Equals(right);

    /// <summary>Compares amounts of one currency.</summary>
    /// <exception cref="CurrencyMismatchException">The currencies differ.</exception>
    public int CompareTo(Money other) => MinorUnits.CompareTo(SameCurrency(other).MinorUnits);

    /// <inheritdoc/>
    public bool Equals(Money other) => MinorUnits == other.MinorUnits && Equals(_currency, other._currency);

    /// <inheritdoc/>
    public override bool Equals(object? obj) => obj is Money other && Equals(other);

    /// <inheritdoc/>
    public override int GetHashCode() => HashCode.Combine(MinorUnits, _currency);

    /// <summary>Formats as <c>12.34 EUR</c> with the currency's exponent, using integer arithmetic only.</summary>
    public override string ToString()
    {
        if (_currency is null)
        {
            return "(no amount)";
        }

        var digits = _currency.MinorDigits;
        if (digits == 0)
        {
            return string.Create(CultureInfo.InvariantCulture, $"{MinorUnits} {_currency.Code}");
        }

        var scale = Pow10(digits);
        var magnitude = MinorUnits == long.MinValue ? throw new OverflowException() : Math.Abs(MinorUnits);
        var sign = MinorUnits < 0 ? "-" : "";
        var whole = magnitude / scale;
        var fraction = (magnitude % scale).ToString(CultureInfo.InvariantCulture).PadLeft(digits, '0');
        return string.Create(CultureInfo.InvariantCulture, $"{sign}{whole}.{fraction} {_currency.Code}");
    }

    /// <summary>
    /// Parses what a person types: <c>12.34 EUR</c>, <c>12 EUR</c> or <c>120 PTS</c>.
    /// A fraction must not have more digits than the currency allows: nothing is rounded.
    /// </summary>
    public static bool TryParse(string? text, out Money value)
    {
        value = default;
        if (text is null)
        {
            return false;
        }

        var parts = text.Trim().Split(' ', StringSplitOptions.RemoveEmptyEntries);
        if (parts.Length != 2 || !Currency.TryFromCode(parts[1], out var currency))
        {
            return false;
        }

        var number = parts[0];
        var negative = number.StartsWith('-');
        if (negative)
        {
            number = number[1..];
        }

        var dot = number.IndexOf('.', StringComparison.Ordinal);
        var wholeText = dot < 0 ? number : number[..dot];
        var fractionText = dot < 0 ? "" : number[(dot + 1)..];
        if (wholeText.Length is 0 or > 16 || fractionText.Length > currency.MinorDigits || (dot >= 0 && fractionText.Length == 0)
            || !wholeText.All(char.IsAsciiDigit) || !fractionText.All(char.IsAsciiDigit))
        {
            return false;
        }

        var scale = Pow10(currency.MinorDigits);
        var whole = long.Parse(wholeText, NumberStyles.None, CultureInfo.InvariantCulture);
        var fraction = fractionText.Length == 0 ? 0 : long.Parse(fractionText.PadRight(currency.MinorDigits, '0'), NumberStyles.None, CultureInfo.InvariantCulture);
        long minor;
        try
        {
            minor = checked((whole * scale) + fraction);
        }
        catch (OverflowException)
        {
            return false;
        }

        if (minor > MaxMinorUnits)
        {
            return false;
        }

        value = new Money(negative ? -minor : minor, currency);
        return true;
    }

    /// <summary>Parses like <see cref="TryParse"/>.</summary>
    /// <exception cref="FormatException">The text is not an amount.</exception>
    public static Money Parse(string text) =>
        TryParse(text, out var value) ? value : throw new FormatException($"'{text}' is not an amount such as '12.34 EUR'.");

    private Money SameCurrency(Money other)
    {
        if (!Equals(Currency, other.Currency))
        {
            throw new CurrencyMismatchException(Currency, other.Currency);
        }

        return other;
    }

    private static long Checked(long minorUnits) =>
        minorUnits is > MaxMinorUnits or < -MaxMinorUnits
            ? throw new OverflowException($"Amount {minorUnits} exceeds the limit of {MaxMinorUnits} minor units.")
            : minorUnits;

    private static long Pow10(int digits)
    {
        long scale = 1;
        for (var i = 0; i < digits; i++)
        {
            scale *= 10;
        }

        return scale;
    }
}

/// <summary>Two amounts of different currencies were combined.</summary>
public sealed class CurrencyMismatchException : InvalidOperationException
{
    /// <summary>Creates the exception for the two currencies met.</summary>
    public CurrencyMismatchException(Currency left, Currency right)
        : base($"Cannot combine {left} with {right}.")
    {
    }
}
