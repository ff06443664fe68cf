using System.Runtime.InteropServices;
using OpenPurse.Protocol.Apdu;
using OpenPurse.Wallet.Cli;
using OpenPurse.Wallet.Purchase;
using OpenPurse.Wallet.Readers;
using OpenPurse.Wallet.Tests.Fakes;
using Spectre.Console.Testing;

namespace OpenPurse.Wallet.Tests;

/// <summary>
/// What the PC/SC reader assumes of libpcsclite on Linux x64 (pcsclite.h, wintypes.h), and the
/// CLI's reader options, without pcscd.
/// </summary>
public sealed class PcscNativeTest : IDisposable
{
    private readonly WalletKit _kit = new();
    private readonly TestConsole _console = new();

    public PcscNativeTest() => _console.Width(200);

    [Fact]
    public void Types_LinuxX64_DwordAndLongAreEightBytesIoRequestSixteen()
    {
        Assert.True(OperatingSystem.IsLinux() && Environment.Is64BitProcess, "The P/Invoke declarations are for Linux x64.");
        Assert.Equal(8, Marshal.SizeOf<CLong>());
        Assert.Equal(8, Marshal.SizeOf<CULong>());
        Assert.Equal(16, Marshal.SizeOf<PcscNative.IoRequest>());
        Assert.Equal(PcscNative.ProtocolT1, (uint)PcscNative.T1Pci.Protocol.Value);
        Assert.Equal(16u, (uint)PcscNative.T1Pci.PciLength.Value);
    }

    [Theory]
    [InlineData(0x0000_0000_8010_000CL)] // as pcsc-lite returns it: positive, 64 bits
    [InlineData(unchecked((long)0xFFFF_FFFF_8010_000CUL))] // sign-extended, as a 32-bit LONG would be
    public void Code_EitherWidening_LowThirtyTwoBits(long result)
    {
        var code = PcscNative.Code(new CLong((nint)result));

        Assert.Equal(PcscError.NoSmartcard, code);
        Assert.Equal("SCARD_E_NO_SMARTCARD", PcscError.Name(code));
    }

    [Fact]
    public void Name_UnknownCode_Hex()
    {
        Assert.Equal("0x80100099", PcscError.Name(0x8010_0099));
    }

    [Theory]
    [InlineData(PcscError.RemovedCard, true)]
    [InlineData(PcscError.NoSmartcard, true)]
    [InlineData(PcscError.ReaderUnavailable, true)]
    [InlineData(PcscError.NotTransacted, true)]
    [InlineData(PcscError.NoService, true)]
    [InlineData(PcscError.InsufficientBuffer, false)]
    [InlineData(PcscError.SharingViolation, false)]
    public void MeansCardGone_Code_WhetherTheCommandsOutcomeIsUnknown(uint code, bool gone)
    {
        Assert.Equal(gone, PcscError.MeansCardGone(code));
    }

    [Fact]
    public async Task Readers_SomeReaders_OnePerLine()
    {
        var exit = await RunAsync(["readers"], listReaders: () => ["Reader A 00 00", "Reader [B] 00 00"]);

        Assert.Equal(WalletCli.ExitOk, exit);
        Assert.Equal(["Reader A 00 00", "Reader [B] 00 00"], _console.Lines.Where(l => l.Length > 0));
    }

    [Fact]
    public async Task Readers_None_SaysSo()
    {
        var exit = await RunAsync(["readers"], listReaders: () => []);

        Assert.Equal(WalletCli.ExitOk, exit);
        Assert.Contains("No PC/SC readers", _console.Output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Readers_NoDaemon_OneLineErrorWithCode()
    {
        var exit = await RunAsync(["readers"], listReaders: () => throw new WalletException(ReaderErrors.Unavailable, "The PC/SC service (pcscd) is not running (SCARD_E_NO_SERVICE)."));

        Assert.Equal(WalletCli.ExitFailed, exit);
        Assert.Contains("reader.unavailable", _console.Output, StringComparison.Ordinal);
        Assert.DoesNotContain("   at ", _console.Output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Pay_WithReader_UsesThePcscReaderNotTheCardFile()
    {
        string? opened = null;

        var exit = await RunAsync(
            ["pay", "--store", WalletKit.StoreUri.ToString(), "--operator", WalletKit.OperatorUri.ToString(), "--item", FakeStore.Sku, "--yes", "--reader", "Reader A 00 00"],
            openPcscReader: name =>
            {
                opened = name;
                return _kit.Reader;
            });

        Assert.Equal(WalletCli.ExitOk, exit);
        Assert.Equal("Reader A 00 00", opened);
        Assert.Equal(WalletKit.Eur(8_750), _kit.Balance());
    }

    [Fact]
    public async Task Card_WithoutReader_UsesTheCardFile()
    {
        var exit = await RunAsync(["card"], openPcscReader: _ => throw new InvalidOperationException("PC/SC must not be used."));

        Assert.Equal(WalletCli.ExitOk, exit);
        Assert.Contains(WalletKit.TestCardId.Masked, _console.Output, StringComparison.Ordinal);
    }

    public void Dispose()
    {
        _console.Dispose();
        _kit.Dispose();
    }

    private Task<int> RunAsync(string[] args, Func<IReadOnlyList<string>>? listReaders = null, Func<string, ICardReader>? openPcscReader = null) =>
        WalletCli.RunAsync(args, new WalletCliContext
        {
            Console = _console,
            Environment = _ => null,
            HomeDirectory = "/nonexistent-home",
            HttpHandler = new RouterHandler(new Dictionary<string, HttpMessageHandler>
            {
                [WalletKit.StoreUri.Host] = _kit.Store,
                [WalletKit.OperatorUri.Host] = _kit.Operator,
            }),
            OpenReader = _ => _kit.Reader,
            ListReaders = listReaders ?? (() => throw new InvalidOperationException("PC/SC must not be used.")),
            OpenPcscReader = openPcscReader ?? (_ => throw new InvalidOperationException("PC/SC must not be used.")),
        });
}
