using System.Numerics;
using System.Security.Cryptography;
using System.Text;

namespace OpenPurse.Protocol.Messages;

// The bodies of a value decrease the card holder asks for (docs/protocol.md, "Transfer and
// cash-out"): the wallet sends the request with the card's greeting; the operator answers with a
// DEBIT made for the card's session and the value decrease information that describes it, signed
// by the operator; the wallet checks it, the person agrees, the card runs the DEBIT, and the wallet
// reports the card's answer. The payee's credit, or the payout, happens only once that answer (or
// the card's next greeting) proves the DEBIT ran. Written and read with ProtocolJson.Options.

/// <summary>
/// A transfer of value from the card to another card (<c>POST /v1/transfers</c>). The same request
/// again (the same id and body) answers the first answer again; the same id with another body is refused.
/// </summary>
/// <param name="TransferId">Chosen by the wallet, new for each transfer: its id, its idempotency key and the DEBIT's reference.</param>
/// <param name="Amount">What leaves the card; in a purse the card has.</param>
/// <param name="PayeeCard">The 16 digits of the card that gets the value, at its next sync.</param>
/// <param name="HostChallenge">base64 of the 8-byte host challenge the wallet gave the card.</param>
/// <param name="CardGreeting">base64 of the card's answer to INITIALIZE UPDATE.</param>
public sealed record TransferRequest(Guid TransferId, Money Amount, string PayeeCard, string HostChallenge, string CardGreeting);

/// <summary>A cash-out of value from the card to a bank account (<c>POST /v1/cashouts</c>); idempotent like <see cref="TransferRequest"/>.</summary>
/// <param name="CashOutId">Chosen by the wallet, new for each cash-out: its id, its idempotency key and the DEBIT's reference.</param>
/// <param name="Amount">What leaves the card, and what is paid to the bank account.</param>
/// <param name="Iban">The bank account (ISO 13616), as the person typed it: spaces are ignored, letters are read upper case.</param>
/// <param name="AccountHolder">The name of the account's holder, for the bank transfer.</param>
/// <param name="HostChallenge">base64 of the 8-byte host challenge the wallet gave the card.</param>
/// <param name="CardGreeting">base64 of the card's answer to INITIALIZE UPDATE.</param>
public sealed record CashOutRequest(Guid CashOutId, Money Amount, string Iban, string AccountHolder, string HostChallenge, string CardGreeting);

/// <summary>
/// Value decrease information, signed by the operator (<see cref="MessageTypes.ValueDecrease"/>):
/// what a DEBIT the card holder asked for takes from the card and where it goes, checked by the
/// wallet before the person is asked and the DEBIT reaches the card.
/// </summary>
/// <param name="ValueUpdateId">The DEBIT's transaction reference (the card writes it in its log): the transfer's or cash-out's id.</param>
/// <param name="CardId">The paying card's full number.</param>
/// <param name="Amount">What the DEBIT takes.</param>
/// <param name="Balance">The balance the card reported before it.</param>
/// <param name="Purpose">One of <see cref="ValueDecreasePurposes"/>.</param>
/// <param name="SourceId">The transfer or cash-out.</param>
/// <param name="Payee">Where the value goes, masked: the payee card's last four digits, or the IBAN's country and last four characters.</param>
/// <param name="OrderDigest">base64url of the DEBIT order's digest: <see cref="ValueDecreasePurposes.OrderDigest"/>, which the wallet computes itself.</param>
/// <param name="DebitDigest">base64url SHA-256 of the secured DEBIT command bytes.</param>
public sealed record ValueDecrease(Guid ValueUpdateId, string CardId, Money Amount, Money Balance, string Purpose, Guid SourceId, string Payee, string OrderDigest, string DebitDigest);

/// <summary>The DEBIT of a value decrease, to run once the person agrees.</summary>
/// <param name="ValueUpdateId">The DEBIT's transaction reference.</param>
/// <param name="ExternalAuthenticate">base64 secured EXTERNAL AUTHENTICATE APDU.</param>
/// <param name="Debit">base64 secured DEBIT APDU without the approval, which the wallet appends from what the person asked for.</param>
/// <param name="ValueDecrease">The <see cref="Messages.ValueDecrease"/> as a compact JWS of the operator.</param>
public sealed record CardDebit(Guid ValueUpdateId, string ExternalAuthenticate, string Debit, string ValueDecrease);

/// <summary>A transfer the operator made a DEBIT for: the answer of <c>POST /v1/transfers</c>.</summary>
/// <param name="TransferId">The transfer.</param>
/// <param name="State">Its state: <c>debiting</c>.</param>
/// <param name="Amount">What the DEBIT takes.</param>
/// <param name="Payee">The payee card, masked.</param>
/// <param name="Debit">The card's commands and the value decrease information.</param>
public sealed record TransferResponse(Guid TransferId, string State, Money Amount, string Payee, CardDebit Debit);

/// <summary>A transfer as the operator holds it: the answer of <c>POST /v1/transfers/{id}/completion</c>.</summary>
/// <param name="TransferId">The transfer.</param>
/// <param name="State"><c>debiting</c>, <c>debited</c> (the value is owed to the payee card until its next sync) or <c>abandoned</c> (the card never ran the DEBIT; nothing moved).</param>
/// <param name="Amount">What the transfer moves.</param>
/// <param name="Payee">The payee card, masked.</param>
/// <param name="BalanceAfter">The paying card's balance after the DEBIT, when the card reported it.</param>
public sealed record TransferView(Guid TransferId, string State, Money Amount, string Payee, Money? BalanceAfter);

/// <summary>A cash-out the operator made a DEBIT for: the answer of <c>POST /v1/cashouts</c>.</summary>
/// <param name="CashOutId">The cash-out.</param>
/// <param name="State">Its state: <c>debiting</c>.</param>
/// <param name="Amount">What the DEBIT takes, and what is paid to the bank account.</param>
/// <param name="Payee">The IBAN, masked.</param>
/// <param name="Debit">The card's commands and the value decrease information.</param>
public sealed record CashOutResponse(Guid CashOutId, string State, Money Amount, string Payee, CardDebit Debit);

/// <summary>A cash-out as the operator holds it: the answer of <c>POST /v1/cashouts/{id}/completion</c>.</summary>
/// <param name="CashOutId">The cash-out.</param>
/// <param name="State">
/// <c>debiting</c>, <c>debited</c> (the payout waits for the bank transfer), <c>paid</c>, <c>returned</c>
/// (the bank sent it back; the card gets it at its next sync) or <c>abandoned</c> (the card never ran the DEBIT).
/// </param>
/// <param name="Amount">What the cash-out moves.</param>
/// <param name="Payee">The IBAN, masked.</param>
/// <param name="BalanceAfter">The card's balance after the DEBIT, when the card reported it.</param>
public sealed record CashOutView(Guid CashOutId, string State, Money Amount, string Payee, Money? BalanceAfter);

/// <summary>What a value decrease is for (<see cref="ValueDecrease.Purpose"/>), and the digest its DEBIT's order carries.</summary>
public static class ValueDecreasePurposes
{
    /// <summary>Value sent to another card, which takes it at its next sync; the source is the transfer.</summary>
    public const string Transfer = "transfer";

    /// <summary>Value paid out to a bank account; the source is the cash-out.</summary>
    public const string CashOut = "cashout";

    /// <summary>
    /// The digest in the DEBIT's order, which the card writes in its log and the person's approval
    /// repeats: SHA-256 over <c>"openpurse-" purpose ":"</c>, the id (16 bytes, big-endian), the
    /// amount (minor units as 8 bytes big-endian, then the currency's code) and the full payee (the
    /// card's 16 digits, or the IBAN in its electronic form). The wallet computes it from what the
    /// person asked for: a DEBIT made for another payee or amount does not run.
    /// </summary>
    /// <exception cref="ArgumentException">Not one of the purposes.</exception>
    public static byte[] OrderDigest(string purpose, Guid sourceId, Money amount, string payee)
    {
        ArgumentNullException.ThrowIfNull(payee);
        if (purpose is not (Transfer or CashOut))
        {
            throw new ArgumentException("Not a value decrease purpose.", nameof(purpose));
        }

        var minor = new byte[8];
        System.Buffers.Binary.BinaryPrimitives.WriteInt64BigEndian(minor, amount.MinorUnits);
        return SHA256.HashData([
            .. Encoding.ASCII.GetBytes($"openpurse-{purpose}:"), .. sourceId.ToByteArray(bigEndian: true), .. minor,
            .. Encoding.ASCII.GetBytes(amount.Currency.Code), .. Encoding.UTF8.GetBytes(payee)]);
    }
}

/// <summary>
/// An International Bank Account Number (ISO 13616): its length for the country, and the check
/// digits by ISO 7064 mod 97-10. Checked by the operator before a cash-out, and by the wallet before
/// it asks.
/// </summary>
public static class Iban
{
    // The IBAN length of each country in the ISO 13616 registry (SWIFT, release 2024).
    private static readonly Dictionary<string, int> s_lengths = new(StringComparer.Ordinal)
    {
        ["AD"] = 24,
        ["AE"] = 23,
        ["AL"] = 28,
        ["AT"] = 20,
        ["AZ"] = 28,
        ["BA"] = 20,
        ["BE"] = 16,
        ["BG"] = 22,
        ["BH"] = 22,
        ["BI"] = 27,
        ["BR"] = 29,
        ["BY"] = 28,
        ["CH"] = 21,
        ["CR"] = 22,
        ["CY"] = 28,
        ["CZ"] = 24,
        ["DE"] = 22,
        ["DJ"] = 27,
        ["DK"] = 18,
        ["DO"] = 28,
        ["EE"] = 20,
        ["EG"] = 29,
        ["ES"] = 24,
        ["FI"] = 18,
        ["FK"] = 18,
        ["FO"] = 18,
        ["FR"] = 27,
        ["GB"] = 22,
        ["GE"] = 22,
        ["GI"] = 23,
        ["GL"] = 18,
        ["GR"] = 27,
        ["GT"] = 28,
        ["HN"] = 28,
        ["HR"] = 21,
        ["HU"] = 28,
        ["IE"] = 22,
        ["IL"] = 23,
        ["IQ"] = 23,
        ["IS"] = 26,
        ["IT"] = 27,
        ["JO"] = 30,
        ["KW"] = 30,
        ["KZ"] = 20,
        ["LB"] = 28,
        ["LC"] = 32,
        ["LI"] = 21,
        ["LT"] = 20,
        ["LU"] = 20,
        ["LV"] = 21,
        ["LY"] = 25,
        ["MC"] = 27,
        ["MD"] = 24,
        ["ME"] = 22,
        ["MK"] = 19,
        ["MN"] = 20,
        ["MR"] = 27,
        ["MT"] = 31,
        ["MU"] = 30,
        ["NI"] = 28,
        ["NL"] = 18,
        ["NO"] = 15,
        ["OM"] = 23,
        ["PK"] = 24,
        ["PL"] = 28,
        ["PS"] = 29,
        ["PT"] = 25,
        ["QA"] = 29,
        ["RO"] = 24,
        ["RS"] = 22,
        ["RU"] = 33,
        ["SA"] = 24,
        ["SC"] = 31,
        ["SD"] = 18,
        ["SE"] = 24,
        ["SI"] = 19,
        ["SK"] = 24,
        ["SM"] = 27,
        ["SO"] = 23,
        ["ST"] = 25,
        ["SV"] = 28,
        ["TL"] = 23,
        ["TN"] = 24,
        ["TR"] = 26,
        ["UA"] = 29,
        ["VA"] = 22,
        ["VG"] = 24,
        ["XK"] = 20,
        ["YE"] = 30,
    };

    /// <summary>Why an IBAN was refused, or <see cref="IbanError.None"/>.</summary>
    /// <param name="text">The IBAN as typed: spaces are ignored, letters read upper case.</param>
    /// <param name="iban">Its electronic form (no spaces, upper case) when valid.</param>
    public static IbanError TryNormalize(string? text, out string iban)
    {
        iban = "";
        if (string.IsNullOrWhiteSpace(text) || text.Length > 64)
        {
            return IbanError.Malformed;
        }

        var compact = string.Concat(text.Where(c => c != ' ')).ToUpperInvariant();
        if (compact.Length < 5 || !compact.All(char.IsAsciiLetterOrDigit) || !char.IsAsciiLetter(compact[0]) || !char.IsAsciiLetter(compact[1])
            || !char.IsAsciiDigit(compact[2]) || !char.IsAsciiDigit(compact[3]))
        {
            return IbanError.Malformed;
        }

        if (!s_lengths.TryGetValue(compact[..2], out var length))
        {
            return IbanError.UnknownCountry;
        }

        if (compact.Length != length)
        {
            return IbanError.WrongLength;
        }

        // ISO 7064 mod 97-10: the first four characters moved to the end, letters as 10..35, the number mod 97 is 1.
        var digits = new StringBuilder(length * 2);
        foreach (var c in compact[4..] + compact[..4])
        {
            digits.Append(char.IsAsciiDigit(c) ? (c - '0').ToString(System.Globalization.CultureInfo.InvariantCulture) : (c - 'A' + 10).ToString(System.Globalization.CultureInfo.InvariantCulture));
        }

        if (BigInteger.Parse(digits.ToString(), System.Globalization.CultureInfo.InvariantCulture) % 97 != 1)
        {
            return IbanError.CheckDigits;
        }

        iban = compact;
        return IbanError.None;
    }

    /// <summary>An IBAN as it may be shown or logged: its country and last four characters, e.g. <c>DE…3000</c>.</summary>
    public static string Mask(string iban)
    {
        ArgumentNullException.ThrowIfNull(iban);
        return iban.Length < 8 ? "••" : $"{iban[..2]}…{iban[^4..]}";
    }
}

/// <summary>Why <see cref="Iban.TryNormalize"/> refused an IBAN.</summary>
public enum IbanError
{
    /// <summary>Valid.</summary>
    None,

    /// <summary>Not two letters, two digits and letters or digits.</summary>
    Malformed,

    /// <summary>A country that has no IBAN.</summary>
    UnknownCountry,

    /// <summary>Not the length of the country's IBANs.</summary>
    WrongLength,

    /// <summary>The check digits do not match (mod 97): a character was mistyped.</summary>
    CheckDigits,
}
