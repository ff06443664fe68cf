using System.Globalization;
using System.Text.RegularExpressions;
using OpenPurse.Protocol;

namespace OpenPurse.Authorizer.Cards;

/// <summary>What the test mode does with a card (docs/authorizer.md, "Test cards").</summary>
internal enum TestCardBehaviour
{
    /// <summary>Approves.</summary>
    Approve,

    /// <summary>Declines with <c>do_not_honor</c>.</summary>
    Decline,

    /// <summary>Declines with <c>incorrect_pin</c>, whatever the PIN.</summary>
    FailPin,

    /// <summary>Approves up to <see cref="TestCards.Limit"/> minor units, declines with <c>limit_exceeded</c> above.</summary>
    Limit,

    /// <summary>Approves, then holds the answer longer than a caller waits.</summary>
    TimeOut,

    /// <summary>The first attempt per idempotency key answers 503 <c>authorizer.unavailable</c>; the retry approves.</summary>
    FailOnce,
}

/// <summary>
/// The test cards: Luhn-valid numbers in the issuers' usual test ranges, each with its behaviour,
/// and the one PIN they all take. Any other Luhn-valid number is declined (<c>do_not_honor</c>).
/// </summary>
internal static partial class TestCards
{
    /// <summary>The PIN of every test card; another PIN is declined with <c>incorrect_pin</c>.</summary>
    public const string Pin = "1234";

    /// <summary>The limit card's limit, in minor units of the charge's currency.</summary>
    public const long Limit = 10_000;

    public const string Approves = "4242424242424242";
    public const string Declines = "4000000000000002";
    public const string FailsPin = "4000000000000127";
    public const string ExceedsLimit = "4000000000009995";
    public const string TimesOut = "4000000000000259";
    public const string FailsOnce = "4000000000003410";

    /// <summary>The decline codes an authorization may carry.</summary>
    public const string DoNotHonor = "do_not_honor";
    public const string IncorrectPin = "incorrect_pin";
    public const string LimitExceeded = "limit_exceeded";

    private static readonly Dictionary<string, TestCardBehaviour> s_cards = new(StringComparer.Ordinal)
    {
        [Approves] = TestCardBehaviour.Approve,
        [Declines] = TestCardBehaviour.Decline,
        [FailsPin] = TestCardBehaviour.FailPin,
        [ExceedsLimit] = TestCardBehaviour.Limit,
        [TimesOut] = TestCardBehaviour.TimeOut,
        [FailsOnce] = TestCardBehaviour.FailOnce,
    };

    /// <summary>The behaviour of a card number; an unknown number declines.</summary>
    public static TestCardBehaviour BehaviourOf(string pan) => s_cards.GetValueOrDefault(pan, TestCardBehaviour.Decline);

    /// <summary>The decline code for this card, PIN and amount, or null when it approves.</summary>
    public static string? DeclineCodeFor(TestCardBehaviour behaviour, string pin, Money amount) =>
        !string.Equals(pin, Pin, StringComparison.Ordinal) || behaviour == TestCardBehaviour.FailPin ? IncorrectPin
        : behaviour == TestCardBehaviour.Decline ? DoNotHonor
        : behaviour == TestCardBehaviour.Limit && amount.MinorUnits > Limit ? LimitExceeded
        : null;

    /// <summary>12 to 19 digits.</summary>
    public static bool IsNumber(string pan) => PanPattern().IsMatch(pan);

    /// <summary>4 to 12 digits.</summary>
    public static bool IsPin(string pin) => PinPattern().IsMatch(pin);

    /// <summary>The Luhn (mod 10) check digit is right.</summary>
    public static bool PassesLuhn(string pan)
    {
        var sum = 0;
        for (var i = 0; i < pan.Length; i++)
        {
            var digit = pan[pan.Length - 1 - i] - '0';
            if (i % 2 == 1)
            {
                digit *= 2;
                if (digit > 9)
                {
                    digit -= 9;
                }
            }

            sum += digit;
        }

        return sum % 10 == 0;
    }

    /// <summary>
    /// The first moment the card is no longer valid: the start of the month after its expiry month
    /// (<c>MM/YY</c>, years 2000 to 2099), in UTC; null when the text is not such a date.
    /// </summary>
    public static DateTimeOffset? EndOf(string expiry)
    {
        var match = ExpiryPattern().Match(expiry);
        if (!match.Success)
        {
            return null;
        }

        var month = int.Parse(match.Groups[1].Value, CultureInfo.InvariantCulture);
        var year = 2000 + int.Parse(match.Groups[2].Value, CultureInfo.InvariantCulture);
        return new DateTimeOffset(year, month, 1, 0, 0, 0, TimeSpan.Zero).AddMonths(1);
    }

    [GeneratedRegex("^[0-9]{12,19}\\z", RegexOptions.CultureInvariant)]
    private static partial Regex PanPattern();

    [GeneratedRegex("^[0-9]{4,12}\\z", RegexOptions.CultureInvariant)]
    private static partial Regex PinPattern();

    [GeneratedRegex("^(0[1-9]|1[0-2])/([0-9]{2})\\z", RegexOptions.CultureInvariant)]
    private static partial Regex ExpiryPattern();
}
