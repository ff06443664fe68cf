using OpenPurse.Load;
using OpenPurse.Protocol.Messages;
using OpenPurse.Testing;
using Spectre.Console;
using Xunit.Abstractions;

namespace OpenPurse.Failover.Tests;

/// <summary>
/// The whole system under load when the registry's primary dies or is cut off: cards buying from
/// the mall through two operator nodes behind HAProxy, on the Patroni cluster. Purchases complete
/// again on the new primary; meanwhile a read of the registry is answered 503 operator.busy with
/// Retry-After, never 500; and afterwards (every card synced) nothing is lost or paid twice: every
/// settlement whose wallet got its ACN is completed, the books are exact, the chips hold what the
/// card accounts say, and the stores' statements agree with the operator's examination.
/// </summary>
public sealed class FailoverUnderLoadTest(ITestOutputHelper output)
{
    [IntegrationFact(Components.Patroni, Components.Etcd, Components.PostgreSql, Components.HaProxy)]
    public Task Purchases_go_on_after_the_primary_is_killed_and_nothing_is_lost() => RunAsync(FailoverPlan.KillKind);

    [IntegrationFact(Components.Patroni, Components.Etcd, Components.PostgreSql, Components.HaProxy)]
    public Task Purchases_go_on_after_the_primary_is_cut_off_and_nothing_is_lost() => RunAsync(FailoverPlan.CutKind);

    private async Task RunAsync(string kind)
    {
        var settings = new LoadSettings(
            "ha",
            SettlementProfile.Signed,
            Cards: 8,
            Stores: 2,
            Nodes: 2,
            Purchases: null,
            Duration: TimeSpan.FromSeconds(40),
            Warmup: TimeSpan.FromSeconds(2),
            MeasureBound: false,
            Hold: 0,
            Failover: new FailoverPlan(kind, TimeSpan.FromSeconds(5)));
        using var log = new StringWriter();
        var console = AnsiConsole.Create(new AnsiConsoleSettings
        {
            Ansi = AnsiSupport.No,
            ColorSystem = ColorSystemSupport.NoColors,
            Interactive = InteractionSupport.No,
            Out = new AnsiConsoleOutput(log),
        });

        LoadReport report;
        try
        {
            // A check after the load that fails throws, naming what is wrong.
            report = await LoadRun.RunAsync(settings, console, CancellationToken.None);
        }
        finally
        {
            output.WriteLine(log.ToString());
        }

        var failover = Assert.IsType<FailoverSummary>(report.Failover);
        output.WriteLine($"{kind}: new leader {failover.NewLeader} after {failover.LeaderSeconds} s, first purchase after {failover.FirstPurchaseSeconds} s, rejoined after {failover.RejoinSeconds} s");
        output.WriteLine($"during: {string.Join(", ", failover.DuringErrors.Select(e => $"{e.Key}: {e.Value}"))}");
        output.WriteLine($"probe: {string.Join(", ", failover.Probe.Select(e => $"{e.Key}: {e.Value}"))}");

        Assert.Equal(kind, failover.Kind);
        Assert.NotNull(failover.NewLeader);
        Assert.NotEqual(failover.OldLeader, failover.NewLeader);
        Assert.NotNull(failover.FirstPurchaseSeconds);
        Assert.True(failover.FirstPurchaseSeconds >= failover.LeaderSeconds - 1, "A purchase started after the fault completed before a new primary was there.");
        Assert.NotNull(failover.RejoinSeconds);
        Assert.True(report.Completed > 0);

        // The operator said it was busy, and when to try again; nothing in between was a 500.
        Assert.Contains(failover.Probe.Keys, answer => answer.StartsWith("503 operator.busy, Retry-After ", StringComparison.Ordinal));
        Assert.DoesNotContain(failover.Probe.Keys, answer => answer.StartsWith("500", StringComparison.Ordinal));
        Assert.All(failover.Probe.Keys, answer => Assert.True(
            answer.StartsWith("503 operator.busy, Retry-After ", StringComparison.Ordinal) || answer == "404 store.not_found",
            $"The operator answered a read of the registry during the failover with {answer}."));

        // Every check after the load ran and passed (a failing one throws).
        var checks = Assert.IsAssignableFrom<IReadOnlyList<string>>(report.Checks);
        Assert.Contains(checks, c => c.StartsWith("every one of the", StringComparison.Ordinal));
        Assert.Contains(checks, c => c.StartsWith("no order of the", StringComparison.Ordinal));
        Assert.Contains(checks, c => c == "reconcile is clean");
        Assert.Contains(checks, c => c.StartsWith("the books are exact", StringComparison.Ordinal));
        // The stores' statements compared, or (over the 64 KiB a signed statement may be) listed: the examination clean either way.
        Assert.Contains(checks, c => c.StartsWith("cards and stores agree", StringComparison.Ordinal) || c.StartsWith("the examination is clean", StringComparison.Ordinal));
    }
}
