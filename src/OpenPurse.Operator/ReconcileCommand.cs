using Microsoft.Extensions.DependencyInjection;
using OpenPurse.Operator.Registry;

namespace OpenPurse.Operator;

/// <summary>
/// <c>openpurse-operator reconcile</c>: checks the ledger's invariants on one snapshot of the
/// registry and prints the books per currency and every difference, card numbers masked.
/// </summary>
internal static class ReconcileCommand
{
    /// <summary>Every invariant holds.</summary>
    public const int ExitClean = 0;

    /// <summary>The report lists differences.</summary>
    public const int ExitDifferences = 1;

    /// <param name="services">The node's services, with <see cref="Ledger"/>.</param>
    /// <param name="output">Where the report goes.</param>
    /// <param name="cancellationToken">Stops the reading.</param>
    /// <returns><see cref="ExitClean"/> or <see cref="ExitDifferences"/>.</returns>
    public static async Task<int> RunAsync(IServiceProvider services, TextWriter output, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentNullException.ThrowIfNull(output);
        var report = await services.GetRequiredService<Ledger>().ReconcileAsync(cancellationToken).ConfigureAwait(false);
        await output.WriteAsync(report.ToText().AsMemory(), cancellationToken).ConfigureAwait(false);
        await output.FlushAsync(cancellationToken).ConfigureAwait(false);
        return report.IsClean ? ExitClean : ExitDifferences;
    }
}
