using CsCheck;

namespace OpenPurse.Protocol.Tests;

public class MoneyTest
{
    private static readonly Currency[] s_knownCurrencies =
        [.. new[] { "EUR", "USD", "GBP", "CHF", "JPY", "SEK", "PTS" }.Select(Currency.FromCode)];

    [Theory]
    [InlineData(Money.MaxMinorUnits)]
    [InlineData(-Money.MaxMinorUnits)]
    [InlineData(0)]
    public void Constructor_AtLimit_KeepsMinorUnits(long minorUnits)
    {
        var money = new Money(minorUnits, Currency.Eur);

        Assert.Equal(minorUnits, money.MinorUnits);
        Assert.Same(Currency.Eur, money.Currency);
    }

    [Theory]
    [InlineData(Money.MaxMinorUnits + 1)]
    [InlineData(-Money.MaxMinorUnits - 1)]
    [InlineData(long.MaxValue)]
    [InlineData(long.MinValue)]
    public void Constructor_OnePastLimit_Throws(long minorUnits) =>
        Assert.Throws<ArgumentOutOfRangeException>(() => new Money(minorUnits, Currency.Eur));

    [Fact]
    public void Constructor_NullCurrency_Throws() =>
        Assert.Throws<ArgumentNullException>(() => new Money(1, null!));

    [Fact]
    public void Currency_Default_Throws() =>
        Assert.Throws<InvalidOperationException>(() => default(Money).Currency);

    [Fact]
    public void Plus_UpToLimit_Adds()
    {
        var sum = new Money(Money.MaxMinorUnits - 1, Currency.Eur).Plus(new Money(1, Currency.Eur));

        Assert.Equal(new Money(Money.MaxMinorUnits, Currency.Eur), sum);
    }

    [Fact]
    public void Plus_PastLimit_ThrowsOverflow()
    {
        var max = new Money(Money.MaxMinorUnits, Currency.Eur);

        Assert.Throws<OverflowException>(() => max.Plus(new Money(1, Currency.Eur)));
        Assert.Throws<OverflowException>(() => max + max);
    }

    [Fact]
    public void Minus_PastNegativeLimit_ThrowsOverflow()
    {
        var min = new Money(-Money.MaxMinorUnits, Currency.Eur);

        Assert.Equal(new Money(-Money.MaxMinorUnits, Currency.Eur), min.Minus(Money.Zero(Currency.Eur)));
        Assert.Throws<OverflowException>(() => min.Minus(new Money(1, Currency.Eur)));
        Assert.Throws<OverflowException>(() => min - new Money(Money.MaxMinorUnits, Currency.Eur));
    }

    [Fact]
    public void Minus_SameCurrency_Subtracts()
    {
        var difference = new Money(500, Currency.Eur) - new Money(725, Currency.Eur);

        Assert.Equal(new Money(-225, Currency.Eur), difference);
    }

    [Fact]
    public void Plus_OtherCurrency_ThrowsCurrencyMismatch()
    {
        var euro = new Money(100, Currency.Eur);
        var dollar = new Money(100, Currency.Usd);

        Assert.Throws<CurrencyMismatchException>(() => euro.Plus(dollar));
        Assert.Throws<CurrencyMismatchException>(() => euro - dollar);
    }

    [Fact]
    public void Compare_OtherCurrency_ThrowsCurrencyMismatch()
    {
        var euro = new Money(100, Currency.Eur);
        var points = new Money(100, Currency.Points);

        Assert.Throws<CurrencyMismatchException>(() => euro.CompareTo(points));
        Assert.Throws<CurrencyMismatchException>(() => euro < points);
        Assert.Throws<CurrencyMismatchException>(() => euro >= points);
    }

    [Fact]
    public void Compare_SameCurrency_OrdersByMinorUnits()
    {
        var less = new Money(-1, Currency.Eur);
        var more = new Money(1, Currency.Eur);

        Assert.True(less < more);
        Assert.True(more > less);
        Assert.True(less <= new Money(-1, Currency.Eur));
        Assert.False(less >= more);
    }

    [Fact]
    public void Equals_SameUnitsOtherCurrency_IsFalse()
    {
        // Equality never throws: it is how a dictionary tells different amounts apart.
        Assert.NotEqual(new Money(100, Currency.Eur), new Money(100, Currency.Usd));
        Assert.True(new Money(100, Currency.Eur) == new Money(100, Currency.Eur));
    }

    [Theory]
    [InlineData(1234, "EUR", "12.34 EUR")]
    [InlineData(-5, "EUR", "-0.05 EUR")]
    [InlineData(0, "EUR", "0.00 EUR")]
    [InlineData(100, "USD", "1.00 USD")]
    [InlineData(1200, "JPY", "1200 JPY")]
    [InlineData(-1200, "JPY", "-1200 JPY")]
    [InlineData(7, "PTS", "7 PTS")]
    [InlineData(Money.MaxMinorUnits, "EUR", "10000000000000.00 EUR")]
    [InlineData(-Money.MaxMinorUnits, "EUR", "-10000000000000.00 EUR")]
    public void ToString_KnownAmount_Formats(long minorUnits, string code, string expected) =>
        Assert.Equal(expected, new Money(minorUnits, Currency.FromCode(code)).ToString());

    [Fact]
    public void ToString_Default_SaysNoAmount() =>
        Assert.Equal("(no amount)", default(Money).ToString());

    [Theory]
    [InlineData("12.34 EUR", 1234, "EUR")]
    [InlineData("12 EUR", 1200, "EUR")]
    [InlineData("12.3 EUR", 1230, "EUR")]
    [InlineData("-0.05 EUR", -5, "EUR")]
    [InlineData("  0.01   USD ", 1, "USD")]
    [InlineData("1200 JPY", 1200, "JPY")]
    [InlineData("120 PTS", 120, "PTS")]
    [InlineData("10000000000000.00 EUR", Money.MaxMinorUnits, "EUR")]
    [InlineData("-10000000000000 EUR", -Money.MaxMinorUnits, "EUR")]
    [InlineData("1000000000000000 PTS", Money.MaxMinorUnits, "PTS")]
    public void TryParse_WellFormed_Accepts(string text, long minorUnits, string code)
    {
        Assert.True(Money.TryParse(text, out var money));
        Assert.Equal(new Money(minorUnits, Currency.FromCode(code)), money);
    }

    [Theory]
    [InlineData(null)]
    [InlineData("")]
    [InlineData("   ")]
    [InlineData("12.345 EUR")] // More decimals than the euro has: nothing is rounded.
    [InlineData("12.0 JPY")] // The yen has no decimals at all.
    [InlineData("1. EUR")]
    [InlineData(".5 EUR")]
    [InlineData("- EUR")]
    [InlineData("--5 EUR")]
    [InlineData("+5 EUR")]
    [InlineData("1,00 EUR")]
    [InlineData("1e3 EUR")]
    [InlineData("abc EUR")]
    [InlineData("12.34")]
    [InlineData("EUR 12.34")]
    [InlineData("12.34 eur")] // Codes are case-sensitive, as ISO 4217 writes them.
    [InlineData("12.34 XYZ")]
    [InlineData("12.34 EUR extra")]
    [InlineData("10000000000000.01 EUR")] // One minor unit past the limit.
    [InlineData("1000000000000001 PTS")]
    [InlineData("99999999999999999 EUR")] // A whole part too long to be an amount.
    [InlineData("9999999999999999999999 PTS")] // Would overflow a long.
    [InlineData("١٢ EUR")] // Arabic-Indic digits are digits, but not ASCII ones.
    public void TryParse_Malformed_Refuses(string? text)
    {
        Assert.False(Money.TryParse(text, out var money));
        Assert.Equal(default, money);
    }

    [Fact]
    public void Parse_Malformed_ThrowsFormatException() =>
        Assert.Throws<FormatException>(() => Money.Parse("1. EUR"));

    [Fact]
    public void Parse_ToString_RoundTrips() =>
        Gen.Select(Gen.Long[-Money.MaxMinorUnits, Money.MaxMinorUnits], Gen.OneOf(s_knownCurrencies))
            .Sample((minorUnits, currency) =>
            {
                var money = new Money(minorUnits, currency);
                Assert.Equal(money, Money.Parse(money.ToString()));
            });

    [Theory]
    [InlineData("EUR", 978, 2)]
    [InlineData("USD", 840, 2)]
    [InlineData("GBP", 826, 2)]
    [InlineData("CHF", 756, 2)]
    [InlineData("JPY", 392, 0)]
    [InlineData("SEK", 752, 2)]
    [InlineData("PTS", 0, 0)]
    public void FromCode_Known_MatchesFromNumeric(string code, ushort numeric, byte minorDigits)
    {
        var currency = Currency.FromCode(code);

        Assert.Same(currency, Currency.FromNumeric(numeric));
        Assert.Equal(code, currency.Code);
        Assert.Equal(numeric, currency.Numeric);
        Assert.Equal(minorDigits, currency.MinorDigits);
        Assert.Equal(code, currency.ToString());
    }

    [Theory]
    [InlineData("XYZ")]
    [InlineData("eur")]
    [InlineData("")]
    public void FromCode_Unknown_ThrowsArgumentException(string code)
    {
        Assert.Throws<ArgumentException>(() => Currency.FromCode(code));
        Assert.False(Currency.TryFromCode(code, out _));
    }

    [Theory]
    [InlineData(1)]
    [InlineData(999)]
    [InlineData(ushort.MaxValue)]
    public void FromNumeric_Unknown_ThrowsArgumentException(ushort numeric)
    {
        Assert.Throws<ArgumentException>(() => Currency.FromNumeric(numeric));
        Assert.False(Currency.TryFromNumeric(numeric, out _));
    }

    [Fact]
    public void IsPoints_OnlyForPoints()
    {
        Assert.True(Currency.Points.IsPoints);
        Assert.All(s_knownCurrencies.Where(c => c.Code != "PTS"), c => Assert.False(c.IsPoints));
    }
}
