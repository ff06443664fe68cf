using System.Net;
using System.Text.RegularExpressions;
using OpenPurse.Wallet.Agent;
using OpenPurse.Wallet.Cli;
using OpenPurse.Wallet.Tests.Fakes;
using Spectre.Console.Testing;

namespace OpenPurse.Wallet.Tests;

/// <summary><c>openpurse agent</c>: its usage, and serving until Ctrl-C.</summary>
public sealed partial class AgentCliTest : IDisposable
{
    private readonly WalletKit _kit = new();
    private readonly TestConsole _console = new();
    private readonly Dictionary<string, string> _environment = new(StringComparer.Ordinal);
    private readonly StringWriter _output = new();
    private readonly StringWriter _error = new();

    public AgentCliTest() => _console.Width(200);

    [Theory]
    [InlineData("--allow-origin", "store.test")]
    [InlineData("--allow-origin", "http://store.test/shop")]
    [InlineData("--allow-origin", "ftp://store.test")]
    [InlineData("--listen", "http://0.0.0.0:5099")]
    [InlineData("--listen", "https://127.0.0.1:5099")]
    [InlineData("--listen", "http://127.0.0.1:0;http://localhost:0")]
    public async Task BadUsage_Exit2_BeforeServing(string option, string value)
    {
        var args = new List<string> { "agent", "--operator", WalletKit.OperatorUri.ToString(), "--card", _kit.CardPath, option, value };
        if (option != "--allow-origin")
        {
            args.AddRange(["--allow-origin", AgentKit.StoreOrigin]);
        }

        Assert.Equal(WalletCli.ExitUsage, await WalletCli.RunAsync([.. args], Context()));
        Assert.DoesNotContain("listening", _console.Output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task NoOperator_Exit2()
    {
        Assert.Equal(WalletCli.ExitUsage, await WalletCli.RunAsync(["agent", "--card", _kit.CardPath, "--allow-origin", AgentKit.StoreOrigin], Context()));
        Assert.Contains("--operator", _console.Output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Serves_PrintsAddressAndOrigins_FromTheEnvironmentToo_UntilCtrlC_Exit130()
    {
        _environment[WalletCli.AgentOriginsVariable] = $"{AgentKit.StoreOrigin} {AgentKit.OperatorOrigin}";
        using var stop = new CancellationTokenSource();
        var run = WalletCli.RunAsync(["agent", "--operator", WalletKit.OperatorUri.ToString(), "--card", _kit.CardPath, "--listen", "http://127.0.0.1:0"], Context(), stop.Token);

        Uri? address = null;
        for (var i = 0; i < 1_000 && address is null && !run.IsCompleted; i++)
        {
            await Task.Delay(20);
            var match = Listening().Match(_console.Output);
            address = match.Success ? new Uri(match.Groups[1].Value) : null;
        }

        Assert.NotNull(address);
        Assert.Contains($"Allowed origins: {AgentKit.OperatorOrigin} {AgentKit.StoreOrigin}", _console.Output, StringComparison.Ordinal);
        using (var http = new HttpClient { BaseAddress = address })
        using (var request = AgentKit.Api(HttpMethod.Get, "/v1/card"))
        using (var response = await http.SendAsync(request))
        {
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        }

        await stop.CancelAsync();
        Assert.Equal(WalletCli.ExitCancelled, await run);
    }

    public void Dispose()
    {
        _kit.Dispose();
        _output.Dispose();
        _error.Dispose();
    }

    private WalletCliContext Context() => new()
    {
        Console = _console,
        Output = _output,
        Error = _error,
        Environment = name => _environment.GetValueOrDefault(name),
        HomeDirectory = "/nonexistent-home",
        HttpHandler = new RouterHandler(new Dictionary<string, HttpMessageHandler>
        {
            [WalletKit.StoreUri.Host] = _kit.Store,
            [WalletKit.OperatorUri.Host] = _kit.Operator,
        }),
        OpenReader = _ => _kit.Reader,
    };

    [GeneratedRegex(@"listening on (http://127\.0\.0\.1:\d+/)")]
    private static partial Regex Listening();
}
