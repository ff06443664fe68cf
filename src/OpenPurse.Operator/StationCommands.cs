using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using OpenPurse.Hosting;
using OpenPurse.Operator.Issuance;
using OpenPurse.Operator.Registry;
using OpenPurse.Operator.Security;
using OpenPurse.Protocol;
using OpenPurse.Protocol.Messages;
using OpenPurse.Storage;
using Spectre.Console;

namespace OpenPurse.Operator;

/// <summary>
/// The operator's administrative commands, run on a node's own configuration (same database, same
/// key vault) without serving: whoever may run them holds the database's and the token's
/// credentials already, so they need no admin token. See docs/operations.md, "Step by step".
/// </summary>
/// <remarks>
/// <c>openpurse-operator card issue --out FILE [--load "50.00 EUR"]</c> personalizes a new
/// emulated card into FILE and loads it; <c>openpurse-operator store register FILE</c> registers
/// the stores of a registration file that <c>openpurse-store registration</c> wrote.
/// </remarks>
internal static partial class StationCommands
{
    public const int ExitOk = 0;
    public const int ExitFailed = 1;
    public const int ExitUsage = 2;

    /// <param name="options">The node's configuration.</param>
    /// <param name="path">The new card file.</param>
    /// <param name="load">What to load onto the card, if anything.</param>
    /// <param name="output">Where the issued card is told (its number masked).</param>
    /// <param name="error">Where failures are told.</param>
    public static async Task<int> IssueCardAsync(OperatorOptions options, string path, Money? load, TextWriter output, TextWriter error)
    {
        ArgumentNullException.ThrowIfNull(path);
        ArgumentNullException.ThrowIfNull(output);
        ArgumentNullException.ThrowIfNull(error);
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

        if (load is { } asked && asked.MinorUnits > IssuingStation.DefaultBalanceMaxMinor)
        {
            error.WriteLine($"openpurse-operator: a card holds at most {new Money(IssuingStation.DefaultBalanceMaxMinor, asked.Currency)}; --load {asked} is more.");
            return ExitUsage;
        }

        return await WithStationAsync(options, async services =>
        {
            try
            {
                using var card = await services.GetRequiredService<CardIssuer>().IssueCardFileAsync(path, load ?? Money.Zero(Currency.FromCode("EUR"))).ConfigureAwait(false);
                await AuditAsync(services, "card.issue", card.CardId.Masked, StatusCodes.Status200OK, null).ConfigureAwait(false);
                output.WriteLine(load is { IsPositive: true } loaded
                    ? $"Issued card {card.CardId.Masked} into {path} and loaded {loaded}."
                    : $"Issued card {card.CardId.Masked} into {path}.");
                return ExitOk;
            }
            catch (Exception e) when (e is InvalidOperationException or IOException or UnauthorizedAccessException)
            {
                // The station removed the file and blocked the number it had taken: nothing half-issued stays.
                await AuditAsync(services, "card.issue", null, StatusCodes.Status500InternalServerError, null).ConfigureAwait(false);
                error.WriteLine($"openpurse-operator: no card was issued: {e.Message}");
                return ExitFailed;
            }
        }).ConfigureAwait(false);
    }

    /// <param name="options">The node's configuration.</param>
    /// <param name="path">The registration file that <c>openpurse-store registration</c> wrote.</param>
    /// <param name="output">Where each registered store is told.</param>
    /// <param name="error">Where usage and refusals are told.</param>
    public static async Task<int> RegisterStoresAsync(OperatorOptions options, string path, TextWriter output, TextWriter error)
    {
        ArgumentNullException.ThrowIfNull(path);
        ArgumentNullException.ThrowIfNull(output);
        ArgumentNullException.ThrowIfNull(error);

        IReadOnlyList<StoreRegistration> registrations;
        try
        {
            await using var file = File.OpenRead(path);
            var read = await JsonSerializer.DeserializeAsync<List<StoreRegistration?>>(file, ProtocolJson.Options).ConfigureAwait(false);
            registrations = read is not null && read.All(r => r is not null) ? read.OfType<StoreRegistration>().ToList() : throw new JsonException("The file holds null where a registration belongs.");
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or JsonException)
        {
            error.WriteLine($"openpurse-operator: {path} is not a registration file: {e.Message}");
            return ExitFailed;
        }

        return await WithStationAsync(options, async services =>
        {
            var stores = services.GetRequiredService<StoreRegistry>();
            foreach (var registration in registrations)
            {
                var result = await stores.RegisterAsync(registration, CancellationToken.None).ConfigureAwait(false);
                await AuditAsync(services, "store.register", registration.StoreId, result.Refusal?.Problem.Status ?? StatusCodes.Status200OK, result.Refusal?.Code).ConfigureAwait(false);
                if (result.Refusal is { } refusal)
                {
                    // Each registration is its own transaction: those before this one stay registered, and running the file again is harmless.
                    error.WriteLine($"openpurse-operator: store '{registration.StoreId}' refused ({refusal.Code}): {refusal.Detail}");
                    return ExitFailed;
                }

                output.WriteLine($"Registered store '{registration.StoreId}' ({registration.Name}){(registration.MallId is { } mall ? $" in mall '{mall}'" : "")}, completion notices to {registration.NotifyUrl ?? "none (the wallet brings them)"}.");
            }

            return ExitOk;
        }).ConfigureAwait(false);
    }

    /// <summary>
    /// <c>card find --last DIGITS [--json]</c>: the cards whose numbers end in DIGITS, as a table or
    /// as JSON. The station sees what an administrator sees: each card's reference (its number),
    /// which <c>card block</c> and <c>card unblock</c> take.
    /// </summary>
    /// <param name="options">The node's configuration.</param>
    /// <param name="last">4 to 8 last digits.</param>
    /// <param name="json">JSON instead of a table.</param>
    /// <param name="output">Where the cards are told.</param>
    /// <param name="error">Where usage is told.</param>
    public static async Task<int> FindCardsAsync(OperatorOptions options, string last, bool json, TextWriter output, TextWriter error)
    {
        ArgumentNullException.ThrowIfNull(output);
        ArgumentNullException.ThrowIfNull(error);
        if (!CardRegistry.IsLastDigits(last))
        {
            error.WriteLine($"openpurse-operator: --last is {CardRegistry.LastDigitsMin} to {CardRegistry.LastDigitsMax} digits, the end of a card number ({ProblemCode.CardQueryInvalid.Code}).");
            return ExitUsage;
        }

        return await WithStationAsync(options, async services =>
        {
            var found = await services.GetRequiredService<CardRegistry>().FindAsync(last, CancellationToken.None).ConfigureAwait(false);
            await AuditAsync(services, "card.find", CardRegistry.AuditTarget(last), StatusCodes.Status200OK, null).ConfigureAwait(false);
            WriteCards(found, json, $"No card's number ends in {last}.", "give more digits", output);
            return ExitOk;
        }).ConfigureAwait(false);
    }

    /// <summary>
    /// <c>card block REF --reason …</c> and <c>card unblock REF --reason …</c>: the card's
    /// transition (<see cref="CardStates"/>), audited with its reason like the admin API's.
    /// </summary>
    /// <param name="options">The node's configuration.</param>
    /// <param name="block">Block, else unblock.</param>
    /// <param name="reference">The card's reference, as <c>card find</c> shows it.</param>
    /// <param name="reason">Why, for the audit trail.</param>
    /// <param name="json">The outcome as JSON.</param>
    /// <param name="output">Where the outcome is told.</param>
    /// <param name="error">Where usage and refusals are told.</param>
    public static async Task<int> ChangeCardAsync(OperatorOptions options, bool block, string reference, string reason, bool json, TextWriter output, TextWriter error)
    {
        ArgumentNullException.ThrowIfNull(output);
        ArgumentNullException.ThrowIfNull(error);
        if (!CardId.TryParse(reference, out var cardId))
        {
            error.WriteLine("openpurse-operator: that is not a card reference; `card find --last DIGITS` shows them.");
            return ExitUsage;
        }

        if (!CardRegistry.TryReadReason(reason, out var said))
        {
            error.WriteLine($"openpurse-operator: --reason is 1 to {CardRegistry.ReasonLengthMax} characters, without control characters.");
            return ExitUsage;
        }

        var action = block ? "card.block" : "card.unblock";
        return await WithStationAsync(options, async services =>
        {
            var cards = services.GetRequiredService<CardRegistry>();
            var change = block
                ? await cards.BlockAsync(cardId, CancellationToken.None).ConfigureAwait(false)
                : await cards.UnblockAsync(cardId, CancellationToken.None).ConfigureAwait(false);
            // Its outcome as the admin API would answer it.
            var refusal = change switch
            {
                CardChange.Done => null,
                CardChange.Refused => ProblemCode.CardNotBlocked,
                CardChange.Replaced => ProblemCode.CardReplaced,
                _ => ProblemCode.CardUnknown,
            };
            await AuditAsync(services, action, cardId.Masked, refusal?.Status ?? StatusCodes.Status200OK, refusal?.Code, said).ConfigureAwait(false);
            var card = refusal is null ? await cards.GetAsync(cardId, CancellationToken.None).ConfigureAwait(false) : null;
            if (json)
            {
                output.WriteLine(JsonSerializer.Serialize(new CardChangeOutcome(refusal?.Code, card), ProtocolJson.Options));
            }
            else if (refusal is not null)
            {
                error.WriteLine($"openpurse-operator: card {cardId.Masked} {(refusal == ProblemCode.CardNotBlocked ? "is not blocked" : refusal == ProblemCode.CardReplaced ? "was replaced: it stays blocked" : "is not registered")} ({refusal.Code}).");
            }
            else
            {
                output.WriteLine($"Card {cardId.Masked} is {card?.State ?? (block ? "blocked" : "active")}.");
            }

            return refusal is null ? ExitOk : ExitFailed;
        }).ConfigureAwait(false);
    }

    // A console on the command's output: no colors nor cursor codes, wide enough for a row of the
    // table whatever the output is (a file or a pipe has no width of its own).
    internal static IAnsiConsole Console(TextWriter output)
    {
        var console = AnsiConsole.Create(new AnsiConsoleSettings
        {
            Ansi = AnsiSupport.No,
            ColorSystem = ColorSystemSupport.NoColors,
            Interactive = InteractionSupport.No,
            Out = new AnsiConsoleOutput(output),
        });
        console.Profile.Width = Math.Max(console.Profile.Width, 120);
        return console;
    }

    // A stored time as a person reads it, to the second, UTC.
    internal static string Shown(string stored) =>
        StoredTime.Parse(stored).UtcDateTime.ToString("yyyy-MM-dd HH:mm:ss 'UTC'", System.Globalization.CultureInfo.InvariantCulture);

    // The audit trail names the station's OS user: whoever may run a station command holds the node's credentials.
    // Its outcome as the admin API would answer it: 200, or the refusal's status and code.
    internal static Task AuditAsync(IServiceProvider services, string action, string? target, int status, string? code, string? reason = null) =>
        services.GetRequiredService<AuditTrail>().AppendAsync(Environment.UserName, AuditTrail.StationRole, action, target, status, code, remoteAddress: null, reason, CancellationToken.None);

    // The node's services on its configuration, never started; the vault is ours to close.
    internal static async Task<int> WithStationAsync(OperatorOptions options, Func<IServiceProvider, Task<int>> work)
    {
        var station = await OperatorHost.BuildAsync(options with { CreateVaultIfMissing = false }).ConfigureAwait(false);
        await using (station.ConfigureAwait(false))
        {
            using var vault = station.Services.GetRequiredService<ISecurityModule>() as IDisposable;
            return await work(station.Services).ConfigureAwait(false);
        }
    }
}

/// <summary>What <c>card block --json</c> and <c>card unblock --json</c> print: the refusal's code, or the card as it is now.</summary>
/// <param name="Code">Null when done; else <c>card.unknown</c> or <c>card.not_blocked</c>.</param>
/// <param name="Card">The card after the change; null when refused.</param>
internal sealed record CardChangeOutcome(string? Code, CardView? Card);
