using Microsoft.Extensions.DependencyInjection;
using OpenPurse.Operator.Registry;
using OpenPurse.Operator.Settlement;

namespace OpenPurse.Operator;

/// <summary>
/// <c>openpurse-operator reconcile</c>: checks the ledger's invariants on one snapshot of the
/// registry and prints the books per currency and every difference, card numbers masked, then
/// the disputed settlements that wait for a decision; then compares each store's signed statement
/// of its payments with the settlements completed for it.
/// </summary>
internal static class ReconcileCommand
{
    /// <summary>Every invariant holds.</summary>
    public const int ExitClean = 0;

    /// <summary>The report lists differences.</summary>
    public const int ExitDifferences = 1;

    /// <summary>The ledger is clean, but disputed settlements wait for the operator's decision.</summary>
    public const int ExitDecisionsNeeded = 3;

    /// <param name="services">The node's services, with <see cref="Ledger"/>.</param>
    /// <param name="output">Where the report goes.</param>
    /// <param name="cancellationToken">Stops the reading.</param>
    /// <returns><see cref="ExitClean"/>, <see cref="ExitDifferences"/>, or <see cref="ExitDecisionsNeeded"/>.</returns>
    public static async Task<int> RunAsync(IServiceProvider services, TextWriter output, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentNullException.ThrowIfNull(output);
        var report = await services.GetRequiredService<Ledger>().ReconcileAsync(cancellationToken).ConfigureAwait(false);
        await output.WriteAsync(report.ToText().AsMemory(), cancellationToken).ConfigureAwait(false);
        var storesAgree = true;
        if (services.GetService<StoreStatements>() is { } statements)
        {
            // The books against each store's own word. A store that cannot be asked is listed as not
            // compared, which is not a difference: it says nothing about the money, only that this
            // run could not look.
            var (differences, compared) = await statements.CompareAsync(cancellationToken).ConfigureAwait(false);
            var notCompared = differences.Count(d => d.Kind == StoreStatements.Unavailable);
            storesAgree = differences.Count == notCompared;
            await output.WriteLineAsync($"Stores: {compared} compared{(storesAgree ? ", in agreement" : "")}, {notCompared} not compared.".AsMemory(), cancellationToken).ConfigureAwait(false);
            foreach (var difference in differences)
            {
                await output.WriteLineAsync(difference.ToText().AsMemory(), cancellationToken).ConfigureAwait(false);
            }
        }

        await output.FlushAsync(cancellationToken).ConfigureAwait(false);
        return !report.IsClean || !storesAgree ? ExitDifferences : report.Disputed.Count > 0 ? ExitDecisionsNeeded : ExitClean;
    }
}
