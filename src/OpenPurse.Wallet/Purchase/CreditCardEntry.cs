using System.Globalization;
using OpenPurse.Protocol.Messages;

namespace OpenPurse.Wallet.Purchase;

/// <summary>
/// The credit card's number, expiry and PIN as the person typed them, checked before anything is
/// sent: the number's Luhn digit, the expiry (MM/YY, valid to the end of its month) and the PIN's
/// form. The messages never repeat what was typed: a terminal's scrollback is not a safe place.
/// </summary>
internal static class CreditCardEntry
{
    public const int NumberLengthMin = 12;
    public const int NumberLengthMax = 19;
    public const int PinLengthMin = 4;
    public const int PinLengthMax = 12;

    /// <summary>The card data to encrypt for the authorizer, or a <see cref="WalletException"/> saying what is wrong.</summary>
    /// <param name="number">The card number; spaces and dashes between digits are allowed.</param>
    /// <param name="expiry">MM/YY.</param>
    /// <param name="pin">The PIN, digits only.</param>
    /// <param name="now">Today, to tell an expired card.</param>
    public static CardData Check(string? number, string? expiry, string? pin, DateTimeOffset now)
    {
        var digits = string.Concat((number ?? "").Where(c => c is not (' ' or '-')));
        if (digits.Length is < NumberLengthMin or > NumberLengthMax || !digits.All(char.IsAsciiDigit))
        {
            throw new WalletException(WalletErrors.CreditCardNumberInvalid, $"The credit card number must be {NumberLengthMin} to {NumberLengthMax} digits. Nothing was sent.");
        }

        if (!LuhnValid(digits))
        {
            throw new WalletException(WalletErrors.CreditCardNumberInvalid, "The credit card number is mistyped (its check digit does not match). Nothing was sent.");
        }

        var month = ParseExpiry(expiry?.Trim());
        if (month is null)
        {
            throw new WalletException(WalletErrors.CreditCardExpiryInvalid, "The expiry must be the month and year printed on the card, MM/YY (e.g. 12/29). Nothing was sent.");
        }

        var today = now.UtcDateTime;
        if (month.Value.Year < today.Year || (month.Value.Year == today.Year && month.Value.Month < today.Month))
        {
            throw new WalletException(WalletErrors.CreditCardExpired, "The credit card has expired. Nothing was sent.");
        }

        var trimmedPin = pin?.Trim() ?? "";
        if (trimmedPin.Length is < PinLengthMin or > PinLengthMax || !trimmedPin.All(char.IsAsciiDigit))
        {
            throw new WalletException(WalletErrors.CreditCardPinInvalid, $"The PIN must be {PinLengthMin} to {PinLengthMax} digits. Nothing was sent.");
        }

        return new CardData(digits, expiry!.Trim(), trimmedPin);
    }

    /// <summary>The Luhn check (ISO/IEC 7812-1): every second digit from the right doubled.</summary>
    public static bool LuhnValid(string digits)
    {
        ArgumentNullException.ThrowIfNull(digits);
        var sum = 0;
        for (var i = 0; i < digits.Length; i++)
        {
            var digit = digits[digits.Length - 1 - i] - '0';
            if (i % 2 == 1)
            {
                digit *= 2;
                digit = digit > 9 ? digit - 9 : digit;
            }

            sum += digit;
        }

        return sum % 10 == 0;
    }

    // MM/YY: the last month the card is valid, in this century.
    private static (int Year, int Month)? ParseExpiry(string? text)
    {
        if (text is not { Length: 5 } || text[2] != '/'
            || !int.TryParse(text.AsSpan(0, 2), NumberStyles.None, CultureInfo.InvariantCulture, out var month)
            || !int.TryParse(text.AsSpan(3, 2), NumberStyles.None, CultureInfo.InvariantCulture, out var year)
            || month is < 1 or > 12)
        {
            return null;
        }

        return (2000 + year, month);
    }
}
