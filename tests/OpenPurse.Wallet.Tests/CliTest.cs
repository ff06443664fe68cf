using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using OpenPurse.Card;
using OpenPurse.Testing;
using OpenPurse.Wallet.Cli;
using OpenPurse.Wallet.Readers;
using OpenPurse.Wallet.Tests.Fakes;
using Spectre.Console.Testing;

namespace OpenPurse.Wallet.Tests;

/// <summary>The <c>openpurse</c> commands, run on a test console against the fakes.</summary>
public sealed class CliTest : IDisposable
{
    /// <summary>vpcd's GET ATR control code, which is also its presence poll (virtualsmartcard vpcd.h).</summary>
    private const byte VpcdGetAtr = 0x04;

    /// <summary>The longest a test waits for the card to leave the fake reader.</summary>
    private static readonly TimeSpan s_insertTimeout = TimeSpan.FromSeconds(10);

    private readonly WalletKit _kit = new();
    private readonly TestConsole _console = new();
    private readonly Dictionary<string, string> _environment = new(StringComparer.Ordinal);
    private readonly StringWriter _output = new();
    private readonly StringWriter _error = new();

    public CliTest() => _console.Width(160);

    [Fact]
    public async Task Card_AfterLoadAndPurchase_ShowsMaskedNumberBalanceAndHistoryNewestFirst()
    {
        var purchase = await _kit.BuyAsync();

        var exit = await RunAsync("card", "--card", _kit.CardPath);

        Assert.Equal(WalletCli.ExitOk, exit);
        var output = _console.Output;
        Assert.Contains(WalletKit.TestCardId.Masked, output, StringComparison.Ordinal);
        Assert.DoesNotContain(WalletKit.TestCardId.Digits, output, StringComparison.Ordinal);
        Assert.Contains("87.50 EUR", output, StringComparison.Ordinal);
        var payment = output.IndexOf("payment", StringComparison.Ordinal);
        var load = output.IndexOf(" load ", StringComparison.Ordinal);
        Assert.True(payment >= 0 && load > payment, "The payment is listed before the older load.");
        Assert.Contains("-12.50 EUR", output, StringComparison.Ordinal);
        Assert.Contains("+100.00 EUR", output, StringComparison.Ordinal);
        // The settlement by the last digits of its id (the first are its time); no journal, so no store.
        Assert.Contains(purchase.SettlementId.ToString("N")[^8..], output, StringComparison.Ordinal);
        Assert.DoesNotContain(FakeStore.Id, output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Card_AfterPayingWithTheCli_HistoryShowsDateStoreOrderAndAmount_WithinEightyColumns()
    {
        _console.Width(80);
        Assert.Equal(WalletCli.ExitOk, await RunAsync("pay", "--store", WalletKit.StoreUri.ToString(), "--operator", WalletKit.OperatorUri.ToString(), "--item", FakeStore.Sku, "--yes", "--card", _kit.CardPath));
        var before = _console.Output.Length;

        var exit = await RunAsync("card", "--card", _kit.CardPath);

        Assert.Equal(WalletCli.ExitOk, exit);
        var lines = _console.Output[before..].Split('\n');
        var payment = Assert.Single(lines, line => line.Contains("A-0001", StringComparison.Ordinal));
        Assert.Contains(FakeStore.Id, payment, StringComparison.Ordinal);
        Assert.Contains(DateTimeOffset.UtcNow.ToString("yyyy-MM-dd", System.Globalization.CultureInfo.InvariantCulture), payment, StringComparison.Ordinal);
        Assert.Contains("-12.50 EUR", payment, StringComparison.Ordinal);
        Assert.Contains("87.50 EUR", payment, StringComparison.Ordinal);
        // The issuing station's load is a load, not a top-up: top-ups are charged to a credit card.
        Assert.Contains(lines, line => line.Contains(" load ", StringComparison.Ordinal) && line.Contains("+100.00 EUR", StringComparison.Ordinal));
        Assert.DoesNotContain(lines, line => line.Contains("top-up", StringComparison.Ordinal));
        Assert.All(lines, line => Assert.True(line.TrimEnd().Length <= 80, $"wider than 80 columns: {line}"));

        // The journal beside the card: owner-only, and no card number in it.
        var journal = PurchaseJournal.PathFor(_kit.CardPath);
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(journal));
        var kept = await File.ReadAllTextAsync(journal);
        Assert.Contains("A-0001", kept, StringComparison.Ordinal);
        Assert.DoesNotContain(WalletKit.TestCardId.Digits, kept, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Card_JournalWithForeignLines_ShowsTheCardsRecordsAnyway()
    {
        await _kit.BuyAsync();
        await File.WriteAllTextAsync(PurchaseJournal.PathFor(_kit.CardPath), "not json\n{\"settlementId\":42}\n");

        var exit = await RunAsync("card", "--card", _kit.CardPath);

        Assert.Equal(WalletCli.ExitOk, exit);
        Assert.Contains("-12.50 EUR", _console.Output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Catalog_ListsArticlesTitlesStoresAndPrices()
    {
        var exit = await RunAsync("catalog", "--store", WalletKit.StoreUri.ToString());

        Assert.Equal(WalletCli.ExitOk, exit);
        var line = Assert.Single(_console.Lines, l => l.Contains(FakeStore.Sku, StringComparison.Ordinal));
        Assert.Contains("A novel", line, StringComparison.Ordinal);
        Assert.Contains(FakeStore.Id, line, StringComparison.Ordinal);
        Assert.Contains("12.50 EUR", line, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Catalog_NoStoreUrl_UsageError()
    {
        var exit = await RunAsync("catalog");

        Assert.Equal(WalletCli.ExitUsage, exit);
        Assert.Contains(WalletCli.StoreUrlVariable, _console.Output, StringComparison.Ordinal);
        Assert.Empty(_kit.Store.Requests);
    }

    [Fact]
    public async Task Pay_UnknownItem_SaysSoAndListsTheCatalog_NothingPaid()
    {
        var exit = await RunAsync("pay", "--store", WalletKit.StoreUri.ToString(), "--operator", WalletKit.OperatorUri.ToString(), "--item", "nope", "--yes");

        Assert.Equal(WalletCli.ExitFailed, exit);
        var output = _console.Output;
        Assert.Contains("no article nope", output, StringComparison.Ordinal);
        Assert.Contains("catalog.item_unknown", output, StringComparison.Ordinal);
        Assert.Contains(_console.Lines, line => line.Contains(FakeStore.Sku, StringComparison.Ordinal) && line.Contains("12.50 EUR", StringComparison.Ordinal));
        Assert.Empty(_kit.Reader.Instructions);
        Assert.Equal(WalletKit.Eur(10_000), _kit.Balance());
    }

    [Theory]
    [InlineData("abc")]
    [InlineData("0")]
    [InlineData("101")]
    [InlineData("1.5")]
    public async Task Pay_QuantityNotAWholeNumberInRange_ExitsTwoInPlainWords(string quantity)
    {
        var exit = await RunAsync("pay", "--store", WalletKit.StoreUri.ToString(), "--operator", WalletKit.OperatorUri.ToString(), "--item", FakeStore.Sku, "--quantity", quantity, "--yes");

        Assert.Equal(WalletCli.ExitUsage, exit);
        var error = _error.ToString();
        Assert.Contains($"--quantity must be a whole number from 1 to {Purchase.PurchaseRequest.QuantityMax}, not '{quantity}'.", error, StringComparison.Ordinal);
        Assert.DoesNotContain("System.", error, StringComparison.Ordinal);
        Assert.Contains("Usage:", error, StringComparison.Ordinal);
        Assert.Empty(_kit.Store.Requests);
    }

    [Theory]
    [InlineData("pay", "--store", "http://store.test/", "--operator", "http://operator.test/", "--yes")]
    [InlineData("pay", "--item", "ebook-1", "--colour", "blue")]
    [InlineData("card", "--bogus")]
    [InlineData("catalog", "extra")]
    [InlineData("crad")]
    [InlineData()]
    public async Task BadUsage_ExitsTwoWithUsageOnStderr_NothingAsked(params string[] args)
    {
        var exit = await RunAsync(args);

        Assert.Equal(WalletCli.ExitUsage, exit);
        Assert.Contains("Usage:", _error.ToString(), StringComparison.Ordinal);
        Assert.Empty(_output.ToString());
        Assert.Empty(_kit.Store.Requests);
        Assert.Empty(_kit.Reader.Instructions);
    }

    [Theory]
    [InlineData("--help")]
    [InlineData("-h")]
    [InlineData("pay", "--help")]
    [InlineData("card", "-h")]
    [InlineData("catalog", "--help")]
    [InlineData("--version")]
    public async Task HelpAndVersion_ExitZero_NothingElseRuns(params string[] args)
    {
        var exit = await RunAsync(args);

        Assert.Equal(WalletCli.ExitOk, exit);
        Assert.NotEmpty(_output.ToString());
        Assert.Empty(_error.ToString());
        Assert.Empty(_kit.Store.Requests);
    }

    [Fact]
    public async Task Help_ListsTheCommandsExitCodes()
    {
        Assert.Equal(WalletCli.ExitOk, await RunAsync("pay", "--help"));

        var help = _output.ToString();
        Assert.Contains("Exit codes:", help, StringComparison.Ordinal);
        Assert.Contains("2 bad usage", help, StringComparison.Ordinal);
        Assert.Contains("130 cancelled", help, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Card_FreshCard_ShowsNoHistory()
    {
        using var fresh = new WalletKit(topUpMinor: 0);
        var context = Context(fresh);

        var exit = await WalletCli.RunAsync(["card"], context);

        Assert.Equal(WalletCli.ExitOk, exit);
        Assert.Contains("no transactions yet", _console.Output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Card_FileMissing_ClearErrorNoStackTrace()
    {
        var exit = await WalletCli.RunAsync(["card", "--card", "/nonexistent/card.bin"], Context(_kit, openRealFile: true));

        Assert.Equal(WalletCli.ExitFailed, exit);
        Assert.Contains("There is no card at /nonexistent/card.bin", _console.Output, StringComparison.Ordinal);
        Assert.Contains("card.not_found", _console.Output, StringComparison.Ordinal);
        Assert.DoesNotContain("   at ", _console.Output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Pay_WithYes_PaysAndShowsContentAndNewBalance()
    {
        var exit = await RunAsync("pay", "--store", WalletKit.StoreUri.ToString(), "--operator", WalletKit.OperatorUri.ToString(), "--item", FakeStore.Sku, "--yes");

        Assert.Equal(WalletCli.ExitOk, exit);
        var output = _console.Output;
        Assert.Contains(FakeStore.Content, output, StringComparison.Ordinal);
        Assert.Contains("100.00 EUR → 87.50 EUR", output, StringComparison.Ordinal);
        Assert.Contains("2 round trips to the operator, 4 card commands", output, StringComparison.Ordinal);
        Assert.DoesNotContain(WalletKit.TestCardId.Digits, output, StringComparison.Ordinal);
        Assert.Equal(WalletKit.Eur(8_750), _kit.Balance());
    }

    [Fact]
    public async Task Pay_UrlsFromEnvironmentLeanProfile_Pays()
    {
        _environment[WalletCli.StoreUrlVariable] = WalletKit.StoreUri.ToString();
        _environment[WalletCli.OperatorUrlVariable] = WalletKit.OperatorUri.ToString();

        var exit = await RunAsync("pay", "--item", FakeStore.Sku, "--profile", "lean", "--yes");

        Assert.Equal(WalletCli.ExitOk, exit);
        Assert.Contains("read from your card", _console.Output, StringComparison.Ordinal);
        Assert.Equal(WalletKit.Eur(8_750), _kit.Balance());
    }

    [Fact]
    public async Task Pay_PersonAnswersNo_NothingPaid()
    {
        _console.Interactive();
        _console.Input.PushTextWithEnter("n");

        var exit = await RunAsync("pay", "--store", WalletKit.StoreUri.ToString(), "--operator", WalletKit.OperatorUri.ToString(), "--item", FakeStore.Sku);

        Assert.Equal(WalletCli.ExitFailed, exit);
        Assert.Contains("You declined", _console.Output, StringComparison.Ordinal);
        Assert.Equal(2, _kit.Reader.Instructions.Count);
        Assert.Equal(WalletKit.Eur(10_000), _kit.Balance());
    }

    [Fact]
    public async Task Pay_PersonAnswersYes_Pays()
    {
        _console.Interactive();
        _console.Input.PushTextWithEnter("y");

        var exit = await RunAsync("pay", "--store", WalletKit.StoreUri.ToString(), "--operator", WalletKit.OperatorUri.ToString(), "--item", FakeStore.Sku);

        Assert.Equal(WalletCli.ExitOk, exit);
        Assert.Equal(WalletKit.Eur(8_750), _kit.Balance());
    }

    [Fact]
    public async Task Pay_NotInteractiveWithoutYes_DeclinesAndSaysHow()
    {
        var exit = await RunAsync("pay", "--store", WalletKit.StoreUri.ToString(), "--operator", WalletKit.OperatorUri.ToString(), "--item", FakeStore.Sku);

        Assert.Equal(WalletCli.ExitFailed, exit);
        Assert.Contains("--yes", _console.Output, StringComparison.Ordinal);
        Assert.Equal(WalletKit.Eur(10_000), _kit.Balance());
    }

    [Fact]
    public async Task Pay_NoStoreUrl_UsageError()
    {
        var exit = await RunAsync("pay", "--operator", WalletKit.OperatorUri.ToString(), "--item", FakeStore.Sku, "--yes");

        Assert.Equal(WalletCli.ExitUsage, exit);
        Assert.Contains(WalletCli.StoreUrlVariable, _console.Output, StringComparison.Ordinal);
        Assert.Empty(_kit.Store.Requests);
    }

    [Fact]
    public async Task Pay_TamperedBill_OneLineErrorWithCode()
    {
        _kit.Store.TamperBill = Tamper.OneByte;

        var exit = await RunAsync("pay", "--store", WalletKit.StoreUri.ToString(), "--operator", WalletKit.OperatorUri.ToString(), "--item", FakeStore.Sku, "--yes");

        Assert.Equal(WalletCli.ExitFailed, exit);
        Assert.Contains("bill.signature.invalid", _console.Output, StringComparison.Ordinal);
        Assert.DoesNotContain("   at ", _console.Output, StringComparison.Ordinal);
        Assert.Empty(_kit.Reader.Instructions);
    }

    [Theory]
    [InlineData("nonsense")]
    [InlineData("127.0.0.1")]
    [InlineData(":35963")]
    [InlineData("127.0.0.1:0")]
    [InlineData("127.0.0.1:65536")]
    [InlineData("127.0.0.1:-1")]
    public async Task Insert_VpcdNotHostAndPort_UsageError(string slot)
    {
        var exit = await RunAsync("insert", "--card", InsertableCard(), "--vpcd", slot);

        Assert.Equal(WalletCli.ExitUsage, exit);
        Assert.Contains("--vpcd must be host:port", _console.Output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Insert_NothingListening_ReaderUnavailable()
    {
        var exit = await RunAsync("insert", "--card", InsertableCard(), "--vpcd", $"127.0.0.1:{HaProxy.FreePort()}");

        Assert.Equal(WalletCli.ExitFailed, exit);
        Assert.Contains("reader.unavailable", _console.Output, StringComparison.Ordinal);
        Assert.DoesNotContain("   at ", _console.Output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Insert_ReaderPollsThenGoesAway_CardWasInAndIsOut()
    {
        using var vpcd = new TcpListener(IPAddress.Loopback, 0);
        vpcd.Start();
        var driver = PollOnceAsync(vpcd, _ => Task.CompletedTask);

        var exit = await RunAsync("insert", "--card", InsertableCard(), "--vpcd", $"127.0.0.1:{((IPEndPoint)vpcd.LocalEndpoint).Port}").WaitAsync(s_insertTimeout);

        Assert.Equal(WalletCli.ExitOk, exit);
        Assert.Equal(EmulatedCard.Atr.ToArray(), await driver);
        var output = _console.Output;
        Assert.Contains($"Card {WalletKit.TestCardId.Masked} is in the virtual reader", output, StringComparison.Ordinal);
        Assert.Contains("The reader went away", output, StringComparison.Ordinal);
        Assert.DoesNotContain(WalletKit.TestCardId.Digits, output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Insert_Cancelled_CardTakenOutAndConnectionClosed()
    {
        using var vpcd = new TcpListener(IPAddress.Loopback, 0);
        vpcd.Start();
        using var ctrlC = new CancellationTokenSource();
        var closedByCard = new TaskCompletionSource<bool>(TaskCreationOptions.RunContinuationsAsynchronously);
        var driver = PollOnceAsync(vpcd, async stream =>
        {
            // The card answered the poll, so it is in: the person takes it out, and the card closes the connection.
            await ctrlC.CancelAsync();
            closedByCard.SetResult(await stream.ReadAsync(new byte[1]) == 0);
        });

        var exit = await WalletCli.RunAsync(["insert", "--card", InsertableCard(), "--vpcd", $"127.0.0.1:{((IPEndPoint)vpcd.LocalEndpoint).Port}"], Context(_kit), ctrlC.Token).WaitAsync(s_insertTimeout);

        Assert.Equal(WalletCli.ExitOk, exit);
        Assert.Equal(EmulatedCard.Atr.ToArray(), await driver.WaitAsync(s_insertTimeout));
        Assert.True(await closedByCard.Task.WaitAsync(s_insertTimeout));
        Assert.Contains("Card taken out.", _console.Output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Insert_CardFileMissing_CardNotFound()
    {
        var exit = await WalletCli.RunAsync(["insert", "--card", "/nonexistent/card.bin", "--vpcd", $"127.0.0.1:{HaProxy.FreePort()}"], Context(_kit));

        Assert.Equal(WalletCli.ExitFailed, exit);
        Assert.Contains("card.not_found", _console.Output, StringComparison.Ordinal);
    }

    public void Dispose()
    {
        _console.Dispose();
        _output.Dispose();
        _error.Dispose();
        _kit.Dispose();
    }

    private Task<int> RunAsync(params string[] args) => WalletCli.RunAsync(args, Context(_kit));

    private WalletCliContext Context(WalletKit kit, bool openRealFile = false) => new()
    {
        Console = _console,
        Output = _output,
        Error = _error,
        Environment = name => _environment.GetValueOrDefault(name),
        HomeDirectory = "/nonexistent-home",
        HttpHandler = new RouterHandler(new Dictionary<string, HttpMessageHandler>
        {
            [WalletKit.StoreUri.Host] = kit.Store,
            [WalletKit.OperatorUri.Host] = kit.Operator,
        }),

        // The kit holds the card file open (a card is used by one process at a time), so the CLI gets the kit's reader.
        OpenReader = openRealFile ? InProcessReader.Open : _ => kit.Reader,
    };

    // A card file of its own, closed: `insert` opens the file itself, and the kit holds its own card open.
    private string InsertableCard()
    {
        var path = Path.Combine(Path.GetDirectoryName(_kit.CardPath)!, "inserted.bin");
        if (!File.Exists(path))
        {
            EmulatedCard.Create(path, _kit.Operator.Personalize(WalletKit.TestCardId)).Dispose();
        }

        return path;
    }

    // The driver's side of one vpcd slot: it takes the card's connection, polls with GET ATR, reads
    // the answer, lets the test act, then goes away (closes the connection). Returns the ATR.
    private static async Task<byte[]> PollOnceAsync(TcpListener listener, Func<NetworkStream, Task> then)
    {
        using var socket = await listener.AcceptSocketAsync();
        await using var stream = new NetworkStream(socket);
        await stream.WriteAsync(new byte[] { 0x00, 0x01, VpcdGetAtr });
        var header = new byte[2];
        await stream.ReadExactlyAsync(header);
        var atr = new byte[BinaryPrimitives.ReadUInt16BigEndian(header)];
        await stream.ReadExactlyAsync(atr);
        await then(stream);
        return atr;
    }
}
