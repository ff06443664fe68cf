using System.Diagnostics.CodeAnalysis;
using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;
using Dapper;
using OpenPurse.Operator.Registry;
using OpenPurse.Protocol;
using OpenPurse.Storage;

namespace OpenPurse.Operator.Issuance;

/// <summary>
/// The person a card is registered to, as the registry keeps it: a random id, a name and one
/// contact, nothing else. Only what an operator needs to find a holder's cards and move their
/// value (a replacement). Never for a log nor the audit trail, which get <see cref="HolderId"/>.
/// </summary>
/// <param name="HolderId">Random, never a card number.</param>
/// <param name="Name">Null once erased, and for an auditor.</param>
/// <param name="Contact">An e-mail address or a phone number; null once erased, and for an auditor.</param>
/// <param name="ErasedAt">ISO 8601 UTC; null unless erased.</param>
internal sealed record CardHolder(Guid HolderId, string? Name, string? Contact, string? ErasedAt)
{
    /// <summary>As an auditor sees it: the id only.</summary>
    public CardHolder WithoutPersonalData() => this with { Name = null, Contact = null };

    /// <summary>The id only: the name and the contact are personal data.</summary>
    public override string ToString() => $"holder {HolderId}";
}

/// <summary>What registering a card to a holder did.</summary>
internal enum HolderChange
{
    /// <summary>The card is registered to the holder.</summary>
    Done,

    /// <summary>No card of that number.</summary>
    CardUnknown,

    /// <summary>No holder of that id, or one erased.</summary>
    HolderUnknown,
}

/// <summary>
/// Registering cards to holders, finding them by holder, and erasing a holder's personal data on
/// request (docs/operations.md, "A card's life"). The rules of what is kept are here, once:
/// <see cref="TryReadName"/> and <see cref="TryReadContact"/>.
/// </summary>
internal sealed partial class CardHolders(Database database, TimeProvider time)
{
    /// <summary>Longest name kept.</summary>
    public const int NameLengthMax = 100;

    /// <summary>Longest e-mail address kept (RFC 5321's path limit).</summary>
    public const int EmailLengthMax = 254;

    /// <summary>Fewest characters of a name search: fewer would list a good part of the registry.</summary>
    public const int SearchLengthMin = 3;

    /// <summary>
    /// A name as the registry keeps it: trimmed, NFC, 1 to 100 characters, no control or format
    /// characters (no line breaks, no bidirectional overrides that would disguise it on a screen).
    /// </summary>
    public static bool TryReadName(string? text, [NotNullWhen(true)] out string? name)
    {
        name = null;
        if (text is null || text.Length > NameLengthMax * 4)
        {
            return false;
        }

        string normalized;
        try
        {
            normalized = text.Trim().Normalize(NormalizationForm.FormC);
        }
        catch (ArgumentException)
        {
            // Not well-formed UTF-16 (a lone surrogate).
            return false;
        }

        if (normalized.Length is < 1 or > NameLengthMax || normalized.Any(IsHidden))
        {
            return false;
        }

        name = normalized;
        return true;
    }

    /// <summary>
    /// A contact as the registry keeps it: an e-mail address (ASCII, one @, a dotted domain; kept
    /// lower-cased) or a phone number in international form (<c>+</c> and 7 to 15 digits, no spaces).
    /// A simple strict rule: what it refuses, an operator writes the other way.
    /// </summary>
    public static bool TryReadContact(string? text, [NotNullWhen(true)] out string? contact)
    {
        contact = null;
        var trimmed = text?.Trim();
        if (trimmed is null)
        {
            return false;
        }

        if (Phone().IsMatch(trimmed))
        {
            contact = trimmed;
            return true;
        }

        if (trimmed.Length <= EmailLengthMax && Email().IsMatch(trimmed))
        {
            contact = trimmed.ToLowerInvariant();
            return true;
        }

        return false;
    }

    /// <summary>What a holder search takes: 3 to 100 characters of a name, or a contact; no control characters.</summary>
    public static bool IsSearch([NotNullWhen(true)] string? text) =>
        TryReadName(text, out var name) && (name.Length >= SearchLengthMin || TryReadContact(name, out _));

    /// <summary>The id of a holder as an operator types it; false for anything but a UUID.</summary>
    public static bool TryReadHolderId(string? text, out Guid holderId) =>
        Guid.TryParseExact(text?.Trim() ?? "", "D", out holderId);

    /// <summary>
    /// Registers the card to a new holder with this name and contact, or, when it has one already,
    /// corrects that holder's name and contact (the same holder, with all their cards).
    /// </summary>
    public async Task<(HolderChange Change, Guid HolderId)> RegisterAsync(CardId cardId, string name, string contact, CancellationToken cancellationToken)
    {
        var now = StoredTime.Format(time.GetUtcNow());
        await using var write = await database.BeginWriteAsync(cancellationToken).ConfigureAwait(false);
        var (connection, transaction) = (write.Connection, write.Inner);
        var card = await connection.QuerySingleOrDefaultAsync<(string CardId, string? HolderId)?>(
            "SELECT card_id, holder_id FROM cards WHERE card_id = @id", new { id = cardId.Digits }, transaction).ConfigureAwait(false);
        if (card is null)
        {
            return (HolderChange.CardUnknown, default);
        }

        var folded = name.ToLowerInvariant();
        if (card.Value.HolderId is { } existing)
        {
            // A correction; an erased holder gets personal data again only because it was given again.
            await connection.ExecuteAsync(
                "UPDATE card_holders SET name = @name, name_folded = @folded, contact = @contact, erased_at = NULL WHERE holder_id = @existing",
                new { name, folded, contact, existing }, transaction).ConfigureAwait(false);
            await write.CommitAsync(cancellationToken).ConfigureAwait(false);
            return (HolderChange.Done, Guid.Parse(existing));
        }

        var holderId = Guid.NewGuid();
        await connection.ExecuteAsync(
            "INSERT INTO card_holders (holder_id, name, name_folded, contact, created_at) VALUES (@id, @name, @folded, @contact, @now)",
            new { id = holderId.ToString(), name, folded, contact, now }, transaction).ConfigureAwait(false);
        await connection.ExecuteAsync(
            "UPDATE cards SET holder_id = @holderId WHERE card_id = @cardId",
            new { holderId = holderId.ToString(), cardId = cardId.Digits }, transaction).ConfigureAwait(false);
        await write.CommitAsync(cancellationToken).ConfigureAwait(false);
        return (HolderChange.Done, holderId);
    }

    /// <summary>Registers the card to an existing holder (another card of theirs); refused for an erased one.</summary>
    public async Task<HolderChange> LinkAsync(CardId cardId, Guid holderId, CancellationToken cancellationToken)
    {
        await using var write = await database.BeginWriteAsync(cancellationToken).ConfigureAwait(false);
        var (connection, transaction) = (write.Connection, write.Inner);
        if (await connection.ExecuteScalarAsync<long>("SELECT COUNT(*) FROM card_holders WHERE holder_id = @id AND erased_at IS NULL", new { id = holderId.ToString() }, transaction).ConfigureAwait(false) == 0)
        {
            return HolderChange.HolderUnknown;
        }

        var linked = await connection.ExecuteAsync("UPDATE cards SET holder_id = @holderId WHERE card_id = @cardId",
            new { holderId = holderId.ToString(), cardId = cardId.Digits }, transaction).ConfigureAwait(false);
        await write.CommitAsync(cancellationToken).ConfigureAwait(false);
        return linked == 1 ? HolderChange.Done : HolderChange.CardUnknown;
    }

    /// <summary>
    /// Erases the holder's name and contact, on the holder's request. The holder's id stays on their
    /// cards, and the cards and their ledger stay: the books must go on adding up.
    /// </summary>
    /// <returns>False when there is no such holder; true when erased now or before.</returns>
    public async Task<bool> EraseAsync(Guid holderId, CancellationToken cancellationToken)
    {
        await using var write = await database.BeginWriteAsync(cancellationToken).ConfigureAwait(false);
        var exists = await write.Connection.ExecuteScalarAsync<long>("SELECT COUNT(*) FROM card_holders WHERE holder_id = @id", new { id = holderId.ToString() }, write.Inner).ConfigureAwait(false);
        await write.Connection.ExecuteAsync(
            "UPDATE card_holders SET name = NULL, name_folded = NULL, contact = NULL, erased_at = @now WHERE holder_id = @id AND erased_at IS NULL",
            new { id = holderId.ToString(), now = StoredTime.Format(time.GetUtcNow()) }, write.Inner).ConfigureAwait(false);
        await write.CommitAsync(cancellationToken).ConfigureAwait(false);
        return exists == 1;
    }

    /// <summary>
    /// The SQL condition and parameters of a holder search: the name contains the text, whatever
    /// the case, or the contact is the text (as a contact is kept).
    /// </summary>
    public static (string Where, object Parameters) SearchCondition(string text)
    {
        if (!TryReadName(text, out var name))
        {
            throw new ArgumentException("Not a holder search.", nameof(text));
        }

        // LIKE with its own escape character: a % or _ in a name is searched for as itself.
        var pattern = "%" + name.ToLowerInvariant().Replace("\\", "\\\\", StringComparison.Ordinal).Replace("%", "\\%", StringComparison.Ordinal).Replace("_", "\\_", StringComparison.Ordinal) + "%";
        var contact = TryReadContact(name, out var read) ? read : null;
        return ("holder_id IN (SELECT holder_id FROM card_holders WHERE name_folded LIKE @pattern ESCAPE '\\' OR contact = @contact)", new { pattern, contact });
    }

    /// <summary>The holder as an audit row may name it: the id only.</summary>
    public static string AuditTarget(CardId cardId, Guid holderId) =>
        string.Create(CultureInfo.InvariantCulture, $"{cardId.Masked} holder {holderId}");

    // Control characters (line breaks, escapes) and format characters (bidirectional overrides, zero-width joiners).
    private static bool IsHidden(char c) => char.IsControl(c) || char.GetUnicodeCategory(c) is UnicodeCategory.Format or UnicodeCategory.PrivateUse or UnicodeCategory.OtherNotAssigned
        || c is '\u2028' or '\u2029';

    [GeneratedRegex(@"^\+[1-9][0-9]{6,14}\z", RegexOptions.CultureInvariant)]
    private static partial Regex Phone();

    [GeneratedRegex(@"^[A-Za-z0-9._%+\-]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9\-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9\-]{0,61}[A-Za-z0-9])?)+\z", RegexOptions.CultureInvariant)]
    private static partial Regex Email();
}
