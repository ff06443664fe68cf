using System.CommandLine;
using System.Diagnostics;
using System.Runtime.InteropServices;
using OpenPurse.CommandLine;
using OpenPurse.Demo;
using OpenPurse.Protocol;
using OpenPurse.Protocol.Messages;
using OpenPurse.Protocol.Purse;
using OpenPurse.Wallet.Cli;
using OpenPurse.Wallet.Purchase;
using OpenPurse.Wallet.Readers;
using Spectre.Console;

// openpurse-demo: the whole system on its embedded defaults in one command.
var console = AnsiConsole.Console;
var startup = Stopwatch.StartNew();
var dataDirectory = "";
var exitAfterPurchases = false;
var data = new Option<string?>("--data") { Description = "Keep the operator's, the mall's and the card's files in this directory (default: a new temporary directory, removed at the end)." };
var exit = new Option<bool>("--exit") { Description = "Stop after the two purchases instead of serving until Ctrl-C." };
var root = new RootCommand("The whole OpenPurse system on its embedded defaults: an operator, a mall, a card and two purchases; then it serves until Ctrl-C, with a wallet agent for buying and topping up in a browser.") { data, exit }
    .WithExitCodes("0 ok", "1 the demo failed", "2 bad usage");
root.SetAction(async parse =>
{
    var ownsDataDirectory = parse.GetValue(data) is null;
    dataDirectory = parse.GetValue(data) ?? Directory.CreateTempSubdirectory("openpurse-demo-").FullName;
    exitAfterPurchases = parse.GetValue(exit);
    try
    {
        return await RunAsync();
    }
    finally
    {
        // A temporary directory the demo made is the demo's to remove; one given with --data is kept.
        if (ownsDataDirectory)
        {
            Directory.Delete(dataDirectory, recursive: true);
        }
    }
});

// The demo stops on SIGINT, SIGTERM and SIGQUIT itself (below), after its servers.
return await CommandLines.InvokeAsync(root, args, Console.Out, Console.Error, cancelOnInterrupt: false);

async Task<int> RunAsync()
{
    console.Write(new Rule("[bold]OpenPurse[/] — embedded defaults: SQLite registry, software key vault, in-process card reader").LeftJustified());
    // The wallet agent's reader: empty until the browser's card is issued below. Declared before the
    // system, so the agent stops before the card it holds is closed.
    using var agentReader = new CardSlot();
    await using var system = await DemoSystem.StartAsync(dataDirectory, agentReader: agentReader);
    var agent = system.Agent!;
    console.MarkupLine($"Operator      [link]{system.OperatorUrl}[/]  (registry and key vault in {Markup.Escape(Path.Combine(dataDirectory, "operator"))})");
    console.MarkupLine($"Mall          [link]{system.StoreUrl}[/]  ({DemoSystem.MallId}: {string.Join(", ", DemoSystem.Members.Select(m => m.StoreId))}, each with its own signing key, registered at the operator)");
    console.MarkupLine($"Wallet agent  [link]{agent.Address}[/]  (the browser's way to a card: the mall's and the operator's pages only)");
    console.MarkupLine($"[grey]Up in {startup.ElapsedMilliseconds} ms.[/]");

    var cardPath = Path.Combine(dataDirectory, "card.bin");
    var load = Money.Parse("50.00 EUR");
    using (var card = await system.IssueCardAsync(cardPath, load))
    using (var reader = new InProcessReader(card))
    {
        console.MarkupLine($"Card          {card.CardId.Masked}: issued with its own diversified keys, loaded with {load} ({Markup.Escape(cardPath)})");

        await BuyAsync(system, reader, new PurchaseRequest("book-002", StoreId: "books", Profile: SettlementProfile.Signed), "Purchase 1 — profile \"signed\" (ST1–ST20): the operator signs balance and debit (SIG2)");
        await BuyAsync(system, reader, new PurchaseRequest("song-001", StoreId: "tunes", Profile: SettlementProfile.Lean), "Purchase 2 — profile \"lean\" (ST101–ST112): settlement information only encrypted for the card");

        console.Write(new Rule("The card now").LeftJustified());
        var status = WalletCardStatus(reader);
        console.Write(Render.CardStatus(status, reader.Name));
    }

    // A second card, for a transfer to try: it takes what it is sent at its next sync.
    var friendPath = Path.Combine(dataDirectory, "friend.bin");
    string friendNumber;
    using (var friend = await system.IssueCardAsync(friendPath, Money.Parse("5.00 EUR")))
    {
        friendNumber = friend.CardId.Digits;
        console.MarkupLine($"Second card   {friend.CardId.Masked}: issued and loaded with 5.00 EUR, to send value to ({Markup.Escape(friendPath)})");
    }

    // The card the wallet agent holds for the browser: a card of its own, since the wallet commands
    // below open card.bin themselves and a card file is held by one process at a time.
    var browserCardPath = Path.Combine(dataDirectory, "browser-card.bin");
    var browserLoad = Money.Parse("50.00 EUR");
    var browserCard = await system.IssueCardAsync(browserCardPath, browserLoad);
    agentReader.Insert(browserCard);
    console.MarkupLine($"Browser card  {browserCard.CardId.Masked}: issued and loaded with {browserLoad}, on the wallet agent's reader ({Markup.Escape(browserCardPath)})");

    console.MarkupLine($"[grey]Whole run: {startup.ElapsedMilliseconds} ms.[/]");
    if (exitAfterPurchases)
    {
        return 0;
    }

    // Ctrl-C (SIGINT) at a terminal, SIGTERM from a service manager or `kill`, SIGQUIT: each ends the
    // wait below, and the servers then stop (in-flight requests finish or are refused) and the
    // temporary files go. Without a handler of its own the demo heard SIGINT only: on SIGTERM the
    // hosts' own console lifetimes stopped the servers, and the demo waited on for ever. Registered
    // before the demo says it serves: a signal sent as soon as it says so finds the handler.
    using var stop = new CancellationTokenSource();
    using var onInterrupt = PosixSignalRegistration.Create(PosixSignal.SIGINT, Stop);
    using var onTerminate = PosixSignalRegistration.Create(PosixSignal.SIGTERM, Stop);
    using var onQuit = PosixSignalRegistration.Create(PosixSignal.SIGQUIT, Stop);
    void Stop(PosixSignalContext context)
    {
        // Handled here: the process ends by returning from Main, after the servers stopped.
        context.Cancel = true;
        stop.Cancel();
    }

    // Plain lines, never wrapped, so the addresses can be copied whole.
    Console.WriteLine($"Wallet agent {agent.Address} holds card {browserCard.CardId.Masked} for the pages of {Origin(system.StoreUrl)} and {Origin(system.OperatorUrl)}");
    Console.WriteLine($"Buy in your browser: open {system.StoreUrl}");
    Console.WriteLine($"Top up in your browser: open {system.OperatorUrl}");
    console.Write(new Rule("Serving until Ctrl-C").LeftJustified());
    console.MarkupLine($"Operator  {system.OperatorUrl}  (admin API: {system.OperatorAdminUrl})");
    console.MarkupLine($"Mall      {system.StoreUrl}");
    console.MarkupLine($"Authorizer {system.AuthorizerUrl}  (credit cards in test mode, for top-ups)");
    console.MarkupLine("Wallet commands to try, in another terminal:");
    // Plain lines, never wrapped, so they can be copied whole; the wallet built beside the demo,
    // so they run from any directory and need no build.
    var wallet = $"dotnet {ShellWord(Path.Combine(AppContext.BaseDirectory, "openpurse.dll"))}";
    Console.WriteLine($"  {wallet} catalog --store {system.StoreUrl}");
    Console.WriteLine($"  {wallet} pay --store {system.StoreUrl} --operator {system.OperatorUrl} --card {ShellWord(cardPath)} --item book-001");
    Console.WriteLine($"  {wallet} card --card {ShellWord(cardPath)}");
    Console.WriteLine($"  {wallet} topup --operator {system.OperatorUrl} --card {ShellWord(cardPath)} --amount \"20.00 EUR\"");
    Console.WriteLine($"    (it asks for a credit card: the test card {DemoAuthorizer.ApprovedCard}, any expiry not yet passed, PIN {DemoAuthorizer.TestCardPin};");
    Console.WriteLine($"     {DemoAuthorizer.DeclinedCard} is declined; docs/authorizer.md lists the other test cards)");
    Console.WriteLine("  The store owner refunds (part of) a paid order (its number is in the pay command's output), as the store's admin API:");
    Console.WriteLine($"  curl -s -X POST -H 'Authorization: Bearer {DemoSystem.StoreAdminToken}' -H 'Content-Type: application/json' -d '{{\"orderNo\":\"ORDER-NO\",\"amount\":\"2.00\"}}' {system.StoreUrl}v1/admin/refunds");
    Console.WriteLine($"  {wallet} sync --operator {system.OperatorUrl} --card {ShellWord(cardPath)}    # the card takes refunds, transfers and points");
    Console.WriteLine("  The store owner sees the order's refunds, credited once the card took them at its sync:");
    Console.WriteLine($"  curl -s -H 'Authorization: Bearer {DemoSystem.StoreAdminToken}' {system.StoreUrl}v1/admin/orders/ORDER-NO/refunds");
    Console.WriteLine($"  {wallet} transfer --operator {system.OperatorUrl} --card {ShellWord(cardPath)} --to {friendNumber} --amount \"5.00 EUR\"");
    Console.WriteLine($"  {wallet} sync --operator {system.OperatorUrl} --card {ShellWord(friendPath)}    # the second card takes the transfer");
    Console.WriteLine($"  {wallet} cashout --operator {system.OperatorUrl} --card {ShellWord(cardPath)} --iban \"DE89 3704 0044 0532 0130 00\" --holder \"Erika Mustermann\" --amount \"10.00 EUR\"");
    Console.WriteLine($"  {wallet} pay --store {system.StoreUrl} --operator {system.OperatorUrl} --card {ShellWord(cardPath)} --item course-001    # awards 200 PTS; after a sync, --item sticker-001 spends 150 of them");
    try
    {
        await Task.Delay(Timeout.Infinite, stop.Token);
    }
    catch (OperationCanceledException)
    {
        console.MarkupLine("Stopped.");
    }

    return 0;
}

async Task BuyAsync(DemoSystem system, InProcessReader reader, PurchaseRequest request, string title)
{
    console.Write(new Rule($"[bold]{Markup.Escape(title)}[/]").LeftJustified());
    using var store = system.StoreClient();
    using var operatorApi = system.OperatorClient();
    var flow = new PurchaseFlow(store, operatorApi, reader, new ConsolePrompt(console, assumeYes: true));
    var result = await flow.RunAsync(request);
    // As the wallet does: the store, order and date beside the card, for `openpurse card`.
    PurchaseJournal.Append(PurchaseJournal.PathFor(Path.Combine(dataDirectory, "card.bin")), result.Receipt);
    console.Write(Render.Result(result));
    console.MarkupLine($"[grey]Receipt {Markup.Escape(result.Receipt.OrderNo)} from {Markup.Escape(result.Receipt.StoreId)}, issued {result.Receipt.IssuedAt:u}, for completion notice {Markup.Escape(result.Receipt.CompletionDigest[..12])}…[/]");
    console.Write(Render.Content(result.OrderNo, result.Content));
}

static PurseStatus WalletCardStatus(InProcessReader reader)
{
    reader.Transmit(CardHostSession.Select());
    return PurseStatus.TryParse(reader.Transmit(CardHostSession.GetData()).Data, out var status)
        ? status
        : throw new InvalidOperationException("The card's status is unreadable.");
}

// An address's origin, as a browser names it (and the agent allows it).
static string Origin(Uri url) => url.GetLeftPart(UriPartial.Authority);

// A path as one shell word: quoted when it holds anything a shell would split or expand.
static string ShellWord(string text) =>
    text.All(c => char.IsAsciiLetterOrDigit(c) || c is '/' or '.' or '-' or '_' or ':' or '+' or ',' or '@' or '%' or '=')
        ? text
        : "'" + text.Replace("'", "'\\''", StringComparison.Ordinal) + "'";
