using System.Diagnostics;
using OpenPurse.Protocol.Apdu;
using OpenPurse.Protocol.Messages;
using OpenPurse.Protocol.Purse;
using OpenPurse.Testing;
using OpenPurse.Wallet.Cli;
using OpenPurse.Wallet.Purchase;
using OpenPurse.Wallet.Readers;
using OpenPurse.Wallet.Tests.Fakes;
using Spectre.Console.Testing;

namespace OpenPurse.Wallet.Tests;

/// <summary>
/// The wallet through the real PC/SC stack: libpcsclite → pcscd → vsmartcard's vpcd driver → the
/// emulated card on a socket (<see cref="Card.VpcdCardConnector"/>), with the fake operator and store.
/// </summary>
[Collection(PcscDaemonGroup.Name)]
public sealed class PcscReaderTest : IDisposable
{
    private readonly PcscFixture _fixture;
    private readonly WalletKit _kit = new();
    private readonly HttpClient _storeHttp;
    private readonly HttpClient _operatorHttp;
    private VirtualSlot? _slot;

    public PcscReaderTest(PcscFixture fixture)
    {
        _fixture = fixture;
        _storeHttp = new HttpClient(_kit.Store, disposeHandler: false) { BaseAddress = WalletKit.StoreUri };
        _operatorHttp = new HttpClient(_kit.Operator, disposeHandler: false) { BaseAddress = WalletKit.OperatorUri };
    }

    private VirtualSlot Slot => _slot ??= VirtualSlot.Insert(_fixture.Daemon, _kit.Card);

    [IntegrationFact(Components.Pcscd, Components.Vpcd)]
    public void ListReaders_PrivateDaemon_HasBothVirtualSlots()
    {
        _ = _fixture.Daemon;

        var readers = PcscReader.ListReaders();

        Assert.Contains(PcscDaemon.ReaderName, readers);
        Assert.Contains(PcscDaemon.EmptyReaderName, readers);
    }

    [IntegrationFact(Components.Pcscd, Components.Vpcd)]
    public void Transmit_SelectGetDataReadLog_SameBytesAsInProcess()
    {
        _ = Slot;
        CommandApdu[] commands = [CardHostSession.Select(), CardHostSession.GetData(), CardHostSession.ReadLogClear(0, 1)];

        byte[][] throughPcsc;
        using (var reader = VirtualSlot.Open())
        {
            throughPcsc = [.. commands.Select(c => reader.Transmit(c).ToBytes())];
        }

        var inProcess = commands.Select(c => _kit.Card.Transmit(c.ToBytes())).ToArray();
        Assert.Equal(inProcess, throughPcsc);
        Assert.Equal(0x90, throughPcsc[1][^2]);
        Assert.True(PurseStatus.TryParse(throughPcsc[1].AsSpan(0, throughPcsc[1].Length - 2), out var status));
        Assert.Equal(WalletKit.TestCardId, status.CardId);
    }

    [IntegrationFact(Components.Pcscd, Components.Vpcd)]
    public async Task RunAsync_ThroughPcscReader_PaysOnceAndDelivers()
    {
        _ = Slot;
        using var reader = VirtualSlot.Open();

        var result = await Flow(reader).RunAsync(new PurchaseRequest(FakeStore.Sku));

        Assert.Equal(FakeStore.Content, result.Content);
        Assert.Equal(4, result.CardCommands);
        Assert.Equal(WalletKit.Eur(10_000), result.BalanceBefore);
        Assert.Equal(WalletKit.Eur(8_750), result.BalanceAfter);
        Assert.Equal(WalletKit.Eur(8_750), _kit.Balance());
        Assert.Equal(WalletKit.Eur(8_750), BalanceThroughPcsc());
    }

    [IntegrationTheory(Components.Pcscd, Components.Vpcd)]
    [InlineData(PurseInstruction.InitializeUpdate, false, false)]
    [InlineData(PurseInstruction.ExternalAuthenticate, false, false)]
    [InlineData(PurseInstruction.ExternalAuthenticate, true, false)]
    [InlineData(PurseInstruction.Debit, false, false)]
    [InlineData(PurseInstruction.Debit, true, true)]
    [InlineData(PurseInstruction.GetData, false, true)]
    public async Task RunAsync_CardPulledMidPurchase_CardRemovedAndPaidAtMostOnce(byte instruction, bool afterCardProcessed, bool paid)
    {
        _ = Slot;
        var before = _kit.Balance();
        Slot.Connector.PullOnNext(instruction, afterCardProcessed);
        WalletException error;
        using (var reader = VirtualSlot.Open())
        {
            error = await Assert.ThrowsAsync<WalletException>(() => Flow(reader).RunAsync(new PurchaseRequest(FakeStore.Sku)));
        }

        Assert.Equal("card.removed", error.Code);
        Assert.False(Slot.Connector.IsInserted);

        // The card back in the reader tells what it did: nothing, or the one debit — never more, never a part.
        Slot.Pull();
        Slot.PutBack();
        var after = BalanceThroughPcsc();
        Assert.Equal(_kit.Balance(), after);
        Assert.Equal(paid ? before - _kit.Store.Price : before, after);
        if (instruction == PurseInstruction.Debit)
        {
            // The wallet cannot know whether the card paid: it says so, and names the settlement the operator resolves.
            Assert.Contains("whether it paid is unknown", error.Message, StringComparison.Ordinal);
            Assert.NotNull(error.SettlementId);
            Assert.Contains(error.SettlementId.Value.ToString(), error.Message, StringComparison.Ordinal);
        }
        else if (paid)
        {
            Assert.True(error.CardDebited);
            Assert.Contains("Your card has paid 12.50 EUR", error.Message, StringComparison.Ordinal);
            Assert.Contains(error.SettlementId!.Value.ToString(), error.Message, StringComparison.Ordinal);
        }
        else
        {
            Assert.False(error.CardDebited);
            Assert.Contains("nothing was paid", error.Message, StringComparison.Ordinal);
        }
    }

    [IntegrationFact(Components.Pcscd, Components.Vpcd)]
    public void Transmit_AfterCardPulled_CardRemovedException()
    {
        _ = Slot;
        using var reader = VirtualSlot.Open();
        Assert.True(reader.Transmit(CardHostSession.Select()).IsOk);

        Slot.Connector.Pull();

        var error = Assert.Throws<CardRemovedException>(() => reader.Transmit(CardHostSession.GetData()));
        Assert.Contains(PcscDaemon.ReaderName, error.Message, StringComparison.Ordinal);
        Assert.Contains("SCARD_", error.Message, StringComparison.Ordinal);
    }

    [IntegrationFact(Components.Pcscd, Components.Vpcd)]
    public void Open_EmptySlot_CardNotFound()
    {
        _ = _fixture.Daemon;

        var error = Assert.Throws<WalletException>(() => PcscReader.Open(PcscDaemon.EmptyReaderName));

        Assert.Equal("card.not_found", error.Code);
        Assert.Contains(PcscDaemon.EmptyReaderName, error.Message, StringComparison.Ordinal);
    }

    [IntegrationFact(Components.Pcscd, Components.Vpcd)]
    public void Open_UnknownReader_ReaderNotFoundListsTheReaders()
    {
        _ = _fixture.Daemon;

        var error = Assert.Throws<WalletException>(() => PcscReader.Open("No Such Reader 00 00"));

        Assert.Equal("reader.not_found", error.Code);
        Assert.Contains(PcscDaemon.ReaderName, error.Message, StringComparison.Ordinal);
    }

    [IntegrationFact(Components.Pcscd, Components.Vpcd)]
    public async Task Cli_Readers_ListsTheVirtualReader()
    {
        _ = _fixture.Daemon;
        using var console = new TestConsole();

        var exit = await WalletCli.RunAsync(["readers"], Context(console));

        Assert.Equal(WalletCli.ExitOk, exit);
        Assert.Contains(PcscDaemon.ReaderName, console.Output, StringComparison.Ordinal);
    }

    [IntegrationFact(Components.Pcscd, Components.Vpcd)]
    public async Task Binary_Readers_ListsTheVirtualReader()
    {
        _ = _fixture.Daemon;

        // The built openpurse in a process of its own: it finds the private pcscd through the
        // PCSCLITE_CSOCK_NAME this process passes on, as a card holder's shell would.
        var start = new ProcessStartInfo("dotnet", ["exec", Path.Combine(AppContext.BaseDirectory, "openpurse.dll"), "readers"])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        Assert.Equal(PcscDaemon.SocketPath, start.Environment["PCSCLITE_CSOCK_NAME"]);
        using var process = Process.Start(start)!;
        var output = process.StandardOutput.ReadToEndAsync();
        var error = process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(60));

        Assert.True(process.ExitCode == WalletCli.ExitOk, await error);
        Assert.Contains(PcscDaemon.ReaderName, (await output).Split('\n'));
    }

    [IntegrationFact(Components.Pcscd, Components.Vpcd)]
    public async Task Cli_CardWithReader_ShowsTheCardThroughPcsc()
    {
        _ = Slot;
        using var console = new TestConsole();
        console.Width(160);

        var exit = await WalletCli.RunAsync(["card", "--reader", PcscDaemon.ReaderName, "--card", "/nonexistent/card.bin"], Context(console));

        Assert.Equal(WalletCli.ExitOk, exit);
        Assert.Contains(WalletKit.TestCardId.Masked, console.Output, StringComparison.Ordinal);
        Assert.Contains("100.00 EUR", console.Output, StringComparison.Ordinal);
    }

    [IntegrationFact(Components.Pcscd, Components.Vpcd)]
    public async Task Cli_PayWithReaderCardPulledAtDebit_OneLineErrorNamesSettlement()
    {
        _ = Slot;
        Slot.Connector.PullOnNext(PurseInstruction.Debit, afterCardProcessed: false);
        using var console = new TestConsole();
        console.Width(400);

        var exit = await WalletCli.RunAsync(
            ["pay", "--store", WalletKit.StoreUri.ToString(), "--operator", WalletKit.OperatorUri.ToString(), "--item", FakeStore.Sku, "--yes", "--reader", PcscDaemon.ReaderName],
            Context(console));

        Assert.Equal(WalletCli.ExitFailed, exit);
        Assert.Contains("card.removed", console.Output, StringComparison.Ordinal);
        Assert.Contains("whether it paid is unknown", console.Output, StringComparison.Ordinal);
        Assert.Contains("settlement", console.Output, StringComparison.Ordinal);
        Assert.DoesNotContain("   at ", console.Output, StringComparison.Ordinal);
        Assert.Equal(WalletKit.Eur(10_000), _kit.Balance());
    }

    public void Dispose()
    {
        _slot?.Dispose();
        _storeHttp.Dispose();
        _operatorHttp.Dispose();
        _kit.Dispose();
    }

    private PurchaseFlow Flow(ICardReader reader) =>
        new(_storeHttp, _operatorHttp, reader, new AutoPrompt()) { CompletionRetryDelay = TimeSpan.Zero };

    private static Protocol.Money BalanceThroughPcsc()
    {
        using var reader = VirtualSlot.Open();
        var card = new WalletCard(reader);
        card.Select();
        return card.Status().BalanceOf(Protocol.Currency.Eur) ?? WalletKit.Eur(0);
    }

    private WalletCliContext Context(TestConsole console) => new()
    {
        Console = console,
        Environment = _ => null,
        HomeDirectory = "/nonexistent-home",
        HttpHandler = new RouterHandler(new Dictionary<string, HttpMessageHandler>
        {
            [WalletKit.StoreUri.Host] = _kit.Store,
            [WalletKit.OperatorUri.Host] = _kit.Operator,
        }),
    };
}
