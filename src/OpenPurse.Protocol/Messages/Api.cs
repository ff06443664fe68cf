namespace OpenPurse.Protocol.Messages;

/// <summary>Round trip 1: the signed bill and the card's greeting (INITIALIZE UPDATE answer).</summary>
/// <param name="Bill">BILL+SIG1, compact JWS, as the store gave it.</param>
/// <param name="Profile">Signed (SIG2) or lean.</param>
/// <param name="CardGreeting">base64 of the card's INITIALIZE UPDATE answer data, for the host challenge derived from the bill.</param>
public sealed record StartSettlementRequest(string Bill, SettlementProfile Profile, string CardGreeting);

/// <summary>Round trip 1's answer: the two card commands, and SIG2 in profile "signed".</summary>
/// <param name="SettlementId">The settlement.</param>
/// <param name="ExternalAuthenticate">base64 EXTERNAL AUTHENTICATE APDU.</param>
/// <param name="Debit">base64 secured DEBIT APDU without the approval, which the wallet prepends.</param>
/// <param name="SettlementInfo">SIG2 over <see cref="Messages.SettlementInfo"/>; null in profile "lean".</param>
public sealed record StartSettlementResponse(Guid SettlementId, string ExternalAuthenticate, string Debit, string? SettlementInfo);

/// <summary>Round trip 2: the card's secured answer to the DEBIT (the completion notice PCN).</summary>
public sealed record CompleteSettlementRequest(string CardAnswer);

/// <summary>Round trip 2's answer: ACN+SIG3, and the store's receipt+SIG4 when the store answered in time.</summary>
public sealed record CompleteSettlementResponse(string CompletionNotice, string? Receipt);

/// <summary>The operator's notice to a store (or mall): the ACN; the store answers with its receipt.</summary>
public sealed record CompletionDelivery(string CompletionNotice);

/// <summary>The operator's notice to a store (or mall) that a settlement is not paid; the store answers 204.</summary>
public sealed record VoidDelivery(string VoidNotice);

/// <summary>
/// The card online outside a purchase: its greeting to a host challenge the wallet chose, so the
/// operator can resolve what the card left unfinished and return what it owes the card.
/// </summary>
/// <param name="HostChallenge">base64 of the 8-byte host challenge sent in INITIALIZE UPDATE.</param>
/// <param name="CardGreeting">base64 of the card's INITIALIZE UPDATE answer data.</param>
public sealed record CardSyncRequest(string HostChallenge, string CardGreeting);

/// <summary>What the sync resolved, and a CREDIT for the card when the operator owes it value.</summary>
/// <param name="Resolved">The settlements the card's greeting resolved, with their new state.</param>
/// <param name="Credit">The CREDIT to run, or null when nothing is owed.</param>
public sealed record CardSyncResponse(IReadOnlyList<SettlementOutcome> Resolved, CardCredit? Credit);

/// <summary>A settlement and the state the card's greeting put it in.</summary>
public sealed record SettlementOutcome(Guid SettlementId, string State);

/// <summary>A CREDIT for the card with its value update information.</summary>
/// <param name="ValueUpdateId">The CREDIT's reference; its completion goes to <c>/v1/cards/credits/{id}/completion</c>.</param>
/// <param name="ExternalAuthenticate">base64 EXTERNAL AUTHENTICATE APDU.</param>
/// <param name="Credit">base64 secured CREDIT APDU without the approval, which the wallet prepends.</param>
/// <param name="ValueUpdate">SIG5 over <see cref="Messages.ValueUpdate"/>.</param>
public sealed record CardCredit(Guid ValueUpdateId, string ExternalAuthenticate, string Credit, string ValueUpdate);

/// <summary>A store's receipt, to the operator or the wallet.</summary>
public sealed record ReceiptDelivery(string Receipt);

/// <summary>A settlement's state as the operator reports it.</summary>
public sealed record SettlementView(Guid SettlementId, string State, string OrderNo, string StoreId, Money Amount, string? CompletionNotice, string? Receipt);

/// <summary>
/// A store's request to read one of its settlements (<c>GET /v1/settlements/{id}</c>), signed with
/// the store's key and sent in <see cref="SettlementReadProof.StoreHeader"/>.
/// </summary>
/// <param name="SettlementId">The settlement it asks about; a query for one settlement never reads another.</param>
/// <param name="StoreId">The store that asks, which must be the settlement's store.</param>
/// <param name="IssuedAt">When it was signed; the operator accepts it for a few minutes only.</param>
public sealed record SettlementQuery(Guid SettlementId, string StoreId, DateTimeOffset IssuedAt);

/// <summary>
/// How a party proves that it belongs to a settlement before the operator shows it: the ACN and
/// the receipt in the answer are what a download needs, so an id alone is not enough. The store
/// proves it with its signing key, the wallet with the DEBIT command the operator gave only to it.
/// </summary>
public static class SettlementReadProof
{
    /// <summary>Carries a store's <see cref="SettlementQuery"/>, a compact JWS.</summary>
    public const string StoreHeader = "X-OpenPurse-Store-Query";

    /// <summary>Carries the wallet's proof: base64url SHA-256 of the secured DEBIT command of round trip 1.</summary>
    public const string WalletHeader = "X-OpenPurse-Debit-Digest";

    /// <summary>The store's signed query for <paramref name="settlementId"/>.</summary>
    public static string ForStore(Jose.ISigningKey key, Guid settlementId, string storeId, DateTimeOffset now) =>
        SignedMessage.Sign(key, new SettlementQuery(settlementId, storeId, now), MessageTypes.SettlementQuery);

    /// <summary>The wallet's proof for the settlement that round trip 1 answered with <paramref name="started"/>.</summary>
    /// <exception cref="FormatException">The DEBIT is not base64.</exception>
    public static string ForWallet(StartSettlementResponse started)
    {
        ArgumentNullException.ThrowIfNull(started);
        return ForDebit(Convert.FromBase64String(started.Debit));
    }

    /// <summary>The wallet's proof from the secured DEBIT command's bytes.</summary>
    public static string ForDebit(ReadOnlySpan<byte> debit) =>
        System.Buffers.Text.Base64Url.EncodeToString(System.Security.Cryptography.SHA256.HashData(debit));
}

/// <summary>
/// The operator asks a store what it recorded as paid (<c>GET …/v1/operator/statements/{storeId}</c>
/// beside the store's completions address), to reconcile its books with the store's. Signed by the
/// operator and sent in <see cref="StatementQuery.Header"/>: only the operator may read a store's sales.
/// A statement comes in pages (each one signed JWS, so within its length limit): the first query
/// has no <paramref name="After"/>, each next one the last settlement of the page before.
/// </summary>
/// <param name="StoreId">The (member) store whose statement is asked for.</param>
/// <param name="IssuedAt">When it was signed; the store accepts it for a few minutes only.</param>
/// <param name="After">The page after this settlement; null for the first page.</param>
public sealed record StatementQuery(string StoreId, DateTimeOffset IssuedAt, Guid? After = null)
{
    /// <summary>Carries the operator's signed <see cref="StatementQuery"/>.</summary>
    public const string Header = "X-OpenPurse-Operator-Query";
}

/// <summary>
/// A page of a store's statement of every order it recorded as paid, signed with the store's key.
/// The lines go in the ordinal order of their settlement ids' lowercase text
/// (<c>Guid.ToString("D")</c>), each page after <paramref name="After"/>, so that the pages of one
/// statement never hold a settlement twice and a page cannot be passed off as another.
/// </summary>
/// <param name="StoreId">The (member) store.</param>
/// <param name="IssuedAt">When the store made it.</param>
/// <param name="Paid">Each paid order with the settlement that paid it; at most <see cref="PageLinesMax"/>.</param>
/// <param name="After">The query's: the page holds only settlements after this one; null on the first page.</param>
/// <param name="More">Whether a page follows, asked for with the last settlement of this one.</param>
public sealed record StoreStatement(string StoreId, DateTimeOffset IssuedAt, IReadOnlyList<StatementLine> Paid, Guid? After = null, bool More = false)
{
    /// <summary>
    /// The lines of one page at most. The longest line (ids of 64 characters, the largest amount)
    /// takes about 220 bytes of JSON, so a full page signs to under 45 KiB, within a JWS's 64 KiB.
    /// </summary>
    public const int PageLinesMax = 150;

    /// <summary>Whether <paramref name="settlementId"/> comes after <paramref name="previous"/> in a statement's order.</summary>
    /// <param name="previous">The settlement before, or null at the start.</param>
    /// <param name="settlementId">The next line's.</param>
    public static bool Follows(Guid? previous, Guid settlementId) =>
        previous is not { } before || string.CompareOrdinal(before.ToString("D"), settlementId.ToString("D")) < 0;
}

/// <summary>One payment a store recorded.</summary>
public sealed record StatementLine(Guid SettlementId, string OrderNo, Money Amount);

/// <summary>The store's answer to a <see cref="StatementQuery"/>: the <see cref="StoreStatement"/> as a compact JWS.</summary>
public sealed record StatementDelivery(string Statement);

/// <summary>
/// A store asks the operator to know it: its id, its name, its mall, where completion notices go,
/// and its public keys (the keys SIG1 and SIG4 are checked with). The store writes it, the
/// operator's administrator registers it (<c>POST /v1/admin/stores</c> or
/// <c>openpurse-operator store register</c>).
/// </summary>
/// <param name="StoreId">The id the operator knows the store by.</param>
/// <param name="Name">The name shown to people.</param>
/// <param name="MallId">The mall that hosts the store, or null.</param>
/// <param name="NotifyUrl">Where the operator sends the ACN, or null when the wallet brings it.</param>
/// <param name="Jwks">The store's public keys, a JWK set.</param>
public sealed record StoreRegistration(string StoreId, string Name, string? MallId, string? NotifyUrl, System.Text.Json.JsonElement Jwks);
