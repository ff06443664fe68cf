using System.Text.Json;

namespace OpenPurse.Protocol.Messages;

// The bodies of a top-up by credit card (docs/protocol.md, "Top-up"): the wallet asks the operator
// for the credit authorizer's key, encrypts the card data to it, and sends the top-up with the
// card's greeting; the operator has the charge authorized and answers with a CREDIT and SIG5; the
// wallet reports the card's answer, and the operator captures the charge once it proves the credit.
// Written and read with ProtocolJson.Options.

/// <summary>
/// A top-up (<c>POST /v1/topups</c>). Sending the same request again (the same id and body)
/// answers the first answer again; the same id with another body is refused.
/// </summary>
/// <param name="TopUpId">Chosen by the wallet, new for each top-up: the top-up's id and its idempotency key.</param>
/// <param name="Amount">What to add to the card, charged to the credit card; in the card's currency.</param>
/// <param name="HostChallenge">base64 of the 8-byte host challenge the wallet gave the card.</param>
/// <param name="CardGreeting">base64 of the card's answer to INITIALIZE UPDATE (balance, counter, last record).</param>
/// <param name="CardData">
/// The credit card's number, expiry and PIN (<see cref="CardData"/>) as a compact JWE encrypted to
/// the authorizer's key (<see cref="AuthorizerKeys"/>): the operator forwards it unopened.
/// </param>
public sealed record TopUpRequest(Guid TopUpId, Money Amount, string HostChallenge, string CardGreeting, string CardData);

/// <summary>An approved top-up: the CREDIT for the card, with SIG5, to run once the person agrees.</summary>
/// <param name="TopUpId">The top-up.</param>
/// <param name="State">Its state: <c>crediting</c>.</param>
/// <param name="Amount">What the CREDIT adds, and what is charged once the card took it.</param>
/// <param name="LastFour">The last four digits of the credit card charged, to show the person.</param>
/// <param name="Credit">The secured commands for the card and the value update (SIG5) that describes them.</param>
public sealed record TopUpResponse(Guid TopUpId, string State, Money Amount, string LastFour, CardCredit Credit);

/// <summary>A top-up as the operator holds it: the answer of <c>POST /v1/topups/{id}/completion</c>.</summary>
/// <param name="TopUpId">The top-up.</param>
/// <param name="State">
/// <c>authorizing</c>, <c>declined</c>, <c>crediting</c>, <c>credited</c> (the card took the value;
/// the charge is being captured), <c>captured</c>, <c>voiding</c> or <c>voided</c> (the card never
/// took it; nothing is charged).
/// </param>
/// <param name="Amount">What the top-up adds.</param>
/// <param name="LastFour">The last four digits of the credit card.</param>
/// <param name="BalanceAfter">The card's balance after the credit, when the card reported it.</param>
public sealed record TopUpView(Guid TopUpId, string State, Money Amount, string LastFour, Money? BalanceAfter);

/// <summary>
/// The credit authorizer's public keys (a JWK set), signed by the operator
/// (<see cref="MessageTypes.AuthorizerKeys"/>), so that a wallet that trusts the operator's keys
/// can trust the key it encrypts card data to.
/// </summary>
/// <param name="Keys">The authorizer's JWK set, as it publishes it.</param>
/// <param name="IssuedAt">When the operator signed it.</param>
public sealed record AuthorizerKeys(JsonElement Keys, DateTimeOffset IssuedAt);

/// <summary>The answer of <c>GET /v1/topups/authorizer-keys</c>.</summary>
/// <param name="Keys">The <see cref="AuthorizerKeys"/> as a compact JWS of the operator.</param>
public sealed record AuthorizerKeysResponse(string Keys);

/// <summary>
/// How a wallet proves that a top-up is its own before the operator shows it (<c>GET /v1/topups/{id}</c>):
/// with the secured CREDIT command the operator gave only to it. A top-up the issuer declined has
/// no CREDIT, and cannot be read.
/// </summary>
public static class TopUpReadProof
{
    /// <summary>Carries the wallet's proof: base64url SHA-256 of the secured CREDIT command (<see cref="CardCredit.Credit"/>).</summary>
    public const string WalletHeader = "X-OpenPurse-Credit-Digest";

    /// <summary>The wallet's proof for the top-up that <paramref name="response"/> approved.</summary>
    /// <exception cref="FormatException">The CREDIT is not base64.</exception>
    public static string ForWallet(TopUpResponse response)
    {
        ArgumentNullException.ThrowIfNull(response);
        return System.Buffers.Text.Base64Url.EncodeToString(System.Security.Cryptography.SHA256.HashData(Convert.FromBase64String(response.Credit.Credit)));
    }
}
