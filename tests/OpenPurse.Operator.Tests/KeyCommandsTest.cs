using System.Text.Json;
using OpenPurse.CommandLine;
using OpenPurse.Operator.Security;
using OpenPurse.Protocol.Messages;

namespace OpenPurse.Operator.Tests;

/// <summary>
/// The key rotation commands at the station (docs/operations.md, "Rotating keys"), in process on a
/// software vault: <c>key rotate</c>, <c>key activate</c>, <c>key retire</c>, <c>key rotate-master</c>
/// and <c>key list --json</c>, with their refusals as exit 1 and the code.
/// </summary>
public sealed class KeyCommandsTest : IDisposable
{
    private readonly string _directory = Directory.CreateTempSubdirectory("openpurse-operator-keys-").FullName;
    private readonly StringWriter _output = new();
    private readonly StringWriter _error = new();

    private string Overrides => $"--OpenPurse:Operator:DataDirectory={Path.Combine(_directory, "operator")}";

    [Fact]
    public async Task RotateActivateRetire_RotateMaster_ListShowsStatesAndVersions()
    {
        Assert.Equal(CommandLines.ExitOk, await RunAsync("vault", "init", Overrides));
        var before = await ListAsync();
        var first = Assert.Single(before.OperatorKeys);

        Assert.Equal(CommandLines.ExitOk, await RunAsync("key", "rotate", Overrides));
        var rotated = await ListAsync();
        var next = rotated.OperatorKeys.Single(k => k.Kid != first.Kid);
        var retireActive = await RunAsync("key", "retire", first.Kid, Overrides);
        var retireActiveError = _error.ToString();
        Assert.Equal(CommandLines.ExitOk, await RunAsync("key", "activate", next.Kid, Overrides));
        Assert.Equal(CommandLines.ExitOk, await RunAsync("key", "retire", first.Kid, Overrides));
        var activateRetired = await RunAsync("key", "activate", first.Kid, Overrides);
        Assert.Equal(CommandLines.ExitOk, await RunAsync("key", "rotate-master", Overrides));
        var after = await ListAsync();

        Assert.Equal((OperatorKeyStates.Active, true), (first.State, first.InVault));
        Assert.Equal(["01"], before.MasterKeyVersions);
        Assert.Equal((OperatorKeyStates.Next, true), (next.State, next.InVault));
        Assert.Equal(1, retireActive);
        Assert.Contains(ProblemCode.OperatorKeyWrongState.Code, retireActiveError, StringComparison.Ordinal);
        Assert.Equal(1, activateRetired);
        Assert.Equal(OperatorKeyStates.Retired, after.OperatorKeys.Single(k => k.Kid == first.Kid).State);
        Assert.Equal(OperatorKeyStates.Active, after.OperatorKeys.Single(k => k.Kid == next.Kid).State);
        Assert.Equal(["01", "02"], after.MasterKeyVersions);
        Assert.DoesNotContain("\"d\"", _output.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task StoreKeys_UnknownStore_ExitOneWithItsCode()
    {
        Assert.Equal(CommandLines.ExitOk, await RunAsync("vault", "init", Overrides));

        var list = await RunAsync("store", "keys", "no-such-store", Overrides);
        var retire = await RunAsync("store", "key", "retire", "no-such-store", "no-such-kid", Overrides);

        Assert.Equal((1, 1), (list, retire));
        Assert.Contains(ProblemCode.StoreNotFound.Code, _error.ToString(), StringComparison.Ordinal);
        Assert.Contains(ProblemCode.StoreKeyNotFound.Code, _error.ToString(), StringComparison.Ordinal);
    }

    public void Dispose()
    {
        _output.Dispose();
        _error.Dispose();
        Directory.Delete(_directory, recursive: true);
    }

    private async Task<KeyList> ListAsync()
    {
        _output.GetStringBuilder().Clear();
        Assert.Equal(CommandLines.ExitOk, await RunAsync("key", "list", "--json", Overrides));
        return JsonSerializer.Deserialize<KeyList>(_output.ToString(), ProtocolJson.Options)!;
    }

    private Task<int> RunAsync(params string[] args) =>
        CommandLines.InvokeAsync(OperatorCommandLine.Build(), args, _output, _error, cancelOnInterrupt: false);
}
