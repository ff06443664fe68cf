using OpenPurse.Protocol;
using OpenPurse.Protocol.Jose;
using OpenPurse.Protocol.Purse;

namespace OpenPurse.Operator.Security;

/// <summary>
/// The security server 31: holds the card master key and the operator's signing key, authenticates
/// cards and builds their secured commands. The master key never leaves it; what leaves are
/// per-session keys (inside a <see cref="CardHostSession"/>) and, at issuance only, one card's keys.
/// </summary>
internal interface ISecurityModule
{
    /// <summary>The operator's ES256 key: SIG2, SIG3 (and SIG5 later).</summary>
    ISigningKey OperatorKey { get; }

    /// <summary>
    /// Diversifies the card's keys, derives the session keys from both challenges and checks the
    /// card's cryptogram and status MAC (ST11, ST13). Null with the reason when the card is not genuine.
    /// </summary>
    CardHostSession? OpenCardSession(CardId cardId, ReadOnlySpan<byte> hostChallenge, CardGreeting greeting, out CardAuthenticationError error);

    /// <summary>A new card's static keys, for its personalization (issuance only).</summary>
    IssuedCardKeys IssueCardKeys(CardId cardId);
}

/// <summary>One card's diversified static keys, written into the card at issuance and then forgotten.</summary>
internal sealed record IssuedCardKeys(CardId CardId, byte KeyVersion, byte[] EncKey, byte[] MacKey);

/// <summary>The key vault could not be opened safely.</summary>
internal sealed class KeyVaultException(string message) : Exception(message);
