using OpenPurse.CommandLine;
using OpenPurse.Operator.Security;

namespace OpenPurse.Operator.Tests;

/// <summary>
/// <c>openpurse-operator</c>'s command line in process: <c>vault init</c> names the keys it made or
/// found, the station commands take the node's configuration overrides, bad usage is exit 2.
/// </summary>
public sealed class OperatorCommandLineTest : IDisposable
{
    private readonly string _directory = Directory.CreateTempSubdirectory("openpurse-operator-cli-").FullName;
    private readonly StringWriter _output = new();
    private readonly StringWriter _error = new();

    private string DataDirectory => Path.Combine(_directory, "operator");

    [Fact]
    public async Task VaultInit_SoftwareVault_PrintsTheKeysLabelsVersionAndKid_ThenAlreadyPresent()
    {
        var first = await RunAsync("vault", "init", $"--OpenPurse:Operator:DataDirectory={DataDirectory}");
        var firstOutput = _output.ToString();
        _output.GetStringBuilder().Clear();
        var second = await RunAsync("vault", "init", "--OpenPurse:Operator:DataDirectory", DataDirectory);

        Assert.Equal(CommandLines.ExitOk, first);
        Assert.Equal(CommandLines.ExitOk, second);
        using var vault = SoftwareKeyVault.Open(Path.Combine(DataDirectory, "vault"), createIfMissing: false);
        Assert.Contains($"kid {vault.OperatorKey.KeyId}", firstOutput, StringComparison.Ordinal);
        Assert.Contains($"'{SoftwareKeyVault.MasterKeyLabel}' version 01", firstOutput, StringComparison.Ordinal);
        Assert.Contains($"'{SoftwareKeyVault.SigningKeyLabel}'", firstOutput, StringComparison.Ordinal);
        Assert.Contains("generated", firstOutput, StringComparison.Ordinal);
        Assert.Contains($"kid {vault.OperatorKey.KeyId}", _output.ToString(), StringComparison.Ordinal);
        Assert.Contains("already present", _output.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task CardIssue_WithOverrides_IssuesIntoTheOverriddenNode()
    {
        Assert.Equal(CommandLines.ExitOk, await RunAsync("vault", "init", $"--OpenPurse:Operator:DataDirectory={DataDirectory}"));
        var card = Path.Combine(_directory, "card.bin");

        var exit = await RunAsync("card", "issue", "--out", card, "--load", "5.00 EUR", $"--OpenPurse:Operator:DataDirectory={DataDirectory}");

        Assert.Equal(CommandLines.ExitOk, exit);
        Assert.True(File.Exists(card));
        Assert.True(File.Exists(Path.Combine(DataDirectory, "operator.db")));
        Assert.Contains("loaded 5.00 EUR", _output.ToString(), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("card", "issue", "--out", "x", "--load", "lots")]
    [InlineData("card", "block", "1234")]
    [InlineData("reconcile", "--verbose")]
    [InlineData("serve", "--port", "5080")]
    [InlineData("store", "register")]
    [InlineData("store", "register", "--file", "x")]
    public async Task BadUsage_ExitsTwo_BeforeTheNodeIsTouched(params string[] args)
    {
        var exit = await RunAsync([.. args, $"--OpenPurse:Operator:DataDirectory={DataDirectory}"]);

        Assert.Equal(CommandLines.ExitUsage, exit);
        Assert.Contains("Usage:", _error.ToString(), StringComparison.Ordinal);
        Assert.False(Directory.Exists(DataDirectory));
    }

    [Fact]
    public async Task Help_ListsExitCodes_AndExitsZero()
    {
        var exit = await RunAsync("reconcile", "--help");

        Assert.Equal(CommandLines.ExitOk, exit);
        Assert.Contains("3 clean, but disputed settlements wait", _output.ToString(), StringComparison.Ordinal);
        Assert.Contains("--Section:Key=value", _output.ToString(), StringComparison.Ordinal);
        Assert.False(Directory.Exists(DataDirectory));
    }

    public void Dispose()
    {
        _output.Dispose();
        _error.Dispose();
        Directory.Delete(_directory, recursive: true);
    }

    private Task<int> RunAsync(params string[] args) =>
        CommandLines.InvokeAsync(OperatorCommandLine.Build(), args, _output, _error, cancelOnInterrupt: false);
}
