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
    /// <summary>
    /// The operator's ES256 key that signs now: SIG2, SIG3 (and SIG5 later). On a node it is the
    /// registry's active key (<see cref="OperatorKeyRing"/>); a bare vault answers its first key.
    /// </summary>
    ISigningKey OperatorKey { get; }

    /// <summary>The card master key versions the module holds, oldest first; new cards get the last.</summary>
    IReadOnlyList<byte> MasterKeyVersions { get; }

    /// <summary>
    /// The signing key with this kid, if the vault holds it; looked for again in the vault's storage
    /// when this process has not loaded it (a key another process added).
    /// </summary>
    ISigningKey? FindSigningKey(string kid);

    /// <summary><c>key rotate</c>: a new signing key pair in the vault, under a label of its own.</summary>
    ISigningKey CreateSigningKey();

    /// <summary><c>key rotate-master</c>: card master key version N+1 in the vault; its version.</summary>
    byte CreateMasterKey();

    /// <summary>
    /// Diversifies the card's keys under the master key of the greeting's key version
    /// (<see cref="CardAuthenticationError.KeyVersionUnknown"/> when the module holds none), derives the session keys from both challenges and checks the
    /// card's cryptogram and status MAC (ST11, ST13). Null with the reason when the card is not genuine.
    /// </summary>
    CardHostSession? OpenCardSession(CardId cardId, ReadOnlySpan<byte> hostChallenge, CardGreeting greeting, out CardAuthenticationError error);

    /// <summary>A new card's static keys under the newest master key, for its personalization (issuance only).</summary>
    IssuedCardKeys IssueCardKeys(CardId cardId);
}

/// <summary>One card's diversified static keys, written into the card at issuance and then forgotten.</summary>
internal sealed record IssuedCardKeys(CardId CardId, byte KeyVersion, byte[] EncKey, byte[] MacKey);

/// <summary>The key vault could not be opened safely.</summary>
internal sealed class KeyVaultException(string message) : Exception(message);
