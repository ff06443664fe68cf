using System.Data.Common;
using System.Diagnostics.CodeAnalysis;
using Dapper;
using OpenPurse.Operator.Registry;
using OpenPurse.Protocol;

namespace OpenPurse.Operator.Issuance;

/// <summary>
/// A card as an operator finds it: masked, its state, when it was issued and blocked, and what the
/// ledger owes it. <see cref="Reference"/> is what the other card commands take.
/// </summary>
/// <param name="Reference">
/// The card's number: the registry keys cards by it and has no other stable id. Given to an
/// administrator (who may block and unblock with it) and the node's own commands only; null for an
/// auditor. Never for a log.
/// </param>
/// <param name="Masked">The number as it may be shown: <c>•••• 1234</c>.</param>
/// <param name="State"><c>active</c> or <c>blocked</c>.</param>
/// <param name="IssuedAt">ISO 8601 UTC.</param>
/// <param name="BlockedAt">ISO 8601 UTC; null unless blocked.</param>
/// <param name="Balances">The card's account in the journal, per currency (none before its first load).</param>
internal sealed record CardView(string? Reference, string Masked, string State, string IssuedAt, string? BlockedAt, IReadOnlyList<Money> Balances)
{
    /// <summary>Whom the card is registered to; null for an unregistered card. Name and contact for an administrator only.</summary>
    public CardHolder? Holder { get; init; }

    /// <summary>The card that replaced this one, masked; null unless replaced.</summary>
    public string? ReplacedBy { get; init; }

    /// <summary>The card this one replaced, masked; null unless it is a replacement.</summary>
    public string? Replaces { get; init; }

    /// <summary>As an auditor may see it: without the reference, and of the holder the id only.</summary>
    public CardView WithoutReference() => this with { Reference = null, Holder = Holder?.WithoutPersonalData() };

    /// <summary>Masked: the reference is the card's number.</summary>
    public override string ToString() => $"{Masked} {State}";
}

/// <summary>The cards found, at most <see cref="CardRegistry.FoundMax"/>; <see cref="More"/> when there were more.</summary>
internal sealed record CardSearch(IReadOnlyList<CardView> Cards, bool More);

/// <summary>
/// The operator's daily business with cards: find one by the digits an operator has (the last
/// ones, from the holder or a receipt), block a lost one, unblock one blocked by mistake. Blocking
/// and unblocking are <see cref="CardStates"/>' transitions.
/// </summary>
internal sealed class CardRegistry(Database database, TimeProvider time)
{
    /// <summary>Fewest trailing digits a search takes: fewer would list a good part of the registry.</summary>
    public const int LastDigitsMin = 4;

    /// <summary>Most trailing digits a search takes: the rest of a number is not for the operator's desk.</summary>
    public const int LastDigitsMax = 8;

    /// <summary>Longest reason kept for a block or an unblock.</summary>
    public const int ReasonLengthMax = 200;

    /// <summary>Most cards one search answers.</summary>
    public const int FoundMax = 50;

    /// <summary>Whether <paramref name="text"/> is what a search takes: 4 to 8 ASCII digits.</summary>
    public static bool IsLastDigits([NotNullWhen(true)] string? text) =>
        text is { Length: >= LastDigitsMin and <= LastDigitsMax } && text.All(char.IsAsciiDigit);

    /// <summary>The search as it may be written to the audit trail: its last four digits, as a masked number shows them.</summary>
    public static string AuditTarget(string lastDigits)
    {
        ArgumentNullException.ThrowIfNull(lastDigits);
        return "last •••• " + lastDigits[^Math.Min(4, lastDigits.Length)..];
    }

    /// <summary>The cards whose numbers end in <paramref name="lastDigits"/>, oldest first.</summary>
    /// <remarks>A scan of the cards table (a suffix has no index); bounded by <see cref="FoundMax"/>, it reads a page and the journal of that page's cards only.</remarks>
    /// <exception cref="ArgumentException">Not 4 to 8 digits.</exception>
    public async Task<CardSearch> FindAsync(string lastDigits, CancellationToken cancellationToken)
    {
        if (!IsLastDigits(lastDigits))
        {
            throw new ArgumentException($"{LastDigitsMin} to {LastDigitsMax} digits.", nameof(lastDigits));
        }

        var (cards, more) = await ReadAsync("SUBSTR(c.card_id, @from) = @last", new { from = 17 - lastDigits.Length, last = lastDigits }, cancellationToken).ConfigureAwait(false);
        return new CardSearch(cards, more);
    }

    /// <summary>The cards registered to a holder whose name contains <paramref name="text"/> (whatever the case), or whose contact is it; oldest first.</summary>
    /// <exception cref="ArgumentException">Not a holder search (<see cref="CardHolders.IsSearch"/>).</exception>
    public async Task<CardSearch> FindByHolderAsync(string text, CancellationToken cancellationToken)
    {
        if (!CardHolders.IsSearch(text))
        {
            throw new ArgumentException("Not a holder search.", nameof(text));
        }

        var (where, parameters) = CardHolders.SearchCondition(text);
        var (cards, more) = await ReadAsync("c." + where, parameters, cancellationToken).ConfigureAwait(false);
        return new CardSearch(cards, more);
    }

    /// <summary>The cards registered to the holder with this id, oldest first.</summary>
    public async Task<CardSearch> FindByHolderIdAsync(Guid holderId, CancellationToken cancellationToken)
    {
        var (cards, more) = await ReadAsync("c.holder_id = @holderId", new { holderId = holderId.ToString() }, cancellationToken).ConfigureAwait(false);
        return new CardSearch(cards, more);
    }

    /// <summary>The card with this number; null when there is none.</summary>
    public async Task<CardView?> GetAsync(CardId cardId, CancellationToken cancellationToken)
    {
        var (cards, _) = await ReadAsync("c.card_id = @id", new { id = cardId.Digits }, cancellationToken).ConfigureAwait(false);
        return cards.SingleOrDefault();
    }

    // The cards that match the condition, oldest first, at most FoundMax (and whether there were
    // more), each with its journal balances, read in one snapshot.
    private async Task<(IReadOnlyList<CardView> Cards, bool More)> ReadAsync(string where, object parameters, CancellationToken cancellationToken)
    {
        await using var connection = await database.OpenAsync(cancellationToken).ConfigureAwait(false);
        await using var transaction = await database.BeginReadAsync(connection, cancellationToken).ConfigureAwait(false);
        var arguments = new DynamicParameters(parameters);
        arguments.Add("limit", FoundMax + 1);
        var rows = (await connection.QueryAsync<CardRow>(new CommandDefinition(
            $"""
            SELECT c.card_id AS CardId, c.status AS Status, c.issued_at AS IssuedAt, c.blocked_at AS BlockedAt,
                   h.holder_id AS HolderId, h.name AS HolderName, h.contact AS HolderContact, h.erased_at AS HolderErasedAt,
                   r.new_card_id AS ReplacedBy, p.old_card_id AS Replaces
            FROM cards c
                 LEFT JOIN card_holders h ON h.holder_id = c.holder_id
                 LEFT JOIN card_replacements r ON r.old_card_id = c.card_id
                 LEFT JOIN card_replacements p ON p.new_card_id = c.card_id
            WHERE {where} ORDER BY c.issued_at, c.card_id LIMIT @limit
            """,
            arguments, transaction, cancellationToken: cancellationToken)).ConfigureAwait(false)).ToList();
        var page = rows.Take(FoundMax).ToList();
        var balances = page.Count == 0 ? [] : await BalancesAsync(connection, transaction, page.Select(r => Account.Card(r.CardId).Text), cancellationToken).ConfigureAwait(false);
        await transaction.CommitAsync(cancellationToken).ConfigureAwait(false);

        var cards = page.Select(row =>
        {
            var account = Account.Card(row.CardId).Text;
            var held = balances.Where(b => b.Account == account && Currency.TryFromCode(b.Currency, out _))
                .Select(b => new Money(b.Balance, Currency.FromCode(b.Currency))).ToList();
            var state = CardStates.Machine.TryParse(row.Status, out var known) ? known.ToText() : row.Status;
            return new CardView(row.CardId, Ledger.MaskCard(row.CardId), state, row.IssuedAt, row.BlockedAt, held)
            {
                Holder = row.HolderId is null ? null : new CardHolder(Guid.Parse(row.HolderId), row.HolderName, row.HolderContact, row.HolderErasedAt),
                ReplacedBy = row.ReplacedBy is null ? null : Ledger.MaskCard(row.ReplacedBy),
                Replaces = row.Replaces is null ? null : Ledger.MaskCard(row.Replaces),
            };
        }).ToList();
        return (cards, rows.Count > FoundMax);
    }

    // One parameter per account, spelled out: the engines agree on IN (@a0, @a1, …), not on a list parameter.
    private static async Task<List<(string Account, string Currency, long Balance)>> BalancesAsync(
        DbConnection connection, DbTransaction transaction, IEnumerable<string> accounts, CancellationToken cancellationToken)
    {
        var arguments = new DynamicParameters();
        var names = new List<string>();
        foreach (var account in accounts)
        {
            var name = "a" + names.Count.ToString(System.Globalization.CultureInfo.InvariantCulture);
            arguments.Add(name, account);
            names.Add("@" + name);
        }

        return [.. await connection.QueryAsync<(string Account, string Currency, long Balance)>(new CommandDefinition(
            $"SELECT account, currency, CAST(SUM(amount_minor) AS BIGINT) AS balance FROM journal WHERE account IN ({string.Join(", ", names)}) GROUP BY account, currency ORDER BY account, currency",
            arguments, transaction, cancellationToken: cancellationToken)).ConfigureAwait(false)];
    }

    /// <summary>Blocks the card; a card blocked already stays so, blocked since it first was (<see cref="CardChange.Done"/>).</summary>
    public async Task<CardChange> BlockAsync(CardId cardId, CancellationToken cancellationToken)
    {
        var change = await CardStates.RunAsync(database, cardId, CardStates.Block, time.GetUtcNow(), cancellationToken).ConfigureAwait(false);
        return change == CardChange.Refused ? CardChange.Done : change;
    }

    /// <summary>Unblocks the card; <see cref="CardChange.Refused"/> when it is not blocked, <see cref="CardChange.Replaced"/> when it was replaced.</summary>
    public Task<CardChange> UnblockAsync(CardId cardId, CancellationToken cancellationToken) =>
        CardStates.RunAsync(database, cardId, CardStates.Unblock, time.GetUtcNow(), cancellationToken);

    /// <summary>A reason an administrator gives for a block or an unblock, as the audit trail keeps it: trimmed, 1 to 200 characters, no control characters.</summary>
    public static bool TryReadReason(string? text, out string reason)
    {
        reason = (text ?? "").Trim();
        return reason.Length is >= 1 and <= ReasonLengthMax && !reason.Any(char.IsControl);
    }

    private sealed record CardRow
    {
        public required string CardId { get; init; }

        public required string Status { get; init; }

        public required string IssuedAt { get; init; }

        public string? BlockedAt { get; init; }

        public string? HolderId { get; init; }

        public string? HolderName { get; init; }

        public string? HolderContact { get; init; }

        public string? HolderErasedAt { get; init; }

        public string? ReplacedBy { get; init; }

        public string? Replaces { get; init; }
    }
}
