using CsCheck;

namespace OpenPurse.Protocol.Tests;

public class CardIdTest
{
    private const ulong SerialMin = 100_000_000_000_000;
    private const ulong SerialMax = 999_999_999_999_999;

    [Fact]
    public void FromSerial_KnownSerial_AppendsLuhnDigit()
    {
        // Serial 400000000000001. Luhn doubles every second digit counting from the right of
        // the payload, starting with the rightmost: 1 → 2; the 4 is 15th from the right → 8;
        // the zeros add nothing. Sum 2 + 8 = 10, so the check digit is (10 − 10 mod 10) mod 10 = 0.
        var id = CardId.FromSerial(400_000_000_000_001);

        Assert.Equal("4000000000000010", id.Digits);
    }

    [Fact]
    public void FromSerial_KnownSerialWithCarry_AppendsLuhnDigit()
    {
        // Serial 100000000000009: 9 → 18 → 1 + 8 = 9; the leading 1 is 15th from the right → 2.
        // Sum 11, so the check digit is 10 − 1 = 9.
        Assert.Equal("1000000000000099", CardId.FromSerial(100_000_000_000_009).Digits);
    }

    [Theory]
    [InlineData(SerialMin)]
    [InlineData(SerialMax)]
    public void FromSerial_AtLimit_Makes16Digits(ulong serial)
    {
        var digits = CardId.FromSerial(serial).Digits;

        Assert.Equal(16, digits.Length);
        Assert.StartsWith(serial.ToString(System.Globalization.CultureInfo.InvariantCulture), digits, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(SerialMin - 1)]
    [InlineData(SerialMax + 1)]
    [InlineData(0)]
    public void FromSerial_OnePastLimit_Throws(ulong serial) =>
        Assert.Throws<ArgumentOutOfRangeException>(() => CardId.FromSerial(serial));

    [Theory]
    [InlineData("4000000000000010")]
    [InlineData("4000 0000 0000 0010")]
    [InlineData("4111111111111111")] // The well-known Visa test number.
    public void TryParse_ValidNumber_Accepts(string text)
    {
        Assert.True(CardId.TryParse(text, out var id));
        Assert.Equal(text.Replace(" ", "", StringComparison.Ordinal), id.Digits);
    }

    [Theory]
    [InlineData(null)]
    [InlineData("")]
    [InlineData("4000000000000011")] // Wrong check digit.
    [InlineData("4000000000000019")] // Wrong check digit.
    [InlineData("4111111111111112")] // Wrong check digit.
    [InlineData("400000000000001")] // 15 digits.
    [InlineData("40000000000000100")] // 17 digits.
    [InlineData("0000000000000000")] // Leading zero, though the Luhn sum is fine.
    [InlineData("0400000000000014")] // Leading zero, though the Luhn sum is fine.
    [InlineData("400000000000001O")] // A letter O, not a zero.
    [InlineData("4000-0000-0000-0010")]
    [InlineData("400000000000001٠")] // An Arabic-Indic zero.
    public void TryParse_Malformed_Refuses(string? text) =>
        Assert.False(CardId.TryParse(text, out _));

    [Fact]
    public void Parse_WrongCheckDigit_ThrowsFormatException() =>
        Assert.Throws<FormatException>(() => CardId.Parse("4000000000000011"));

    [Fact]
    public void ToString_Always_MasksAllButLastFour()
    {
        var id = CardId.Parse("4111111111111111");

        Assert.Equal("•••• 1111", id.ToString());
        Assert.Equal(id.Masked, id.ToString());
        Assert.DoesNotContain(id.Digits, id.ToString(), StringComparison.Ordinal);
        Assert.DoesNotContain(id.Digits, $"{id}", StringComparison.Ordinal);
    }

    [Fact]
    public void WriteTo_ThenTryRead_RoundTrips()
    {
        var id = CardId.FromSerial(400_000_000_000_001);
        var bytes = new byte[CardId.Length];

        id.WriteTo(bytes);

        // 4000000000000010 = 0x000E35FA931A000A, big-endian.
        Assert.Equal(Convert.FromHexString("000E35FA931A000A"), bytes);
        Assert.True(CardId.TryRead(bytes, out var read));
        Assert.Equal(id, read);
    }

    [Fact]
    public void TryRead_TooShort_Refuses() =>
        Assert.False(CardId.TryRead(new byte[CardId.Length - 1], out _));

    [Theory]
    [InlineData("0000000000000000")] // Zero: 1 digit, not 16.
    [InlineData("000E35FA931A000B")] // 4000000000000011: wrong check digit.
    [InlineData("FFFFFFFFFFFFFFFF")] // 20 digits.
    public void TryRead_NotACardNumber_Refuses(string hex) =>
        Assert.False(CardId.TryRead(Convert.FromHexString(hex), out _));

    [Fact]
    public void FromSerial_AnySerial_DigitsParseBack() =>
        Gen.ULong[SerialMin, SerialMax].Sample(serial =>
        {
            var id = CardId.FromSerial(serial);
            var bytes = new byte[CardId.Length];
            id.WriteTo(bytes);

            Assert.True(CardId.TryParse(id.Digits, out var parsed));
            Assert.Equal(id, parsed);
            Assert.True(CardId.TryRead(bytes, out var read));
            Assert.Equal(id, read);
        });

    [Fact]
    public void TryParse_AnyOtherCheckDigit_Refuses() =>
        Gen.Select(Gen.ULong[SerialMin, SerialMax], Gen.Int[1, 9]).Sample((serial, shift) =>
        {
            var digits = CardId.FromSerial(serial).Digits;
            var wrong = (char)('0' + ((digits[15] - '0' + shift) % 10));

            Assert.False(CardId.TryParse(digits[..15] + wrong, out _));
        });
}
