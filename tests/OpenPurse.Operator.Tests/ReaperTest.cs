using System.Diagnostics;
using OpenPurse.Testing;

namespace OpenPurse.Operator.Tests;

/// <summary>
/// A cancelled or killed test run leaves nothing running: what a fixture started ends when the
/// process that started it dies, even by SIGKILL. A stand-in owner (a sleep) plays the test host
/// here, so that the test can kill it and watch.
/// </summary>
public sealed class ReaperTest
{
    private static readonly TimeSpan s_patience = TimeSpan.FromSeconds(20);

    [Fact]
    public async Task OwnerKilled_EndsTheWatchedProcessAndDeletesItsDirectory()
    {
        using var owner = Sleep();
        using var watched = Sleep();
        var directory = Directory.CreateTempSubdirectory("openpurse-reaper-").FullName;
        File.WriteAllText(Path.Combine(directory, "state"), "x");
        using var reaper = Reaper.Watch([watched.Id], directory, owner: owner.Id);

        owner.Kill();
        await owner.WaitForExitAsync();

        Assert.True(await EndsWithinAsync(watched), "the watched process outlived its owner");
        Assert.True(await GoneWithinAsync(directory), "the directory outlived its owner");
    }

    [Fact]
    public async Task Disposed_LeavesTheProcessToItsFixture()
    {
        using var owner = Sleep();
        using var watched = Sleep();
        var reaper = Reaper.Watch([watched.Id], directory: null, owner: owner.Id);
        var watchdog = Process.GetProcessById(reaper.Id);

        reaper.Dispose();
        Assert.True(await EndsWithinAsync(watchdog), "the reaper outlived its disposal");
        owner.Kill();
        await owner.WaitForExitAsync();
        await Task.Delay(TimeSpan.FromSeconds(2));

        Assert.False(watched.HasExited);
        watched.Kill();
    }

    [Fact]
    public async Task ReaperIgnoresTheSignalsOfACancelledRun()
    {
        using var owner = Sleep();
        using var watched = Sleep();
        using var reaper = Reaper.Watch([watched.Id], directory: null, owner: owner.Id);

        foreach (var signal in new[] { "INT", "TERM", "HUP" })
        {
            using var kill = Process.Start("kill", ["-s", signal, reaper.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)]);
            await kill.WaitForExitAsync();
        }

        await Task.Delay(TimeSpan.FromSeconds(1));
        Assert.False(Process.GetProcessById(reaper.Id).HasExited, "the reaper died of a signal meant for the run");
        owner.Kill();
        await owner.WaitForExitAsync();
        Assert.True(await EndsWithinAsync(watched), "the reaper did not end the watched process");
    }

    [IntegrationFact(Components.PostgreSql)]
    public async Task PostgresCluster_OfAKilledOwner_Stops()
    {
        using var owner = Sleep();
        var cluster = PostgresCluster.Start(owner.Id);
        var postmaster = Process.GetProcessById(cluster.ProcessId);

        owner.Kill();

        Assert.True(await EndsWithinAsync(postmaster), "the cluster outlived its owner");
        postmaster.Dispose();
    }

    private static Process Sleep() =>
        Process.Start(new ProcessStartInfo("sleep", ["600"])) ?? throw new InvalidOperationException("sleep did not start.");

    private static async Task<bool> EndsWithinAsync(Process process)
    {
        using var patience = new CancellationTokenSource(s_patience);
        try
        {
            await process.WaitForExitAsync(patience.Token);
            return true;
        }
        catch (OperationCanceledException)
        {
            return false;
        }
    }

    private static async Task<bool> GoneWithinAsync(string directory)
    {
        var deadline = DateTime.UtcNow + s_patience;
        while (Directory.Exists(directory))
        {
            if (DateTime.UtcNow > deadline)
            {
                return false;
            }

            await Task.Delay(100);
        }

        return true;
    }
}
