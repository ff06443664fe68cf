using System.Diagnostics;
using OpenPurse.Demo;
using OpenPurse.Protocol;
using OpenPurse.Protocol.Messages;
using OpenPurse.Protocol.Purse;
using OpenPurse.Wallet.Cli;
using OpenPurse.Wallet.Purchase;
using OpenPurse.Wallet.Readers;
using Spectre.Console;

// openpurse-demo: the whole system on its embedded defaults in one command. Options:
//   --data <dir>   keep the operator's, the mall's and the card's files there (default: a new temporary directory)
//   --exit         stop after the two purchases instead of serving until Ctrl-C
var console = AnsiConsole.Console;
var startup = Stopwatch.StartNew();
var ownsDataDirectory = ArgumentAfter("--data") is null;
var dataDirectory = ArgumentAfter("--data") ?? Directory.CreateTempSubdirectory("openpurse-demo-").FullName;
var exitAfterPurchases = args.Contains("--exit");
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

async Task<int> RunAsync()
{
    console.Write(new Rule("[bold]OpenPurse[/] — embedded defaults: SQLite registry, software key vault, in-process card reader").LeftJustified());
    await using var system = await DemoSystem.StartAsync(dataDirectory);
    console.MarkupLine($"Operator      [link]{system.OperatorUrl}[/]  (registry and key vault in {Markup.Escape(Path.Combine(dataDirectory, "operator"))})");
    console.MarkupLine($"Mall          [link]{system.StoreUrl}[/]  ({DemoSystem.MallId}: {string.Join(", ", DemoSystem.Members.Select(m => m.StoreId))}, each with its own signing key, registered at the operator)");
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

    console.MarkupLine($"[grey]Whole run: {startup.ElapsedMilliseconds} ms.[/]");
    if (exitAfterPurchases)
    {
        return 0;
    }

    console.Write(new Rule("Serving until Ctrl-C").LeftJustified());
    console.MarkupLine($"Operator  {system.OperatorUrl}  (admin API: {system.OperatorAdminUrl})");
    console.MarkupLine($"Mall      {system.StoreUrl}");
    console.MarkupLine("Try the wallet yourself, in another terminal:");
    // Plain lines, never wrapped, so they can be copied whole.
    Console.WriteLine($"  dotnet run --project src/OpenPurse.Wallet -- pay --store {system.StoreUrl} --operator {system.OperatorUrl} --card {cardPath} --item book-001");
    Console.WriteLine($"  dotnet run --project src/OpenPurse.Wallet -- card --card {cardPath}");
    using var stop = new CancellationTokenSource();
    Console.CancelKeyPress += (_, e) =>
    {
        e.Cancel = true;
        stop.Cancel();
    };
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

string? ArgumentAfter(string name)
{
    var index = Array.IndexOf(args, name);
    return index >= 0 && index + 1 < args.Length ? args[index + 1] : null;
}
