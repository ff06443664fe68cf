using System.CommandLine;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using OpenPurse.CommandLine;
using OpenPurse.Hosting;
using OpenPurse.Operator.Security;
using OpenPurse.Operator.Tls;
using OpenPurse.Protocol;

namespace OpenPurse.Operator;

/// <summary>
/// <c>openpurse-operator</c>'s commands: <c>serve</c> runs a node; <c>vault init</c>, <c>tls init</c>,
/// <c>card issue</c>, <c>card find</c>, <c>card register</c>, <c>card replace</c>, <c>card block</c>, <c>card unblock</c>, <c>card holder erase</c>, <c>store register</c>, <c>store keys</c>,
/// <c>store key retire</c>, <c>key …</c>, <c>reconcile</c>, <c>examine</c> and the <c>clearing</c> commands run once and exit (docs/operations.md).
/// </summary>
/// <remarks>
/// Configuration: appsettings.json beside the program, then environment variables
/// (<c>OpenPurse__Operator__DataDirectory</c>, …), then overrides on the command line in the form
/// <c>--OpenPurse:Operator:DataDirectory=/x</c>, which <c>serve</c> and the commands that work on a
/// node's configuration take. Nothing is read, opened or written before the command line parsed.
/// </remarks>
internal static class OperatorCommandLine
{
    public const string SectionName = "OpenPurse:Operator";

    private const string ConfigurationExit = "2 bad usage, or a configuration it cannot work with (keys, certificates, database)";

    public static RootCommand Build()
    {
        var serve = new Command("serve", "Run an operator node until SIGINT or SIGTERM. Overrides: --OpenPurse:Operator:Key=value.")
            .WithConfigurationOverrides()
            .WithExitCodes("0 stopped", ConfigurationExit);
        serve.SetAction(async parse => await Configured(parse, async options =>
        {
            var app = await OperatorHost.BuildAsync(options, parse.ConfigurationOverrides()).ConfigureAwait(false);
            await using (app.ConfigureAwait(false))
            {
                await app.RunAsync().ConfigureAwait(false);
            }

            return CommandLines.ExitOk;
        }).ConfigureAwait(false));

        var vaultInit = new Command("init", "Create the configured key vault's keys where absent; print the signing key's kid and the master key's label and version.")
            .WithConfigurationOverrides()
            .WithExitCodes("0 the keys are ready", "2 bad usage, or the vault cannot be opened (no PIN, no token, refused PIN, unsafe key attributes)");
        vaultInit.SetAction(parse => Configured(parse, options =>
        {
            parse.InvocationConfiguration.Output.WriteLine(KeyVaults.Initialize(options, OpenPurse.Storage.PrivateFiles.CreateDirectory(options.DataDirectory)));
            return Task.FromResult(CommandLines.ExitOk);
        }));
        var vault = new Command("vault", "The operator's key vault.") { vaultInit };

        var tlsOut = new Option<string>("--out") { Description = "The directory for the CA and the certificates.", Required = true };
        var tlsNames = new Option<string[]>("--name") { Description = "A party to make a server certificate for (repeat; default: operator and store).", AllowMultipleArgumentsPerToken = false };
        var tlsHosts = new Option<string[]>("--host") { Description = "A DNS name or IP address the certificates name (repeat).", AllowMultipleArgumentsPerToken = false };
        var tlsInit = new Command("init", "Make the deployment's CA (unless --out holds one) and a server certificate for each named party.") { tlsOut, tlsNames, tlsHosts }
            .WithExitCodes("0 made", "1 refused (e.g. the files cannot be written)", "2 bad usage");
        tlsInit.SetAction(parse => TlsCommand.Init(parse.GetValue(tlsOut)!, parse.GetValue(tlsNames) ?? [], parse.GetValue(tlsHosts) ?? [], parse.InvocationConfiguration.Output, parse.InvocationConfiguration.Error));
        var tls = new Command("tls", "The deployment's TLS certificates.") { tlsInit };

        var cardOut = new Option<string>("--out") { Description = "The new card file (must not exist); with --count, a new or empty directory for the cards' files.", Required = true };
        var cardCount = new Option<int?>("--count") { Description = $"Issue this many cards (1 to {StationCommands.BatchMax}), each into its own file in the --out directory." };
        var issueJson = new Option<bool>("--json") { Description = "With --count: the cards issued as one JSON document, for scripts." };
        var cardLoad = new Option<Money?>("--load")
        {
            Description = "An amount to load onto the card, e.g. \"50.00 EUR\".",
            CustomParser = result =>
            {
                var text = result.Tokens.Count == 1 ? result.Tokens[0].Value : "";
                if (Money.TryParse(text, out var amount) && amount.MinorUnits >= 0)
                {
                    return amount;
                }

                result.AddError($"--load must be an amount such as \"50.00 EUR\", not '{text}'.");
                return null;
            },
        };
        var cardIssue = new Command("issue", "Issue a new emulated card into a file (or --count cards into a directory): its keys diversified from the vault's master key, personalized, then loaded.") { cardOut, cardLoad, cardCount, issueJson }
            .WithConfigurationOverrides()
            .WithExitCodes("0 issued", "1 the file exists or a card was refused (a batch stops there; those before it stay issued)", ConfigurationExit + "; --count not 1 to " + StationCommands.BatchMax);
        cardIssue.SetAction(parse => Configured(parse, options => parse.GetValue(cardCount) is { } count
            ? StationCommands.IssueCardsAsync(options, count, parse.GetValue(cardOut)!, parse.GetValue(cardLoad), parse.GetValue(issueJson), parse.InvocationConfiguration.Output, parse.InvocationConfiguration.Error)
            : StationCommands.IssueCardAsync(options, parse.GetValue(cardOut)!, parse.GetValue(cardLoad), parse.InvocationConfiguration.Output, parse.InvocationConfiguration.Error)));
        var findLast = new Option<string>("--last") { Description = "4 to 8 last digits of the card's number." };
        var findHolder = new Option<string>("--holder") { Description = "Part of the holder's name (whatever the case, at least 3 characters), or their exact contact." };
        var findJson = new Option<bool>("--json") { Description = "The cards as JSON, for scripts." };
        var cardFind = new Command("find", "Find cards by the last digits of their numbers, or by their holder: each with its reference, state, dates, balances, holder and replacement.") { findLast, findHolder, findJson }
            .WithConfigurationOverrides()
            .WithExitCodes("0 searched (none found is no failure)", ConfigurationExit + "; not one of --last (4 to 8 digits) or --holder");
        cardFind.SetAction(parse => Configured(parse, options => (parse.GetValue(findLast), parse.GetValue(findHolder)) switch
        {
            ({ } last, null) => StationCommands.FindCardsAsync(options, last, parse.GetValue(findJson), parse.InvocationConfiguration.Output, parse.InvocationConfiguration.Error),
            (null, { } holder) => StationCommands.FindCardsByHolderAsync(options, holder, parse.GetValue(findJson), parse.InvocationConfiguration.Output, parse.InvocationConfiguration.Error),
            _ => Usage(parse, "card find takes --last DIGITS or --holder TEXT, one of them."),
        }));

        var registerReference = new Argument<string>("reference") { Description = "The card's reference, as `card find` shows it." };
        var registerName = new Option<string>("--name") { Description = "The holder's name (1 to 100 characters)." };
        var registerContact = new Option<string>("--contact") { Description = "One contact: an e-mail address, or a phone number as + and 7 to 15 digits." };
        var registerHolderId = new Option<string>("--holder-id") { Description = "Instead of --name and --contact: an existing holder's id (another card of theirs)." };
        var registerJson = new Option<bool>("--json") { Description = "The outcome as JSON, for scripts." };
        var cardRegister = new Command("register", "Register a card to its holder: a name and one contact, nothing else (a card registered already has its holder's corrected).") { registerReference, registerName, registerContact, registerHolderId, registerJson }
            .WithConfigurationOverrides()
            .WithExitCodes("0 registered", "1 no such card, or no such holder", ConfigurationExit + "; a reference, name or contact that is none");
        cardRegister.SetAction(parse => Configured(parse, options =>
            StationCommands.RegisterHolderAsync(options, parse.GetValue(registerReference)!, parse.GetValue(registerName), parse.GetValue(registerContact), parse.GetValue(registerHolderId), parse.GetValue(registerJson),
                parse.InvocationConfiguration.Output, parse.InvocationConfiguration.Error)));

        var replaceReference = new Argument<string>("reference") { Description = "The lost card's reference, as `card find` shows it." };
        var replaceOut = new Option<string>("--out") { Description = "The new card file (must not exist).", Required = true };
        var replaceReason = new Option<string>("--reason") { Description = "Why, for the audit trail (1 to 200 characters).", Required = true };
        var replaceJson = new Option<bool>("--json") { Description = "The outcome as JSON, for scripts." };
        var cardReplace = new Command("replace", "Replace a lost card: block it, issue a new card into a file, registered to the same holder, which takes the old card's value at its first sync.") { replaceReference, replaceOut, replaceReason, replaceJson }
            .WithConfigurationOverrides()
            .WithExitCodes("0 replaced", "1 no such card, replaced already, the file exists, or the new card was refused", ConfigurationExit + "; a reference or reason that is none");
        cardReplace.SetAction(parse => Configured(parse, options =>
            StationCommands.ReplaceCardAsync(options, parse.GetValue(replaceReference)!, parse.GetValue(replaceOut)!, parse.GetValue(replaceReason)!, parse.GetValue(replaceJson),
                parse.InvocationConfiguration.Output, parse.InvocationConfiguration.Error)));

        var eraseId = new Argument<string>("holder-id") { Description = "The holder's id, as `card find` shows it." };
        var eraseJson = new Option<bool>("--json") { Description = "The outcome as JSON, for scripts." };
        var holderErase = new Command("erase", "Erase a holder's name and contact on their request; their cards and the ledger stay.") { eraseId, eraseJson }
            .WithConfigurationOverrides()
            .WithExitCodes("0 erased (or erased already)", "1 no such holder", ConfigurationExit + "; not a holder id");
        holderErase.SetAction(parse => Configured(parse, options =>
            StationCommands.EraseHolderAsync(options, parse.GetValue(eraseId)!, parse.GetValue(eraseJson), parse.InvocationConfiguration.Output, parse.InvocationConfiguration.Error)));
        var cardHolder = new Command("holder", "Card holders.") { holderErase };

        var card = new Command("card", "Cards.")
        {
            cardIssue, cardFind, cardRegister, cardReplace, cardHolder,
            CardChange("block", "Block a card (a lost or stolen one): the operator refuses its movements from now on.", "0 blocked (or blocked already)", block: true),
            CardChange("unblock", "Unblock a card blocked by mistake (never a replaced one).", "0 unblocked", block: false),
        };

        var registrationFile = new Argument<string>("file") { Description = "The registration file that `openpurse-store registration` wrote." };
        var storeRegister = new Command("register", "Register the stores of a registration file, one transaction each.") { registrationFile }
            .WithConfigurationOverrides()
            .WithExitCodes("0 registered", "1 the file is unreadable or a store was refused (those before it stay registered)", ConfigurationExit);
        storeRegister.SetAction(parse => Configured(parse, options =>
            StationCommands.RegisterStoresAsync(options, parse.GetValue(registrationFile)!, parse.InvocationConfiguration.Output, parse.InvocationConfiguration.Error)));
        var storeIdArgument = new Argument<string>("store") { Description = "The store's id." };
        var storeKeysJson = new Option<bool>("--json") { Description = "The keys as JSON, for scripts." };
        var storeKeys = new Command("keys", "List a store's keys: each kid with when it was registered and retired.") { storeIdArgument, storeKeysJson }
            .WithConfigurationOverrides()
            .WithExitCodes("0 listed", "1 no such store", ConfigurationExit);
        storeKeys.SetAction(parse => Configured(parse, options =>
            KeyCommands.ListStoreKeysAsync(options, parse.GetValue(storeIdArgument)!, parse.GetValue(storeKeysJson), parse.InvocationConfiguration.Output, parse.InvocationConfiguration.Error)));
        var retireStore = new Argument<string>("store") { Description = "The store's id." };
        var retireKid = new Argument<string>("kid") { Description = "The key's id, as `store keys` lists it." };
        var retireReason = new Option<string>("--reason") { Description = "Why, for the audit trail (1 to 200 characters)." };
        var retireJson = new Option<bool>("--json") { Description = "The store's keys afterwards as JSON." };
        var storeKeyRetire = new Command("retire", "Retire a store's key: every signature under it is refused from now on, and its kid can never be registered again.") { retireStore, retireKid, retireReason, retireJson }
            .WithConfigurationOverrides()
            .WithExitCodes("0 retired (or retired already)", "1 no such key, or it is the store's last active key", ConfigurationExit + "; a reason that is none");
        storeKeyRetire.SetAction(parse => Configured(parse, options =>
            KeyCommands.RetireStoreKeyAsync(options, parse.GetValue(retireStore)!, parse.GetValue(retireKid)!, parse.GetValue(retireReason), parse.GetValue(retireJson), parse.InvocationConfiguration.Output, parse.InvocationConfiguration.Error)));
        var store = new Command("store", "Stores.") { storeRegister, storeKeys, new Command("key", "A store's keys.") { storeKeyRetire } };

        var keyListJson = new Option<bool>("--json") { Description = "The keys as JSON, for scripts." };
        var keyList = new Command("list", "List the operator's signing keys with their states, and the card master key versions (never a key's value).") { keyListJson }
            .WithConfigurationOverrides()
            .WithExitCodes("0 listed", ConfigurationExit);
        keyList.SetAction(parse => Configured(parse, options => KeyCommands.ListAsync(options, parse.GetValue(keyListJson), parse.InvocationConfiguration.Output)));
        var keyRotate = new Command("rotate", "Generate a new operator signing key in the vault, published as next (not signing yet).")
            .WithConfigurationOverrides()
            .WithExitCodes("0 generated", ConfigurationExit);
        keyRotate.SetAction(parse => Configured(parse, options => KeyCommands.RotateAsync(options, parse.InvocationConfiguration.Output)));
        var keyRotateMaster = new Command("rotate-master", "Create card master key version N+1 in the vault; new cards are personalized under it.")
            .WithConfigurationOverrides()
            .WithExitCodes("0 created", ConfigurationExit);
        keyRotateMaster.SetAction(parse => Configured(parse, options => KeyCommands.RotateMasterAsync(options, parse.InvocationConfiguration.Output)));
        var key = new Command("key", "The operator's signing keys and the card master key: rotation (docs/operations.md, \"Rotating keys\").")
        {
            keyList, keyRotate, KeyChange("activate", "Make a next key the active one; the active one stays published as previous.", activate: true),
            KeyChange("retire", "Retire a next or previous key: it is no longer published.", activate: false), keyRotateMaster,
        };

        var reconcile = new Command("reconcile", "Check the ledger's invariants and list every difference, the disputed settlements waiting, and each store's statement against the books.")
            .WithConfigurationOverrides()
            .WithExitCodes("0 clean", "1 differences", ConfigurationExit, "3 clean, but disputed settlements wait for a decision");
        reconcile.SetAction(parse => Configured(parse, async options =>
        {
            var station = await OperatorHost.BuildAsync(options with { CreateVaultIfMissing = false }).ConfigureAwait(false);
            await using (station.ConfigureAwait(false))
            {
                using var vault = station.Services.GetService<ISecurityModule>() as IDisposable;
                return await ReconcileCommand.RunAsync(station.Services, parse.InvocationConfiguration.Output, CancellationToken.None).ConfigureAwait(false);
            }
        }));

        var examineJson = new Option<bool>("--json") { Description = "The report as one JSON document, for scripts." };
        var examineCard = new Option<string>("--card") { Description = "Examine one card only: its reference, as `card find` shows it." };
        var examine = new Command("examine", "The careful examination: every card log record against its transaction, each card's chain and balance, transactions without records, the ledger and the stores' statements.") { examineJson, examineCard }
            .WithConfigurationOverrides()
            .WithExitCodes("0 clean (notes may be listed)", "1 mismatches", ConfigurationExit + "; --card not a card reference");
        examine.SetAction(parse => Configured(parse, async options =>
        {
            var station = await OperatorHost.BuildAsync(options with { CreateVaultIfMissing = false }).ConfigureAwait(false);
            await using (station.ConfigureAwait(false))
            {
                using var vault = station.Services.GetService<ISecurityModule>() as IDisposable;
                return await ExamineCommand.RunAsync(station.Services, parse.GetValue(examineCard), parse.GetValue(examineJson),
                    parse.InvocationConfiguration.Output, parse.InvocationConfiguration.Error, CancellationToken.None).ConfigureAwait(false);
            }
        }));

        return new RootCommand("openpurse-operator: the OpenPurse operator. `serve` runs a node; the other commands work on a node's configuration and exit.")
        {
            serve, vault, tls, card, store, key, reconcile, examine, Clearing.ClearingCommands.Build(),
        }.WithExitCodes("0 ok", "1 the operation failed", "2 bad usage or configuration", "3 reconcile found disputed settlements waiting");
    }

    // `card block REF --reason …` and `card unblock REF --reason …`: the reference `card find` shows.
    private static Command CardChange(string name, string description, string done, bool block)
    {
        var reference = new Argument<string>("reference") { Description = "The card's reference, as `card find` shows it." };
        var reason = new Option<string>("--reason") { Description = "Why, for the audit trail (1 to 200 characters).", Required = true };
        var json = new Option<bool>("--json") { Description = "The outcome as JSON, for scripts." };
        var command = new Command(name, description) { reference, reason, json }
            .WithConfigurationOverrides()
            .WithExitCodes(done, block ? "1 no such card" : "1 no such card, or it is not blocked", ConfigurationExit + "; a reference or reason that is none");
        command.SetAction(parse => Configured(parse, options =>
            StationCommands.ChangeCardAsync(options, block, parse.GetValue(reference)!, parse.GetValue(reason)!, parse.GetValue(json), parse.InvocationConfiguration.Output, parse.InvocationConfiguration.Error)));
        return command;
    }

    private static async Task<int> Usage(ParseResult parse, string message)
    {
        await parse.InvocationConfiguration.Error.WriteLineAsync("openpurse-operator: " + message).ConfigureAwait(false);
        return CommandLines.ExitUsage;
    }

    // `key activate KID` and `key retire KID`.
    private static Command KeyChange(string name, string description, bool activate)
    {
        var kid = new Argument<string>("kid") { Description = "The key's id, as `key list` shows it." };
        var command = new Command(name, description) { kid }
            .WithConfigurationOverrides()
            .WithExitCodes(activate ? "0 active" : "0 retired", activate ? "1 no such key, retired, or not in this vault" : "1 no such key, or the active one", ConfigurationExit);
        command.SetAction(parse => Configured(parse, options =>
            KeyCommands.ChangeAsync(options, parse.GetValue(kid)!, activate, parse.InvocationConfiguration.Output, parse.InvocationConfiguration.Error)));
        return command;
    }

    /// <summary>The node's options: appsettings.json, the environment, then the command line's overrides.</summary>
    public static OperatorOptions ReadOptions(IEnumerable<string> overrides)
    {
        var options = ServerCommand.Configuration(overrides).GetSection(SectionName).Get<OperatorOptions>() ?? new OperatorOptions { DataDirectory = "" };
        // The shipped appsettings.json spells out every default but this one, which is per user.
        return string.IsNullOrEmpty(options.DataDirectory)
            ? options with { DataDirectory = Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.LocalApplicationData), "openpurse", "operator") }
            : options;
    }

    // Runs a command on the node's configuration; a configuration it cannot work with (keys,
    // certificates, database) is one line and exit 2, no stack trace.
    internal static async Task<int> Configured(ParseResult parse, Func<OperatorOptions, Task<int>> command)
    {
        try
        {
            return await command(ReadOptions(parse.ConfigurationOverrides())).ConfigureAwait(false);
        }
        catch (Exception e) when (e is KeyVaultException or InvalidOperationException or IOException or Net.Pkcs11Interop.Common.Pkcs11Exception)
        {
            await parse.InvocationConfiguration.Error.WriteLineAsync("openpurse-operator: " + e.Message).ConfigureAwait(false);
            return CommandLines.ExitUsage;
        }
    }
}
