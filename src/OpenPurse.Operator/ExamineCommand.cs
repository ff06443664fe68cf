using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using OpenPurse.Operator.Registry;
using OpenPurse.Protocol;
using OpenPurse.Protocol.Messages;
using Spectre.Console;

namespace OpenPurse.Operator;

/// <summary>
/// <c>openpurse-operator examine [--json] [--card REF]</c>: the careful examination
/// (<see cref="Examination"/>), a table per kind of finding, or one JSON document. Card numbers
/// masked throughout.
/// </summary>
internal static class ExamineCommand
{
    /// <summary>No mismatch (notes may be listed).</summary>
    public const int ExitClean = 0;

    /// <summary>At least one mismatch.</summary>
    public const int ExitMismatches = 1;

    /// <summary>A card reference that is none.</summary>
    public const int ExitUsage = 2;

    /// <param name="services">The node's services, with <see cref="Examination"/>.</param>
    /// <param name="card">The card's reference, as <c>card find</c> shows it; null for every card.</param>
    /// <param name="json">One JSON document instead of tables.</param>
    /// <param name="output">Where the report goes.</param>
    /// <param name="error">Where usage is told.</param>
    /// <param name="cancellationToken">Stops the reading.</param>
    public static async Task<int> RunAsync(IServiceProvider services, string? card, bool json, TextWriter output, TextWriter error, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentNullException.ThrowIfNull(output);
        ArgumentNullException.ThrowIfNull(error);
        CardId? only = null;
        if (card is not null)
        {
            if (!CardId.TryParse(card, out var parsed))
            {
                await error.WriteLineAsync("openpurse-operator: --card takes a card reference; `card find --last DIGITS` shows them.".AsMemory(), cancellationToken).ConfigureAwait(false);
                return ExitUsage;
            }

            only = parsed;
        }

        var report = await services.GetRequiredService<Examination>().RunAsync(only, cancellationToken).ConfigureAwait(false);
        if (json)
        {
            await output.WriteLineAsync(JsonSerializer.Serialize(report, ProtocolJson.Options).AsMemory(), cancellationToken).ConfigureAwait(false);
        }
        else
        {
            Write(report, output);
        }

        await output.FlushAsync(cancellationToken).ConfigureAwait(false);
        return report.Clean ? ExitClean : ExitMismatches;
    }

    /// <summary>The summary, then a table per kind: the mismatches first, the notes after.</summary>
    public static void Write(ExaminationReport report, TextWriter output)
    {
        ArgumentNullException.ThrowIfNull(report);
        ArgumentNullException.ThrowIfNull(output);
        var console = AnsiConsole.Create(new AnsiConsoleSettings
        {
            Ansi = AnsiSupport.No,
            ColorSystem = ColorSystemSupport.NoColors,
            Interactive = InteractionSupport.No,
            Out = new AnsiConsoleOutput(output),
        });
        console.Profile.Width = Math.Max(console.Profile.Width, 160);
        console.WriteLine(report.Summary);
        foreach (var kind in report.Findings.GroupBy(f => f.Kind, StringComparer.Ordinal).OrderBy(g => g.First().Mismatch ? 0 : 1).ThenBy(g => g.Key, StringComparer.Ordinal))
        {
            var table = new Table().Border(TableBorder.Simple)
                .Title($"{kind.Key} ({(kind.First().Mismatch ? "mismatch" : "note")}, {kind.Count()})", Style.Plain)
                .AddColumns(new TableColumn("Card").NoWrap(), new TableColumn("Transactions").NoWrap(), new TableColumn("Expected"), new TableColumn("Actual"), new TableColumn("Detail"));
            foreach (var finding in kind)
            {
                table.AddRow(new Text(finding.Card ?? "–"), new Text(finding.Transactions.Count == 0 ? "–" : string.Join("\n", finding.Transactions)),
                    new Text(finding.Expected), new Text(finding.Actual), new Text(finding.Detail));
            }

            console.Write(table);
        }
    }
}
