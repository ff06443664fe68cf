using OpenPurse.Testing;

namespace OpenPurse.EndToEnd.Tests;

/// <summary>
/// The built servers as a service manager runs them: started with a permissive file-creation mask,
/// they keep their records and keys for their owner only; stopped with SIGTERM or SIGINT, they end
/// by themselves within seconds, and so does the demo.
/// </summary>
public sealed class ProcessLifecycleTest
{
    /// <summary>"A few seconds": the hosts wait 5 s for requests in flight; the rest is slack for a busy machine.</summary>
    private static readonly TimeSpan s_stopWithin = TimeSpan.FromSeconds(20);

    [Fact]
    public async Task Servers_UnderAnOpenUmask_KeepEveryFileForTheirOwner_AndStopOnSigterm()
    {
        var directory = Directory.CreateTempSubdirectory("openpurse-lifecycle-").FullName;
        using var cleanup = new Cleanup(directory);
        var (operatorDirectory, storeDirectory) = (Path.Combine(directory, "operator"), Path.Combine(directory, "store"));
        var (operatorPort, storePort) = (HaProxy.FreePort(), HaProxy.FreePort());

        // An earlier version left the registry's directory world-readable: the node tightens it.
        Directory.CreateDirectory(operatorDirectory);
        File.SetUnixFileMode(operatorDirectory, (UnixFileMode)Convert.ToInt32("755", 8));

        using var node = PartyProcess.Start("openpurse-operator", ["serve"], new Dictionary<string, string>
        {
            ["OpenPurse__Operator__DataDirectory"] = operatorDirectory,
            ["OpenPurse__Operator__CreateVaultIfMissing"] = "true",
            ["OpenPurse__Operator__Urls"] = $"http://127.0.0.1:{operatorPort}",
            ["OpenPurse__Operator__AdminUrls"] = $"http://127.0.0.1:{HaProxy.FreePort()}",
        }, umask: "000");
        using var store = PartyProcess.Start("openpurse-store", ["serve"], new Dictionary<string, string>
        {
            ["Store__DataDirectory"] = storeDirectory,
            ["Store__Urls"] = $"http://127.0.0.1:{storePort}",
            ["Store__OperatorUrl"] = $"http://127.0.0.1:{operatorPort}",
        }, umask: "000");
        await node.WaitReadyAsync(new Uri($"http://127.0.0.1:{operatorPort}/health"), "operator");
        await store.WaitReadyAsync(new Uri($"http://127.0.0.1:{storePort}/v1/catalog"), "store");

        // Both running: the SQLite write-ahead logs and shared-memory files exist beside the databases.
        Assert.True(File.Exists(Path.Combine(operatorDirectory, "operator.db-wal")), "the registry runs in WAL mode");
        var loose = Loose(operatorDirectory).Concat(Loose(storeDirectory)).ToList();
        Assert.True(loose.Count == 0, "Readable by group or others: " + string.Join(", ", loose));
        Assert.Contains(Directory.EnumerateFiles(storeDirectory, "*.p8", SearchOption.AllDirectories), _ => true);

        node.Terminate();
        store.Terminate();
        Assert.Equal(0, await node.WaitAsync(s_stopWithin));
        Assert.Equal(0, await store.WaitAsync(s_stopWithin));
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Demo_Serving_StopsOnSigtermAndSigint(bool sigint)
    {
        var directory = Directory.CreateTempSubdirectory("openpurse-demo-stop-").FullName;
        using var cleanup = new Cleanup(directory);
        using var demo = PartyProcess.Start("OpenPurse.Demo", ["--data", directory], new Dictionary<string, string>());
        await demo.WaitForOutputAsync("Serving until Ctrl-C", TimeSpan.FromSeconds(90));

        if (sigint)
        {
            // A process started with SIGINT ignored (a background job of a non-interactive shell)
            // hands that on to its children, and the runtime keeps it ignored, as a shell expects:
            // then no SIGINT can reach the demo, and the test says so instead of waiting in vain.
            Assert.False(SigIntIgnored(), "This test run was started with SIGINT ignored (as a background job of a non-interactive shell); run it in the foreground.");
            demo.Interrupt();
        }
        else
        {
            demo.Terminate();
        }

        Assert.Equal(0, await demo.WaitAsync(s_stopWithin));
        Assert.Contains("Stopped.", demo.Output, StringComparison.Ordinal);
    }

    // Bit 2 (SIGINT) of the ignored signals' mask in /proc/self/status.
    private static bool SigIntIgnored() =>
        File.ReadLines("/proc/self/status").FirstOrDefault(line => line.StartsWith("SigIgn:", StringComparison.Ordinal)) is { } line
        && (Convert.ToUInt64(line["SigIgn:".Length..].Trim(), 16) & (1UL << (2 - 1))) != 0;

    private sealed class Cleanup(string directory) : IDisposable
    {
        public void Dispose() => Directory.Delete(directory, recursive: true);
    }

    // Every directory and file below root (and root) that group or others may use.
    private static IEnumerable<string> Loose(string root) =>
        new[] { root }.Concat(Directory.EnumerateFileSystemEntries(root, "*", SearchOption.AllDirectories))
            .Where(path => (File.GetUnixFileMode(path) & Storage.PrivateFiles.GroupOrOthers) != 0)
            .Select(path => $"{path} ({Convert.ToString((int)File.GetUnixFileMode(path), 8)})");
}
