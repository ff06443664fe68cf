using System.CommandLine;
using System.Globalization;
using System.Net.Sockets;
using System.Security.Cryptography.X509Certificates;
using OpenPurse.Card;
using OpenPurse.CommandLine;
using OpenPurse.Protocol;
using OpenPurse.Protocol.Apdu;
using OpenPurse.Protocol.Messages;
using OpenPurse.Wallet.Agent;
using OpenPurse.Wallet.Http;
using OpenPurse.Wallet.Purchase;
using OpenPurse.Wallet.Readers;
using Spectre.Console;

namespace OpenPurse.Wallet.Cli;

/// <summary>What the CLI needs from the world, so tests can give it a test console, a fake network and their own environment.</summary>
internal sealed class WalletCliContext
{
    public required IAnsiConsole Console { get; init; }

    /// <summary>Reads an environment variable.</summary>
    public required Func<string, string?> Environment { get; init; }

    /// <summary>The person's home directory, for the default card file.</summary>
    public required string HomeDirectory { get; init; }

    /// <summary>The HTTP stack; null for the real one.</summary>
    public HttpMessageHandler? HttpHandler { get; init; }

    /// <summary>Opens the reader for a card file; <see cref="InProcessReader.Open"/> unless a test says otherwise.</summary>
    public Func<string, ICardReader> OpenReader { get; init; } = InProcessReader.Open;

    /// <summary>Connects to the card in a PC/SC reader by name; <see cref="PcscReader.Open"/> unless a test says otherwise.</summary>
    public Func<string, ICardReader> OpenPcscReader { get; init; } = PcscReader.Open;

    /// <summary>Lists the PC/SC readers; <see cref="PcscReader.ListReaders()"/> unless a test says otherwise.</summary>
    public Func<IReadOnlyList<string>> ListReaders { get; init; } = PcscReader.ListReaders;

    public TimeProvider Time { get; init; } = TimeProvider.System;

    /// <summary>
    /// Standard input when it is not a terminal: <c>openpurse topup</c> reads the credit card's
    /// number, expiry and PIN from it as three lines. Null when the person types at a terminal.
    /// </summary>
    public TextReader? Input { get; init; }

    /// <summary>Where --help and --version go.</summary>
    public TextWriter Output { get; init; } = System.Console.Out;

    /// <summary>Where bad usage is told, with the command's usage.</summary>
    public TextWriter Error { get; init; } = System.Console.Error;

    public static WalletCliContext FromProcess() => new()
    {
        Console = AnsiConsole.Console,
        Environment = System.Environment.GetEnvironmentVariable,
        HomeDirectory = System.Environment.GetFolderPath(System.Environment.SpecialFolder.UserProfile),
        Input = System.Console.IsInputRedirected ? System.Console.In : null,
    };
}

/// <summary>
/// The <c>openpurse</c> command line: <c>catalog</c> lists what a store sells, <c>pay</c> buys one
/// article with the card, <c>card</c> shows the card's balance and history, <c>readers</c> lists the
/// PC/SC readers <c>--reader</c> can name (the card file stays the default). Options fall back to OPENPURSE_STORE_URL, OPENPURSE_OPERATOR_URL,
/// OPENPURSE_CARD and OPENPURSE_TRUST (the deployment's CA certificate).
/// </summary>
internal static class WalletCli
{
    public const int ExitOk = CommandLines.ExitOk;
    public const int ExitFailed = CommandLines.ExitFailed;
    public const int ExitUsage = CommandLines.ExitUsage;
    public const int ExitCancelled = CommandLines.ExitCancelled;

    public const string StoreUrlVariable = "OPENPURSE_STORE_URL";
    public const string OperatorUrlVariable = "OPENPURSE_OPERATOR_URL";
    public const string CardVariable = "OPENPURSE_CARD";
    public const string AgentOriginsVariable = "OPENPURSE_AGENT_ORIGINS";

    /// <summary>How long the wallet waits for any one HTTP answer.</summary>
    private static readonly TimeSpan s_httpTimeout = TimeSpan.FromSeconds(30);

    public static Task<int> RunAsync(string[] args, WalletCliContext context, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(context);
        return CommandLines.InvokeAsync(Build(context), args, context.Output, context.Error, cancelOnInterrupt: true, cancellationToken);
    }

    public static RootCommand Build(WalletCliContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        var defaultCard = Path.Combine(context.HomeDirectory, ".openpurse", "card.bin");

        Option<string> CardOption() => new("--card")
        {
            Description = $"The card's memory file (default ${CardVariable} or {defaultCard}).",
            DefaultValueFactory = _ => context.Environment(CardVariable) is { Length: > 0 } fromEnvironment ? fromEnvironment : defaultCard,
        };

        Option<string?> ReaderOption() => new("--reader")
        {
            Description = "A PC/SC reader holding the card, by name (see `openpurse readers`); instead of the card file.",
        };

        var store = new Option<string?>("--store")
        {
            Description = $"The store's (or mall's) URL (default ${StoreUrlVariable}).",
            DefaultValueFactory = _ => context.Environment(StoreUrlVariable),
        };
        Option<string?> OperatorOption() => new("--operator")
        {
            Description = $"The operator's URL (default ${OperatorUrlVariable}).",
            DefaultValueFactory = _ => context.Environment(OperatorUrlVariable),
        };

        Option<string?> TrustOption() => new("--trust")
        {
            Description = $"The deployment's CA certificate (PEM), trusted besides the system's (default ${WalletTrust.TrustVariable}).",
            DefaultValueFactory = _ => context.Environment(WalletTrust.TrustVariable),
        };

        var operatorUrl = OperatorOption();
        var trust = TrustOption();
        var item = new Option<string>("--item") { Description = "The article to buy (its SKU in the catalog).", Required = true };
        var quantity = new Option<int>("--quantity")
        {
            Description = $"How many, 1 to {PurchaseRequest.QuantityMax}.",
            DefaultValueFactory = _ => 1,
            CustomParser = result =>
            {
                var text = result.Tokens.Count == 1 ? result.Tokens[0].Value : "";
                if (int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var count) && count is >= 1 and <= PurchaseRequest.QuantityMax)
                {
                    return count;
                }

                result.AddError($"--quantity must be a whole number from 1 to {PurchaseRequest.QuantityMax}, not '{text}'.");
                return 0;
            },
        };
        var storeId = new Option<string?>("--store-id") { Description = "The member store, when a mall sells the article more than once." };
        var profile = new Option<string>("--profile") { Description = "signed: the operator signs balance and debit (SIG2); lean: encrypted only.", DefaultValueFactory = _ => "signed" };
        profile.AcceptOnlyFromAmong("signed", "lean");
        var yes = new Option<bool>("--yes") { Description = "Approve the bill shown without asking." };
        var payCard = CardOption();
        var payReader = ReaderOption();

        var pay = new Command("pay", "Buy an article from a store and pay with the card.") { store, operatorUrl, item, quantity, storeId, profile, yes, payCard, payReader, trust }
            .WithExitCodes("0 paid", "1 not paid, or paid and not completed (the message says which, with its code)", "2 bad usage", "130 cancelled");
        pay.SetAction((parse, cancellationToken) => PayAsync(
            context,
            parse.GetValue(store),
            parse.GetValue(operatorUrl),
            new PurchaseRequest(
                parse.GetValue(item) ?? "",
                parse.GetValue(quantity),
                parse.GetValue(storeId),
                string.Equals(parse.GetValue(profile), "lean", StringComparison.Ordinal) ? SettlementProfile.Lean : SettlementProfile.Signed),
            parse.GetValue(yes),
            parse.GetValue(payCard)!,
            parse.GetValue(payReader),
            parse.GetValue(trust),
            cancellationToken));

        var showCard = CardOption();
        var showReader = ReaderOption();
        var card = new Command("card", "Show the card: number (masked), transactions, balances and history (date, store, order, amount).") { showCard, showReader }
            .WithExitCodes("0 shown", "1 the card cannot be read (with its code)", "2 bad usage");
        card.SetAction(parse => ShowCard(context, parse.GetValue(showCard)!, parse.GetValue(showReader)));

        var catalogStore = new Option<string?>("--store")
        {
            Description = $"The store's (or mall's) URL (default ${StoreUrlVariable}).",
            DefaultValueFactory = _ => context.Environment(StoreUrlVariable),
        };
        var catalogTrust = TrustOption();
        var catalog = new Command("catalog", "List what the store (or mall) sells: article, title, store and price.") { catalogStore, catalogTrust }
            .WithExitCodes("0 listed", "1 the store cannot be asked or answered wrongly (with its code)", "2 bad usage");
        catalog.SetAction((parse, cancellationToken) => CatalogAsync(context, parse.GetValue(catalogStore), parse.GetValue(catalogTrust), cancellationToken));

        var readers = new Command("readers", "List the PC/SC readers (pcscd), for --reader.")
            .WithExitCodes("0 listed", "1 pcscd cannot be asked", "2 bad usage");
        readers.SetAction(_ => ListReaders(context));

        var insertCard = CardOption();
        var vpcd = new Option<string>("--vpcd")
        {
            Description = "The vpcd slot to put the card into, host:port (pcscd's virtual reader; slot 0 of \"Virtual PCD\" is 127.0.0.1:35963).",
            DefaultValueFactory = _ => $"127.0.0.1:{VpcdCardConnector.DefaultPort}",
        };
        var insert = new Command("insert", "Put the card (its memory file) into pcscd's virtual reader (vpcd) and hold it there until Ctrl-C.") { insertCard, vpcd }
            .WithExitCodes("0 taken out", "1 no virtual reader, or the card file cannot be opened", "2 bad usage");
        insert.SetAction((parse, cancellationToken) => InsertAsync(context, parse.GetValue(insertCard)!, parse.GetValue(vpcd)!, cancellationToken));

        var syncOperator = OperatorOption();
        var syncTrust = TrustOption();
        var syncCard = CardOption();
        var syncReader = ReaderOption();
        var sync = new Command("sync", "Bring the card online: the operator resolves what it left unfinished and returns value it owes the card.") { syncOperator, syncTrust, syncCard, syncReader }
            .WithExitCodes("0 in sync", "1 the operator or the card refused (with its code)", "2 bad usage", "130 cancelled");
        sync.SetAction((parse, cancellationToken) => SyncAsync(context, parse.GetValue(syncOperator), parse.GetValue(syncTrust), parse.GetValue(syncCard)!, parse.GetValue(syncReader), cancellationToken));

        var amount = new Option<Money>("--amount")
        {
            Description = "What to add to the card, e.g. \"20.00 EUR\"; charged to a credit card whose number, expiry (MM/YY) and PIN are asked for (read as three lines when standard input is not a terminal).",
            Required = true,
            CustomParser = result =>
            {
                var text = result.Tokens.Count == 1 ? result.Tokens[0].Value : "";
                if (Money.TryParse(text, out var value) && value.IsPositive)
                {
                    return value;
                }

                result.AddError($"--amount must be a positive amount such as \"20.00 EUR\", not '{text}'.");
                return default;
            },
        };
        var topUpOperator = OperatorOption();
        var topUpTrust = TrustOption();
        var topUpCard = CardOption();
        var topUpReader = ReaderOption();
        var topUpYes = new Option<bool>("--yes") { Description = "Agree to the top-up shown without asking." };
        var topUp = new Command("topup", "Top the card up, charged to a credit card.") { amount, topUpOperator, topUpTrust, topUpCard, topUpReader, topUpYes }
            .WithExitCodes("0 added to the card", "1 not added: declined, refused or not agreed (the message says why, with its code)", "2 bad usage", "130 cancelled");
        topUp.SetAction((parse, cancellationToken) => TopUpAsync(
            context,
            parse.GetValue(topUpOperator),
            parse.GetValue(topUpTrust),
            parse.GetValue(amount),
            parse.GetValue(topUpYes),
            parse.GetValue(topUpCard)!,
            parse.GetValue(topUpReader),
            cancellationToken));

        var decreaseAmount = new Option<Money>("--amount")
        {
            Description = "What to take off the card, e.g. \"5.00 EUR\".",
            Required = true,
            CustomParser = amount.CustomParser,
        };
        var to = new Option<string>("--to") { Description = "The 16-digit number of the card that gets the value, at its next sync.", Required = true };
        var transferOperator = OperatorOption();
        var transferTrust = TrustOption();
        var transferCard = CardOption();
        var transferReader = ReaderOption();
        var transferYes = new Option<bool>("--yes") { Description = "Agree to the transfer shown without asking." };
        var transfer = new Command("transfer", "Send value from the card to another card.") { to, decreaseAmount, transferOperator, transferTrust, transferCard, transferReader, transferYes }
            .WithExitCodes("0 sent", "1 not sent: refused or not agreed, or its outcome unknown until openpurse sync (the message says which, with its code)", "2 bad usage", "130 cancelled");
        transfer.SetAction((parse, cancellationToken) => DecreaseAsync(
            context, parse.GetValue(transferOperator), parse.GetValue(transferTrust), parse.GetValue(transferYes), parse.GetValue(transferCard)!, parse.GetValue(transferReader),
            flow => flow.TransferAsync(parse.GetValue(decreaseAmount), parse.GetValue(to)!, cancellationToken), cancellationToken));

        var cashOutAmount = new Option<Money>("--amount")
        {
            Description = "What to take off the card and pay to the bank account, e.g. \"5.00 EUR\".",
            Required = true,
            CustomParser = amount.CustomParser,
        };
        var iban = new Option<string>("--iban") { Description = "The bank account's IBAN; spaces are ignored.", Required = true };
        var holder = new Option<string>("--holder") { Description = "The name of the bank account's holder.", Required = true };
        var cashOutOperator = OperatorOption();
        var cashOutTrust = TrustOption();
        var cashOutCard = CardOption();
        var cashOutReader = ReaderOption();
        var cashOutYes = new Option<bool>("--yes") { Description = "Agree to the cash-out shown without asking." };
        var cashOut = new Command("cashout", "Pay value from the card out to a bank account.") { iban, holder, cashOutAmount, cashOutOperator, cashOutTrust, cashOutCard, cashOutReader, cashOutYes }
            .WithExitCodes("0 paid out from the card", "1 not paid out: refused or not agreed, or its outcome unknown until openpurse sync (the message says which, with its code)", "2 bad usage", "130 cancelled");
        cashOut.SetAction((parse, cancellationToken) => DecreaseAsync(
            context, parse.GetValue(cashOutOperator), parse.GetValue(cashOutTrust), parse.GetValue(cashOutYes), parse.GetValue(cashOutCard)!, parse.GetValue(cashOutReader),
            flow => flow.CashOutAsync(parse.GetValue(cashOutAmount), parse.GetValue(iban)!, parse.GetValue(holder)!, cancellationToken), cancellationToken));

        var agentOperator = OperatorOption();
        var agentTrust = TrustOption();
        var agentCard = CardOption();
        var agentReader = ReaderOption();
        var allowOrigin = new Option<string[]>("--allow-origin")
        {
            Description = $"An origin (scheme://host[:port]) whose pages may ask for payments; repeat for more (default ${AgentOriginsVariable}, space-separated). Top-ups come only from the operator's origin, which must be allowed too.",
            AllowMultipleArgumentsPerToken = false,
            DefaultValueFactory = _ => (context.Environment(AgentOriginsVariable) ?? "").Split(' ', StringSplitOptions.RemoveEmptyEntries),
        };
        var listen = new Option<string>("--listen")
        {
            Description = $"The loopback URL to listen on (default {AgentOptions.DefaultUrl}).",
            DefaultValueFactory = _ => AgentOptions.DefaultUrl,
        };
        var agent = new Command("agent", "Serve the wallet agent: shops' and the operator's pages in your browser ask it for payments and top-ups, which you approve on its own pages.")
            { agentOperator, agentCard, agentReader, allowOrigin, listen, agentTrust }
            .WithExitCodes("0 stopped", "1 failed (the message says why, with its code)", "2 bad usage", "130 cancelled");
        agent.SetAction((parse, cancellationToken) => AgentAsync(
            context,
            parse.GetValue(agentOperator),
            parse.GetValue(agentTrust),
            parse.GetValue(allowOrigin) ?? [],
            parse.GetValue(listen)!,
            parse.GetValue(agentCard)!,
            parse.GetValue(agentReader),
            cancellationToken));

        return new RootCommand("OpenPurse wallet: pay online stores with your e-purse card, top it up, send value to another card or out to a bank account.")
            { catalog, pay, card, readers, insert, sync, topUp, transfer, cashOut, agent }
            .WithExitCodes("0 ok", "1 the operation failed (the message says why, with its code)", "2 bad usage", "130 cancelled");
    }

    private static async Task<int> PayAsync(WalletCliContext context, string? storeUrl, string? operatorUrl, PurchaseRequest request, bool yes, string cardPath, string? readerName, string? trustPath, CancellationToken cancellationToken)
    {
        var console = context.Console;
        if (!TryParseUrl(storeUrl, "--store", StoreUrlVariable, console, out var storeUri)
            || !TryParseUrl(operatorUrl, "--operator", OperatorUrlVariable, console, out var operatorUri)
            || !TryLoadTrust(trustPath, console, out var trustedRoots))
        {
            return ExitUsage;
        }

        return await WithPartiesAsync(context, trustedRoots, cardPath, readerName, async (handler, reader) =>
        {
            using var storeHttp = new HttpClient(handler, disposeHandler: false) { BaseAddress = storeUri, Timeout = s_httpTimeout };
            using var operatorHttp = new HttpClient(handler, disposeHandler: false) { BaseAddress = operatorUri, Timeout = s_httpTimeout };
            console.MarkupLine($"[grey]Reader:[/] {Markup.Escape(reader.Name)}");
            var flow = new PurchaseFlow(storeHttp, operatorHttp, reader, new ConsolePrompt(console, yes), context.Time);
            PurchaseResult result;
            try
            {
                result = await flow.RunAsync(request, cancellationToken).ConfigureAwait(false);
            }
            catch (WalletException e) when (e.Code == WalletErrors.ItemUnknown)
            {
                // Say what there is to buy instead.
                Report(console, e);
                console.Write(Render.Catalog(await new StoreApi(storeHttp).CatalogAsync(cancellationToken).ConfigureAwait(false)));
                return ExitFailed;
            }

            console.Write(Render.Content(result.OrderNo, result.Content));
            console.Write(Render.Result(result));
            Keep(console, cardPath, result.Receipt);
            return ExitOk;
        }).ConfigureAwait(false);
    }

    private static async Task<int> CatalogAsync(WalletCliContext context, string? storeUrl, string? trustPath, CancellationToken cancellationToken)
    {
        var console = context.Console;
        if (!TryParseUrl(storeUrl, "--store", StoreUrlVariable, console, out var storeUri) || !TryLoadTrust(trustPath, console, out var trustedRoots))
        {
            return ExitUsage;
        }

        return await Guard(console, async () =>
        {
            var handler = context.HttpHandler ?? WalletTrust.CreateHandler(trustedRoots);
            try
            {
                using var storeHttp = new HttpClient(handler, disposeHandler: false) { BaseAddress = storeUri, Timeout = s_httpTimeout };
                console.Write(Render.Catalog(await new StoreApi(storeHttp).CatalogAsync(cancellationToken).ConfigureAwait(false)));
                return ExitOk;
            }
            finally
            {
                if (context.HttpHandler is null)
                {
                    handler.Dispose();
                }
            }
        }).ConfigureAwait(false);
    }

    // The receipt's store, order and date beside the card file, for `openpurse card`; the purchase is
    // done whether or not the note can be written.
    private static void Keep(IAnsiConsole console, string cardPath, Receipt receipt) =>
        Note(console, cardPath, journal => PurchaseJournal.Append(journal, receipt));

    // Notes what the card's log does not keep beside the card file; what was done is done whether or not the note can be written.
    private static void Note(IAnsiConsole console, string cardPath, Action<string> append)
    {
        try
        {
            append(PurchaseJournal.PathFor(cardPath));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            console.MarkupLine($"[grey]Not noted in {Markup.Escape(PurchaseJournal.PathFor(cardPath))} ({Markup.Escape(e.Message)}); the card's history shows it with less detail.[/]");
        }
    }

    private static async Task<int> SyncAsync(WalletCliContext context, string? operatorUrl, string? trustPath, string cardPath, string? readerName, CancellationToken cancellationToken)
    {
        var console = context.Console;
        if (!TryParseUrl(operatorUrl, "--operator", OperatorUrlVariable, console, out var operatorUri) || !TryLoadTrust(trustPath, console, out var trustedRoots))
        {
            return ExitUsage;
        }

        return await WithPartiesAsync(context, trustedRoots, cardPath, readerName, async (handler, reader) =>
        {
            using var operatorHttp = new HttpClient(handler, disposeHandler: false) { BaseAddress = operatorUri, Timeout = s_httpTimeout };
            var result = await new CardSyncFlow(new OperatorApi(operatorHttp), reader, new ConsolePrompt(console, assumeYes: true)).RunAsync(cancellationToken).ConfigureAwait(false);
            console.MarkupLine(result.Resolved.Count == 0 ? "Nothing was unfinished." : $"Resolved: {Markup.Escape(string.Join(", ", result.Resolved.Select(r => $"{r.SettlementId} {r.State}")))}");
            foreach (var credit in result.Credits)
            {
                Note(console, cardPath, journal => PurchaseJournal.AppendCredit(journal, credit, context.Time.GetUtcNow()));
                console.MarkupLine(credit.Purpose == ValueUpdatePurposes.Return
                    ? $"Returned to the card: {Markup.Escape(credit.Amount.ToString())} (settlement {credit.SourceId})."
                    : $"Added to the card: {Markup.Escape(credit.Amount.ToString())}, {Markup.Escape(CardSyncFlow.Describe(credit))}.");
            }

            console.MarkupLine($"Balance: {Markup.Escape(string.Join(", ", result.Balance.Balances))}");
            return ExitOk;
        }).ConfigureAwait(false);
    }

    private static async Task<int> TopUpAsync(WalletCliContext context, string? operatorUrl, string? trustPath, Money amount, bool yes, string cardPath, string? readerName, CancellationToken cancellationToken)
    {
        var console = context.Console;
        if (!TryParseUrl(operatorUrl, "--operator", OperatorUrlVariable, console, out var operatorUri) || !TryLoadTrust(trustPath, console, out var trustedRoots))
        {
            return ExitUsage;
        }

        return await Guard(console, async () =>
        {
            // Checked before the card or the operator is touched: a mistyped number costs nothing.
            var cardData = AskCreditCard(context);
            return await WithPartiesAsync(context, trustedRoots, cardPath, readerName, async (handler, reader) =>
            {
                using var operatorHttp = new HttpClient(handler, disposeHandler: false) { BaseAddress = operatorUri, Timeout = s_httpTimeout };
                var result = await new TopUpFlow(new OperatorApi(operatorHttp), reader, new ConsolePrompt(console, yes)).RunAsync(amount, cardData, cancellationToken).ConfigureAwait(false);
                console.MarkupLine($"[green]✓[/] Added {Markup.Escape(result.Amount.ToString())} to the card, charged to the credit card ending {Markup.Escape(result.LastFour)} (top-up {result.TopUpId}, {Markup.Escape(result.State)}).");
                console.MarkupLine($"Balance: [bold]{Markup.Escape(result.Balance.ToString())}[/]");
                Note(console, cardPath, journal => PurchaseJournal.AppendTopUp(journal, result.ValueUpdateId, result.Amount, result.LastFour, result.Balance, context.Time.GetUtcNow()));

                return ExitOk;
            }).ConfigureAwait(false);
        }).ConfigureAwait(false);
    }

    private static async Task<int> DecreaseAsync(WalletCliContext context, string? operatorUrl, string? trustPath, bool yes, string cardPath, string? readerName,
        Func<DecreaseFlow, Task<DecreaseResult>> run, CancellationToken cancellationToken)
    {
        var console = context.Console;
        if (!TryParseUrl(operatorUrl, "--operator", OperatorUrlVariable, console, out var operatorUri) || !TryLoadTrust(trustPath, console, out var trustedRoots))
        {
            return ExitUsage;
        }

        return await Guard(console, () => WithPartiesAsync(context, trustedRoots, cardPath, readerName, async (handler, reader) =>
        {
            using var operatorHttp = new HttpClient(handler, disposeHandler: false) { BaseAddress = operatorUri, Timeout = s_httpTimeout };
            var result = await run(new DecreaseFlow(new OperatorApi(operatorHttp), reader, new ConsolePrompt(console, yes))).ConfigureAwait(false);
            var what = result.Purpose == Protocol.Messages.ValueDecreasePurposes.Transfer
                ? $"Sent {result.Amount} to card {result.Payee}; it gets the value at its next openpurse sync (transfer {result.Id}, {result.State})."
                : $"Took {result.Amount} off the card for the bank account {result.Payee}; the operator pays it out (cash-out {result.Id}, {result.State}).";
            console.MarkupLine($"[green]✓[/] {Markup.Escape(what)}");
            console.MarkupLine($"Balance: [bold]{Markup.Escape(result.Balance.ToString())}[/]");
            Note(console, cardPath, journal => PurchaseJournal.AppendDecrease(journal, result.Purpose, result.Id, result.Amount, result.Payee, result.Balance, context.Time.GetUtcNow()));

            return ExitOk;
        })).ConfigureAwait(false);
    }

    // The agent serves until it is stopped: 130 after Ctrl-C, 0 when it ended otherwise.
    private static async Task<int> AgentAsync(WalletCliContext context, string? operatorUrl, string? trustPath, string[] origins, string listen, string cardPath, string? readerName, CancellationToken cancellationToken)
    {
        var console = context.Console;
        if (!TryParseUrl(operatorUrl, "--operator", OperatorUrlVariable, console, out var operatorUri) || !TryLoadTrust(trustPath, console, out var trustedRoots))
        {
            return ExitUsage;
        }

        if (origins.FirstOrDefault(origin => AgentOrigins.Canonical(origin) is null) is { } bad)
        {
            console.MarkupLine($"[red]✗[/] --allow-origin must be an origin such as https://shop.example or http://127.0.0.1:5090, not {Markup.Escape(bad)}.");
            return ExitUsage;
        }

        var options = new AgentOptions
        {
            OperatorUrl = operatorUri,
            AllowedOrigins = origins,
            Urls = listen,
            TrustedRoots = trustedRoots,
            HttpHandler = context.HttpHandler,
            Time = context.Time,
        };
        return await Guard(console, async () =>
        {
            var reader = OpenReader(context, cardPath, readerName);
            try
            {
                RunningAgent running;
                try
                {
                    running = await AgentHost.StartAsync(options, reader, cancellationToken).ConfigureAwait(false);
                }
                catch (ArgumentException e)
                {
                    console.MarkupLine($"[red]✗[/] {Markup.Escape(e.Message)}");
                    return ExitUsage;
                }
                catch (IOException e)
                {
                    // Kestrel's "address in use" and the like.
                    console.MarkupLine($"[red]✗[/] The agent cannot listen on {Markup.Escape(listen)}: {Markup.Escape(e.Message)}");
                    return ExitFailed;
                }

                await using (running.ConfigureAwait(false))
                {
                    console.MarkupLine($"OpenPurse agent listening on {Markup.Escape(running.Address.ToString())} (reader: {Markup.Escape(reader.Name)}, operator: {Markup.Escape(operatorUri.ToString())})");
                    console.MarkupLine(running.AllowedOrigins.Count == 0
                        ? "[yellow]No origin is allowed: no page can use the agent. Give --allow-origin.[/]"
                        : $"Allowed origins: {Markup.Escape(string.Join(' ', running.AllowedOrigins.Order(StringComparer.Ordinal)))}");
                    console.MarkupLine("Ctrl-C stops it.");
                    try
                    {
                        await Task.Delay(Timeout.Infinite, cancellationToken).ConfigureAwait(false);
                    }
                    catch (OperationCanceledException)
                    {
                        console.MarkupLine("Stopping the agent.");
                    }
                }

                return cancellationToken.IsCancellationRequested ? ExitCancelled : ExitOk;
            }
            finally
            {
                (reader as IDisposable)?.Dispose();
            }
        }).ConfigureAwait(false);
    }

    // The credit card's number, expiry and PIN: typed at the terminal (the PIN not echoed), or three
    // lines of standard input for scripts. Never from arguments or the environment, which other
    // users of the machine can read.
    private static Protocol.Messages.CardData AskCreditCard(WalletCliContext context)
    {
        string? number, expiry, pin;
        if (context.Input is { } input)
        {
            number = input.ReadLine();
            expiry = input.ReadLine();
            pin = input.ReadLine();
            if (pin is null)
            {
                throw new WalletException(WalletErrors.CreditCardMissing, "Standard input must give three lines: the credit card's number, its expiry (MM/YY) and its PIN. Nothing was sent.");
            }
        }
        else if (context.Console.Profile.Capabilities.Interactive)
        {
            number = context.Console.Prompt(new TextPrompt<string>("Credit card number:"));
            expiry = context.Console.Prompt(new TextPrompt<string>("Expiry (MM/YY):"));
            pin = context.Console.Prompt(new TextPrompt<string>("PIN:").Secret(null));
        }
        else
        {
            throw new WalletException(WalletErrors.CreditCardMissing, "The wallet cannot ask for the credit card here: give its number, expiry (MM/YY) and PIN as three lines on standard input. Nothing was sent.");
        }

        return CreditCardEntry.Check(number, expiry, pin, context.Time.GetUtcNow());
    }

    // The HTTP stack (trusting the configured roots) and the card's reader for one command, closed after it.
    private static Task<int> WithPartiesAsync(WalletCliContext context, X509Certificate2Collection? trustedRoots, string cardPath, string? readerName, Func<HttpMessageHandler, ICardReader, Task<int>> work) =>
        Guard(context.Console, async () =>
        {
            var handler = context.HttpHandler ?? WalletTrust.CreateHandler(trustedRoots);
            try
            {
                var reader = OpenReader(context, cardPath, readerName);
                try
                {
                    return await work(handler, reader).ConfigureAwait(false);
                }
                finally
                {
                    (reader as IDisposable)?.Dispose();
                }
            }
            finally
            {
                if (context.HttpHandler is null)
                {
                    handler.Dispose();
                }
            }
        });

    private static int ShowCard(WalletCliContext context, string cardPath, string? readerName)
    {
        var console = context.Console;
        try
        {
            var reader = OpenReader(context, cardPath, readerName);
            try
            {
                var card = new WalletCard(reader);
                card.Select();
                var status = card.Status();
                var history = card.History();
                console.Write(Render.CardStatus(status, reader.Name));
                console.Write(Render.History(history, ReadJournal(console, cardPath)));
                return ExitOk;
            }
            finally
            {
                (reader as IDisposable)?.Dispose();
            }
        }
#pragma warning disable CA1031 // The last line of defence: see Report.
        catch (Exception e)
#pragma warning restore CA1031
        {
            return Report(console, e);
        }
    }

    private static IReadOnlyDictionary<Guid, PurchaseJournal.Entry> ReadJournal(IAnsiConsole console, string cardPath)
    {
        try
        {
            return PurchaseJournal.Read(PurchaseJournal.PathFor(cardPath));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            console.MarkupLine($"[grey]The purchase journal cannot be read ({Markup.Escape(e.Message)}); the history shows what the card knows.[/]");
            return new Dictionary<Guid, PurchaseJournal.Entry>();
        }
    }

    private static async Task<int> InsertAsync(WalletCliContext context, string cardPath, string slot, CancellationToken cancellationToken)
    {
        var console = context.Console;
        var colon = slot.LastIndexOf(':');
        if (colon <= 0 || !int.TryParse(slot.AsSpan(colon + 1), NumberStyles.None, CultureInfo.InvariantCulture, out var port) || port is 0 or > ushort.MaxValue)
        {
            console.MarkupLine($"[red]✗[/] --vpcd must be host:port, not {Markup.Escape(slot)}.");
            return ExitUsage;
        }

        var host = slot[..colon];
        return await Guard(console, async () =>
        {
            using var card = InProcessReader.OpenCard(cardPath);
            VpcdCardConnector connector;
            try
            {
                connector = await VpcdCardConnector.ConnectAsync(card, host, port, cancellationToken).ConfigureAwait(false);
            }
            catch (SocketException e)
            {
                throw new WalletException(WalletErrors.ReaderUnavailable, $"No virtual reader answers at {slot} ({e.SocketErrorCode}): pcscd with the vpcd driver does not run there.", innerException: e);
            }

            using (connector)
            {
                console.MarkupLine($"Card {Markup.Escape(card.CardId.Masked)} is in the virtual reader at {Markup.Escape(slot)}. Ctrl-C takes it out.");
                // Until the person takes the card out, or pcscd goes away.
                await Task.WhenAny(connector.Removed, Task.Delay(Timeout.Infinite, cancellationToken)).ConfigureAwait(false);
                console.MarkupLine(cancellationToken.IsCancellationRequested ? "Card taken out." : "The reader went away; the card is out.");
                return ExitOk;
            }
        }).ConfigureAwait(false);
    }

    // A named PC/SC reader replaces the card file; without one the card file (the default) is used.
    private static ICardReader OpenReader(WalletCliContext context, string cardPath, string? readerName) =>
        string.IsNullOrEmpty(readerName) ? context.OpenReader(cardPath) : context.OpenPcscReader(readerName);

    private static int ListReaders(WalletCliContext context)
    {
        var console = context.Console;
        try
        {
            var names = context.ListReaders();
            if (names.Count == 0)
            {
                console.MarkupLine("No PC/SC readers. Plug one in, or check that pcscd runs.");
                return ExitOk;
            }

            foreach (var name in names)
            {
                console.WriteLine(name);
            }

            return ExitOk;
        }
#pragma warning disable CA1031 // The last line of defence: see Report.
        catch (Exception e)
#pragma warning restore CA1031
        {
            return Report(console, e);
        }
    }

    private static async Task<int> Guard(IAnsiConsole console, Func<Task<int>> action)
    {
        try
        {
            return await action().ConfigureAwait(false);
        }
#pragma warning disable CA1031 // The last line of defence: see Report.
        catch (Exception e)
#pragma warning restore CA1031
        {
            return Report(console, e);
        }
    }

    // Every failure the person can meet ends as one sentence and an exit code, never a stack trace:
    // the last line of defence, so that even a bug prints no trace and no secret.
    private static int Report(IAnsiConsole console, Exception exception)
    {
        switch (exception)
        {
            case WalletException e:
                console.MarkupLine($"[red]✗[/] {Markup.Escape(e.Message)} [grey]({Markup.Escape(e.Code)})[/]");
                return ExitFailed;
            case OperationCanceledException:
                console.MarkupLine("[yellow]Cancelled.[/]");
                return ExitCancelled;
            default:
                console.MarkupLine($"[red]✗[/] The wallet stopped on an unexpected error ({Markup.Escape(exception.GetType().Name)}). [grey]({WalletErrors.Unexpected})[/]");
                return ExitFailed;
        }
    }

    private static bool TryLoadTrust(string? path, IAnsiConsole console, out X509Certificate2Collection? roots)
    {
        roots = null;
        if (string.IsNullOrWhiteSpace(path))
        {
            return true;
        }

        try
        {
            roots = WalletTrust.Load(path);
            return true;
        }
        catch (FormatException e)
        {
            console.MarkupLine($"[red]✗[/] --trust (or {WalletTrust.TrustVariable}) {Markup.Escape(path)} is not a CA certificate to trust: {Markup.Escape(e.Message)}");
            return false;
        }
    }

    private static bool TryParseUrl(string? text, string option, string variable, IAnsiConsole console, out Uri uri)
    {
        uri = null!;
        if (string.IsNullOrWhiteSpace(text))
        {
            console.MarkupLine($"[red]✗[/] Give {option} or set {variable}.");
            return false;
        }

        if (!Uri.TryCreate(text, UriKind.Absolute, out var parsed) || parsed.Scheme is not ("http" or "https"))
        {
            console.MarkupLine($"[red]✗[/] {option} must be an http(s) URL, not {Markup.Escape(text)}.");
            return false;
        }

        uri = parsed;
        return true;
    }
}
