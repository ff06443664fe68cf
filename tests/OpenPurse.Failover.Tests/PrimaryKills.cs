using System.Diagnostics;
using System.Globalization;
using System.Text;
using OpenPurse.EndToEnd.Tests.Faults;
using OpenPurse.Testing;
using Xunit.Abstractions;

namespace OpenPurse.Failover.Tests;

/// <summary>
/// The randomized run's kills of the registry's primary on a <see cref="PatroniCluster"/>: at most
/// <see cref="KillsMax"/> a run, one in each part of it, drawn from the seed (a generator of their
/// own, so the run's other draws are those of the same seed on PostgreSQL). A kill fires before or
/// after one of its operation's calls to the operator; one whose call never came (the operation
/// ended before it, at another fault) goes to the next operation. After a kill, in the background,
/// the cluster elects a new leader, the killed member starts again and streams from it, and the new
/// primary names its synchronous standby. The next kill waits for that.
/// </summary>
internal sealed class PrimaryKills(PatroniCluster cluster, ITestOutputHelper output) : IRegistryFaults
{
    public const int KillsMax = 3;

    private static readonly TimeSpan s_failoverTimeout = TimeSpan.FromSeconds(60);
    private static readonly TimeSpan s_rejoinTimeout = TimeSpan.FromSeconds(60);

    private readonly Lock _lock = new();
    private readonly List<string> _report = [];
    private readonly Dictionary<PlannedFault, int> _operations = [];
    private readonly Stopwatch _run = Stopwatch.StartNew();
    private Random _random = null!;
    private int[] _due = [];
    private int _drawn;
    private PlannedFault? _lastDrawn;
    private int _fired;
    private TaskCompletionSource _leader = Completed();
    private Task _healed = Task.CompletedTask;

    public void Schedule(int seed, int operations)
    {
        _random = new Random(unchecked((seed * 31) + 17));
        // One kill in each of the run's parts, in its middle half: they are apart by a quarter part at least.
        var part = operations / KillsMax;
        _due = part < 4 ? [] : [.. Enumerable.Range(0, KillsMax).Select(i => (i * part) + (part / 4) + _random.Next(part / 2) + 1)];
        output.WriteLine($"primary kills due from operations {string.Join(", ", _due)}");
    }

    public async Task<PlannedFault?> DrawAsync(int operation, IReadOnlyList<Call> calls)
    {
        if (_lastDrawn is { Fired: false })
        {
            // Its operation is over and never made the call: the kill is due again.
            _drawn--;
        }

        _lastDrawn = null;
        if (_drawn >= _due.Length || operation < _due[_drawn] || calls.Count == 0)
        {
            return null;
        }

        _drawn++;
        var kill = new PlannedFault(_random.Next(2) == 0 ? FaultKind.KillPrimaryBefore : FaultKind.KillPrimaryAfter) { Call = calls[_random.Next(calls.Count)] };
        // The cluster heals from the last kill before the next may come.
        await _healed;
        lock (_lock)
        {
            _operations[kill] = operation;
        }

        _lastDrawn = kill;
        return kill;
    }

    public async Task KillPrimaryAsync(PlannedFault fault)
    {
        int operation;
        lock (_lock)
        {
            operation = _operations[fault];
        }

        var leader = await cluster.LeaderAsync();
        var at = _run.Elapsed;
        var clock = Stopwatch.StartNew();
        _leader = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        // Kill waits for the postmaster to be gone: off the request's thread.
        await Task.Run(() => cluster.Kill(leader));
        Note($"kill {++_fired} at {at.TotalSeconds:F1} s, operation {operation} ({fault}): {leader}, the leader, killed in {clock.Elapsed.TotalSeconds:F1} s");
        _healed = HealAsync(leader, clock, _leader);
    }

    public Task LeaderAsync() => _leader.Task;

    public Task HealedAsync() => _healed;

    public string Report()
    {
        lock (_lock)
        {
            return new StringBuilder()
                .AppendLine(CultureInfo.InvariantCulture, $"primary kills: {_fired} fired of {_due.Length} due")
                .AppendJoin(Environment.NewLine, _report.Select(r => "  " + r))
                .AppendLine()
                .ToString();
        }
    }

    private static TaskCompletionSource Completed()
    {
        var done = new TaskCompletionSource();
        done.SetResult();
        return done;
    }

    private async Task HealAsync(string killed, Stopwatch clock, TaskCompletionSource leaderReady)
    {
        try
        {
            var leader = await cluster.WaitForNewLeaderAsync(killed, s_failoverTimeout);
            Note($"  {leader} leads {clock.Elapsed.TotalSeconds:F1} s after the kill");
            leaderReady.SetResult();
            cluster.Restart(killed);
            try
            {
                await cluster.WaitForReplicaAsync(killed, s_rejoinTimeout);
            }
            catch (TimeoutException)
            {
                // The cluster's trouble, not the system's: the run goes on with the member built anew, and says so.
                Note($"  {killed} did not stream again within {s_rejoinTimeout.TotalSeconds} s: built anew from {leader}'s base backup");
                await Task.Run(() => cluster.Reinitialize(killed));
                await cluster.WaitForReplicaAsync(killed, s_rejoinTimeout);
            }

            Note($"  {killed} streams from {leader} again {clock.Elapsed.TotalSeconds:F1} s after the kill");
            // Until the new primary has named its synchronous standby, strict synchronous mode lets
            // no standby succeed it: the next kill waits for that, as an operator would.
            await cluster.WaitUntilHealthyAsync(s_rejoinTimeout);
            Note($"  {leader} keeps {await cluster.SynchronousStandbyAsync()} synchronous {clock.Elapsed.TotalSeconds:F1} s after the kill");
        }
        catch (Exception e)
        {
            // The run waits on these: a cluster that does not heal fails it, with the logs' tails.
            leaderReady.TrySetException(e);
            throw;
        }
    }

    private void Note(string line)
    {
        lock (_lock)
        {
            _report.Add(line);
        }

        output.WriteLine(line);
    }
}
