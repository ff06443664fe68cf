using System.Globalization;
using System.Text.Json;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using OpenPurse.Hosting;
using OpenPurse.Operator.Issuance;
using OpenPurse.Protocol;
using OpenPurse.Protocol.Messages;
using OpenPurse.Storage;
using Spectre.Console;

namespace OpenPurse.Operator;

/// <summary>
/// A card's life at the station (docs/operations.md, "A card's life"): cards issued by the batch,
/// registered to their holders, found by holder, replaced when lost; a holder's personal data
/// erased on request. Each audited like the admin API's actions, with the card masked and the
/// holder by id.
/// </summary>
internal static partial class StationCommands
{
    /// <summary>Most cards one batch issues.</summary>
    public const int BatchMax = 1_000;

    /// <summary>
    /// <c>card issue --count N --out DIR [--load AMOUNT] [--json]</c>: N cards, each into its own
    /// owner-only file DIR/NNNN-LAST4.card, DIR made owner-only when it does not exist. Stops at the
    /// first failure (that card is not half-issued: its file is removed and its number blocked) and
    /// lists what was issued.
    /// </summary>
    public static async Task<int> IssueCardsAsync(OperatorOptions options, int count, string directory, Money? load, bool json, TextWriter output, TextWriter error)
    {
        ArgumentNullException.ThrowIfNull(directory);
        ArgumentNullException.ThrowIfNull(output);
        ArgumentNullException.ThrowIfNull(error);
        if (count is < 1 or > BatchMax)
        {
            error.WriteLine($"openpurse-operator: --count is 1 to {BatchMax}.");
            return ExitUsage;
        }

        if (load is { } asked && asked.MinorUnits > IssuingStation.DefaultBalanceMaxMinor)
        {
            error.WriteLine($"openpurse-operator: a card holds at most {new Money(IssuingStation.DefaultBalanceMaxMinor, asked.Currency)}; --load {asked} is more.");
            return ExitUsage;
        }

        if (File.Exists(directory))
        {
            error.WriteLine($"openpurse-operator: {directory} is a file; a batch is issued into a directory.");
            return ExitFailed;
        }

        if (Directory.Exists(directory) && Directory.EnumerateFileSystemEntries(directory).Any())
        {
            error.WriteLine($"openpurse-operator: {directory} is not empty; a batch is issued into a new or empty directory.");
            return ExitFailed;
        }

        try
        {
            directory = PrivateFiles.CreateDirectory(directory);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            error.WriteLine($"openpurse-operator: cannot make {directory}: {e.Message}");
            return ExitFailed;
        }

        return await WithStationAsync(options, async services =>
        {
            var issuer = services.GetRequiredService<CardIssuer>();
            var issued = new List<IssuedCardFile>();
            string? failure = null;
            var amount = load ?? Money.Zero(Currency.Eur);

            // One card: its own file, its own audit row.
            async Task<bool> IssueOneAsync(int index)
            {
                // The file is named once the number is known; a temporary name until then.
                var pending = Path.Combine(directory, string.Create(CultureInfo.InvariantCulture, $"{index:D4}.card.new"));
                try
                {
                    CardId cardId;
                    using (var card = await issuer.IssueCardFileAsync(pending, amount).ConfigureAwait(false))
                    {
                        cardId = card.CardId;
                    }

                    var path = Path.Combine(directory, string.Create(CultureInfo.InvariantCulture, $"{index:D4}-{cardId.Digits[^4..]}.card"));
                    File.Move(pending, path);
                    await AuditAsync(services, "card.issue", cardId.Masked, StatusCodes.Status200OK, null).ConfigureAwait(false);
                    issued.Add(new IssuedCardFile(cardId.Digits, cardId.Masked, path, load is { IsPositive: true } ? amount : null));
                    return true;
                }
                catch (Exception e) when (e is InvalidOperationException or IOException or UnauthorizedAccessException)
                {
                    await AuditAsync(services, "card.issue", null, StatusCodes.Status500InternalServerError, null).ConfigureAwait(false);
                    failure = e.Message;
                    return false;
                }
            }

            if (!json && ReferenceEquals(output, System.Console.Out) && !System.Console.IsOutputRedirected)
            {
                // A person at a terminal: a progress bar.
                await AnsiConsole.Progress().StartAsync(async context =>
                {
                    var task = context.AddTask($"Issuing {count} cards", maxValue: count);
                    for (var i = 1; i <= count && await IssueOneAsync(i).ConfigureAwait(false); i++)
                    {
                        task.Increment(1);
                    }
                }).ConfigureAwait(false);
            }
            else
            {
                for (var i = 1; i <= count; i++)
                {
                    if (!await IssueOneAsync(i).ConfigureAwait(false))
                    {
                        break;
                    }

                    if (!json)
                    {
                        output.WriteLine($"Issued card {issued[^1].Masked} into {issued[^1].File}{(issued[^1].Loaded is { } loaded ? $" and loaded {loaded}" : "")}.");
                    }
                }
            }

            if (json)
            {
                output.WriteLine(JsonSerializer.Serialize(new BatchOutcome(count, issued, failure), ProtocolJson.Options));
            }
            else if (failure is null)
            {
                output.WriteLine($"Issued {issued.Count} card{(issued.Count == 1 ? "" : "s")} into {directory}.");
            }
            else
            {
                error.WriteLine($"openpurse-operator: card {issued.Count + 1} of {count} was not issued: {failure}");
                error.WriteLine($"openpurse-operator: {issued.Count} card{(issued.Count == 1 ? " was" : "s were")} issued before it, into {directory}:");
                foreach (var card in issued)
                {
                    error.WriteLine($"  {card.Masked} {card.File}");
                }
            }

            return failure is null ? ExitOk : ExitFailed;
        }).ConfigureAwait(false);
    }

    /// <summary><c>card find --holder TEXT [--json]</c>: the cards of holders whose name contains TEXT (whatever the case), or whose contact is TEXT.</summary>
    public static async Task<int> FindCardsByHolderAsync(OperatorOptions options, string holder, bool json, TextWriter output, TextWriter error)
    {
        ArgumentNullException.ThrowIfNull(output);
        ArgumentNullException.ThrowIfNull(error);
        if (!CardHolders.IsSearch(holder))
        {
            error.WriteLine($"openpurse-operator: --holder is {CardHolders.SearchLengthMin} to {CardHolders.NameLengthMax} characters of a name, or a contact, without control characters ({ProblemCode.CardQueryInvalid.Code}).");
            return ExitUsage;
        }

        return await WithStationAsync(options, async services =>
        {
            var found = await services.GetRequiredService<CardRegistry>().FindByHolderAsync(holder, CancellationToken.None).ConfigureAwait(false);
            // What was searched for is personal data: the audit row says only that a holder was searched.
            await AuditAsync(services, "card.find", "holder", StatusCodes.Status200OK, null).ConfigureAwait(false);
            WriteCards(found, json, "No card is registered to such a holder.", "give more of the name, or the contact", output);
            return ExitOk;
        }).ConfigureAwait(false);
    }

    /// <summary>
    /// <c>card register REF --name … --contact …</c> (a new holder, or the card's holder corrected) or
    /// <c>card register REF --holder-id ID</c> (another card of an existing holder).
    /// </summary>
    public static async Task<int> RegisterHolderAsync(OperatorOptions options, string reference, string? name, string? contact, string? holderId, bool json, TextWriter output, TextWriter error)
    {
        ArgumentNullException.ThrowIfNull(output);
        ArgumentNullException.ThrowIfNull(error);
        if (!CardId.TryParse(reference, out var cardId))
        {
            error.WriteLine("openpurse-operator: that is not a card reference; `card find` shows them.");
            return ExitUsage;
        }

        Guid existing = default;
        string? readName = null;
        string? readContact = null;
        var byId = holderId is not null && name is null && contact is null;
        if (byId ? !CardHolders.TryReadHolderId(holderId, out existing) : holderId is not null || !CardHolders.TryReadName(name, out readName) || !CardHolders.TryReadContact(contact, out readContact))
        {
            error.WriteLine($"openpurse-operator: either --holder-id ID, or --name (1 to {CardHolders.NameLengthMax} characters, no control characters) and --contact (an e-mail address, or a phone number as + and 7 to 15 digits) ({ProblemCode.CardHolderInvalid.Code}).");
            return ExitUsage;
        }

        return await WithStationAsync(options, async services =>
        {
            var holders = services.GetRequiredService<CardHolders>();
            var (change, registered) = byId
                ? (await holders.LinkAsync(cardId, existing, CancellationToken.None).ConfigureAwait(false), existing)
                : await holders.RegisterAsync(cardId, readName!, readContact!, CancellationToken.None).ConfigureAwait(false);
            var refusal = change switch
            {
                HolderChange.Done => null,
                HolderChange.HolderUnknown => ProblemCode.CardHolderUnknown,
                _ => ProblemCode.CardUnknown,
            };
            await AuditAsync(services, "card.register", refusal is null ? CardHolders.AuditTarget(cardId, registered) : cardId.Masked, refusal?.Status ?? StatusCodes.Status200OK, refusal?.Code).ConfigureAwait(false);
            var card = refusal is null ? await services.GetRequiredService<CardRegistry>().GetAsync(cardId, CancellationToken.None).ConfigureAwait(false) : null;
            if (json)
            {
                output.WriteLine(JsonSerializer.Serialize(new CardChangeOutcome(refusal?.Code, card), ProtocolJson.Options));
            }
            else if (refusal is not null)
            {
                error.WriteLine($"openpurse-operator: {(refusal == ProblemCode.CardHolderUnknown ? "no such holder (or one erased)" : $"card {cardId.Masked} is not registered")} ({refusal.Code}).");
            }
            else
            {
                output.WriteLine($"Card {cardId.Masked} is registered to holder {registered}.");
            }

            return refusal is null ? ExitOk : ExitFailed;
        }).ConfigureAwait(false);
    }

    /// <summary><c>card holder erase HOLDER_ID</c>: the holder's name and contact erased; their cards and the ledger stay.</summary>
    public static async Task<int> EraseHolderAsync(OperatorOptions options, string holderId, bool json, TextWriter output, TextWriter error)
    {
        ArgumentNullException.ThrowIfNull(output);
        ArgumentNullException.ThrowIfNull(error);
        if (!CardHolders.TryReadHolderId(holderId, out var id))
        {
            error.WriteLine("openpurse-operator: a holder's id is a UUID, as `card find` shows it.");
            return ExitUsage;
        }

        return await WithStationAsync(options, async services =>
        {
            var erased = await services.GetRequiredService<CardHolders>().EraseAsync(id, CancellationToken.None).ConfigureAwait(false);
            var refusal = erased ? null : ProblemCode.CardHolderUnknown;
            await AuditAsync(services, "holder.erase", "holder " + id, refusal?.Status ?? StatusCodes.Status200OK, refusal?.Code).ConfigureAwait(false);
            if (json)
            {
                output.WriteLine(JsonSerializer.Serialize(new HolderEraseOutcome(refusal?.Code, id), ProtocolJson.Options));
            }
            else if (refusal is not null)
            {
                error.WriteLine($"openpurse-operator: no holder {id} ({refusal.Code}).");
            }
            else
            {
                output.WriteLine($"Holder {id}: name and contact erased; the cards and their ledger stay.");
            }

            return erased ? ExitOk : ExitFailed;
        }).ConfigureAwait(false);
    }

    /// <summary>
    /// <c>card replace REF --out FILE --reason … [--json]</c>: the lost card blocked (if it is not),
    /// a new card issued into FILE and registered to the same holder, the old card's value owed to
    /// it at its next sync.
    /// </summary>
    public static async Task<int> ReplaceCardAsync(OperatorOptions options, string reference, string path, string reason, bool json, TextWriter output, TextWriter error)
    {
        ArgumentNullException.ThrowIfNull(path);
        ArgumentNullException.ThrowIfNull(output);
        ArgumentNullException.ThrowIfNull(error);
        if (!CardId.TryParse(reference, out var oldCard))
        {
            error.WriteLine("openpurse-operator: that is not a card reference; `card find` shows them.");
            return ExitUsage;
        }

        if (!CardRegistry.TryReadReason(reason, out var said))
        {
            error.WriteLine($"openpurse-operator: --reason is 1 to {CardRegistry.ReasonLengthMax} characters, without control characters.");
            return ExitUsage;
        }

        if (File.Exists(path))
        {
            error.WriteLine($"openpurse-operator: {path} exists; a card is issued into a new file.");
            return ExitFailed;
        }

        if (!Directory.Exists(Path.GetDirectoryName(Path.GetFullPath(path))))
        {
            error.WriteLine($"openpurse-operator: the directory of {path} does not exist.");
            return ExitFailed;
        }

        return await WithStationAsync(options, async services =>
        {
            ReplacementOutcome outcome;
            try
            {
                var (replaced, blocked, newCard) = await services.GetRequiredService<CardReplacements>().ReplaceAsync(oldCard, path, said, CancellationToken.None).ConfigureAwait(false);
                outcome = replaced;
                if (blocked)
                {
                    await AuditAsync(services, "card.block", oldCard.Masked, StatusCodes.Status200OK, null, said).ConfigureAwait(false);
                }

                if (newCard is { } made)
                {
                    await AuditAsync(services, "card.issue", made.Masked, StatusCodes.Status200OK, null).ConfigureAwait(false);
                }
            }
            catch (Exception e) when (e is InvalidOperationException or IOException or UnauthorizedAccessException)
            {
                // The old card stays blocked; no new card was made, nothing was carried.
                await AuditAsync(services, "card.replace", oldCard.Masked, StatusCodes.Status500InternalServerError, null, said).ConfigureAwait(false);
                error.WriteLine($"openpurse-operator: card {oldCard.Masked} was not replaced (it is blocked): {e.Message}");
                return ExitFailed;
            }

            var refusal = outcome.Code is null ? null : outcome.Code == ProblemCode.CardReplaced.Code ? ProblemCode.CardReplaced : ProblemCode.CardUnknown;
            await AuditAsync(services, "card.replace", outcome.NewCard is { } to ? $"{oldCard.Masked} → {to}" : oldCard.Masked, refusal?.Status ?? StatusCodes.Status200OK, refusal?.Code, said).ConfigureAwait(false);
            if (json)
            {
                output.WriteLine(JsonSerializer.Serialize(outcome, ProtocolJson.Options));
            }
            else if (refusal is not null)
            {
                error.WriteLine($"openpurse-operator: card {oldCard.Masked} {(refusal == ProblemCode.CardReplaced ? "was replaced already; nothing more moves" : "is not registered")} ({refusal.Code}).");
            }
            else
            {
                output.WriteLine($"Card {oldCard.Masked} is blocked and replaced by card {outcome.NewCard} in {path}{(outcome.HolderId is { } holder ? $", registered to holder {holder}" : "")}.");
                output.WriteLine(outcome.Carried.Count == 0
                    ? "The old card's account held nothing to carry."
                    : $"The new card takes {string.Join(", ", outcome.Carried.Select(m => m.ToString()))} from the old one at its first sync (openpurse sync).");
                if (outcome.HeldBack.Count > 0)
                {
                    output.WriteLine($"Held back until the old card's open purchases end: {string.Join(", ", outcome.HeldBack.Select(m => m.ToString()))}; the new card's syncs take what comes back.");
                }
            }

            return refusal is null ? ExitOk : ExitFailed;
        }).ConfigureAwait(false);
    }

    // Cards as JSON, or as a table: reference, card, state, dates, balances, holder, replacement.
    private static void WriteCards(CardSearch found, bool json, string none, string narrower, TextWriter output)
    {
        if (json)
        {
            output.WriteLine(JsonSerializer.Serialize(found, ProtocolJson.Options));
            return;
        }

        if (found.Cards.Count == 0)
        {
            output.WriteLine(none);
            return;
        }

        var table = new Table().Border(TableBorder.Simple).AddColumns(
            new TableColumn("Reference").NoWrap(), new TableColumn("Card").NoWrap(), new TableColumn("State").NoWrap(),
            new TableColumn("Issued").NoWrap(), new TableColumn("Blocked").NoWrap(), new TableColumn("Balance").RightAligned().NoWrap(),
            new TableColumn("Holder").NoWrap(), new TableColumn("Holder id").NoWrap(), new TableColumn("Replaced").NoWrap());
        foreach (var card in found.Cards)
        {
            var holder = card.Holder is null ? "–" : card.Holder.ErasedAt is not null ? "(erased)" : $"{card.Holder.Name}, {card.Holder.Contact}";
            var replaced = card.ReplacedBy is { } by ? "by " + by : card.Replaces is { } of ? "replaces " + of : "–";
            table.AddRow(
                new Text(card.Reference ?? ""), new Text(card.Masked), new Text(card.State), new Text(Shown(card.IssuedAt)), new Text(card.BlockedAt is { } since ? Shown(since) : "–"),
                new Text(card.Balances.Count == 0 ? "–" : string.Join(", ", card.Balances.Select(b => b.ToString()))), new Text(holder), new Text(card.Holder?.HolderId.ToString() ?? "–"), new Text(replaced));
        }

        var console = Console(output);
        // A row of this table is wide (a holder's name and id): wide enough for it, whatever the output is.
        console.Profile.Width = Math.Max(console.Profile.Width, 240);
        console.Write(table);
        if (found.More)
        {
            console.WriteLine($"More than {CardRegistry.FoundMax} cards found: {narrower}.");
        }
    }
}

/// <summary>One card of a batch: its reference (its number, for the station's own commands), masked, its file, what was loaded.</summary>
internal sealed record IssuedCardFile(string Reference, string Masked, string File, Money? Loaded);

/// <summary>What <c>card issue --count N --json</c> prints: the cards asked for, those issued, and why the batch stopped if it did.</summary>
internal sealed record BatchOutcome(int Asked, IReadOnlyList<IssuedCardFile> Issued, string? Failure);

/// <summary>What <c>card holder erase --json</c> prints.</summary>
internal sealed record HolderEraseOutcome(string? Code, Guid HolderId);
