using System.Globalization;
using ScottPlot;
using ScottPlot.TickGenerators;

namespace OpenPurse.Load;

/// <summary>
/// Draws the scaling series as PNG charts, so a run can be read at a glance beside its JSON report:
/// throughput and p99 latency against concurrent cards, and against operator nodes.
/// </summary>
internal static class Charts
{
    private const int Width = 800;
    private const int Height = 500;

    /// <summary>Cards are drawn on a log axis over at least this span, so charts of different runs line up.</summary>
    private const double MinCards = 1;
    private const double MaxCards = 1000;

    /// <summary>
    /// Sans-serif families tried in order. A family that is not installed silently falls back to
    /// Skia's default (DejaVu Serif on Debian), so the first installed one is chosen by name.
    /// </summary>
    private static readonly string[] s_fontFamilies = ["DejaVu Sans", "Liberation Sans", "Noto Sans", "Open Sans", "Arial", "Helvetica"];

    /// <summary>Databases in a fixed order, so each keeps its colour and marker on every chart.</summary>
    private static readonly string[] s_databases = ["sqlite", "postgresql"];

    /// <summary>Profiles in a fixed order, so the usual one (signed) keeps the databases' own colours when profiles are mixed.</summary>
    private static readonly string[] s_profiles = ["signed", "lean"];

    private static readonly MarkerShape[] s_markers = [MarkerShape.FilledCircle, MarkerShape.FilledSquare, MarkerShape.FilledTriangleUp];

    /// <summary>What one chart shows: which setting is on x, which measure on y.</summary>
    private sealed record ChartSpec(
        string FileName,
        string Title,
        string XLabel,
        string YLabel,
        Func<LoadReport, double> X,
        Func<LoadReport, double> Y,
        bool LogX,
        bool ShowBound);

    /// <summary>The runs of one database (and profile, when the series mixes profiles), drawn as one line.</summary>
    private sealed record Line(string Label, Color Color, MarkerShape Marker, IReadOnlyList<LoadReport> Runs);

    /// <summary>Draws the charts for the series present (cards, nodes) into the directory.</summary>
    /// <returns>The paths of the PNG files written; a series that is absent draws nothing.</returns>
    public static IReadOnlyList<string> Render(IReadOnlyList<ScalingSeries> series, string outputDirectory)
    {
        ArgumentNullException.ThrowIfNull(series);
        ArgumentException.ThrowIfNullOrWhiteSpace(outputDirectory);
        Directory.CreateDirectory(outputDirectory);
        UseInstalledSansFont();

        var written = new List<string>();

        // A log axis cannot show fewer than one card.
        var byCards = RunsOn(series, "cards").Where(r => r.Cards >= 1).ToList();
        if (byCards.Count > 0)
        {
            var context = Context(byCards, r => r.Nodes, "node");
            written.Add(Draw(outputDirectory, byCards, context, new ChartSpec(
                "throughput-vs-cards.png",
                "Purchase throughput by concurrent cards",
                "Concurrent cards (log scale)",
                "Completed purchases per second",
                r => r.Cards,
                r => r.PurchasesPerSecond,
                LogX: true,
                ShowBound: true)));
            written.Add(Draw(outputDirectory, byCards, context, new ChartSpec(
                "p99-vs-cards.png",
                "Purchase p99 latency by concurrent cards",
                "Concurrent cards (log scale)",
                "p99 purchase latency (ms)",
                r => r.Cards,
                r => r.Purchase.P99,
                LogX: true,
                ShowBound: false)));
        }

        var byNodes = RunsOn(series, "nodes").Where(r => r.Nodes >= 1).ToList();
        if (byNodes.Count > 0)
        {
            var context = Context(byNodes, r => r.Cards, "card");
            written.Add(Draw(outputDirectory, byNodes, context, new ChartSpec(
                "throughput-vs-nodes.png",
                "Purchase throughput by operator nodes",
                "Operator nodes",
                "Completed purchases per second",
                r => r.Nodes,
                r => r.PurchasesPerSecond,
                LogX: false,
                ShowBound: true)));
            written.Add(Draw(outputDirectory, byNodes, context, new ChartSpec(
                "p99-vs-nodes.png",
                "Purchase p99 latency by operator nodes",
                "Operator nodes",
                "p99 purchase latency (ms)",
                r => r.Nodes,
                r => r.Purchase.P99,
                LogX: false,
                ShowBound: false)));
        }

        return written;
    }

    private static string Draw(string directory, IReadOnlyList<LoadReport> runs, string context, ChartSpec spec)
    {
        using var plot = new Plot();
        var yMax = 0.0;
        var bounds = new List<(Line Line, double Value)>();

        foreach (var line in Lines(runs))
        {
            var points = line.Runs
                .Select(r => (X: spec.X(r), Y: spec.Y(r)))
                .Where(p => double.IsFinite(p.Y))
                .OrderBy(p => p.X)
                .ToArray();
            if (points.Length == 0)
            {
                continue;
            }

            var xs = points.Select(p => spec.LogX ? Math.Log10(p.X) : p.X).ToArray();
            var ys = points.Select(p => p.Y).ToArray();
            var scatter = plot.Add.Scatter(xs, ys, line.Color);
            scatter.LegendText = line.Label;
            scatter.LineWidth = 2;
            scatter.MarkerShape = line.Marker;
            scatter.MarkerSize = 8;
            yMax = Math.Max(yMax, ys.Max());

            // Each run measures the bound anew; their median is the one ceiling the line approaches.
            var measured = line.Runs.Select(r => r.Bound.PurchasesPerSecond).Where(b => double.IsFinite(b) && b > 0).ToArray();
            if (spec.ShowBound && measured.Length > 0)
            {
                bounds.Add((line, Median(measured)));
            }
        }

        // Added after the measured lines, so the legend lists those first.
        foreach (var (line, value) in bounds)
        {
            var rule = plot.Add.HorizontalLine(value, 1.5f, line.Color, LinePattern.Dashed);
            rule.LegendText = $"{line.Label} signature bound";
            yMax = Math.Max(yMax, value);
        }

        plot.Title(context.Length == 0 ? spec.Title : $"{spec.Title}\n{context}");
        plot.XLabel(spec.XLabel);
        plot.YLabel(spec.YLabel);

        if (spec.LogX)
        {
            // ScottPlot has no log axis: x is log10(cards), so ticks sit on whole decades and are labelled with 10^x.
            plot.Axes.Bottom.TickGenerator = new NumericAutomatic
            {
                IntegerTicksOnly = true,
                MinorTickGenerator = new LogMinorTickGenerator(),
                LabelFormatter = x => Math.Round(Math.Pow(10, x)).ToString("#,0", CultureInfo.InvariantCulture),
            };
            // Faint lines at 2…9 of each decade, so values between the labelled ticks can be read.
            plot.Grid.XAxisStyle.MinorLineStyle.Width = 1;
            plot.Grid.XAxisStyle.MinorLineStyle.Color = Colors.Black.WithAlpha(0.05);
            var low = Math.Min(MinCards, runs.Min(spec.X));
            var high = Math.Max(MaxCards, runs.Max(spec.X));
            plot.Axes.SetLimitsX(Math.Log10(low) - 0.1, Math.Log10(high) + 0.1);
        }
        else
        {
            plot.Axes.Bottom.TickGenerator = new NumericAutomatic
            {
                IntegerTicksOnly = true,
                LabelFormatter = x => x.ToString("0", CultureInfo.InvariantCulture),
            };
            // From one node on, so a series that skips some still reads as a count.
            plot.Axes.SetLimitsX(Math.Min(1, runs.Min(spec.X)) - 0.5, runs.Max(spec.X) + 0.5);
        }

        // Rates and latencies are read against zero; the headroom keeps the top point clear of the frame.
        plot.Axes.SetLimitsY(0, yMax > 0 ? yMax * 1.12 : 1);

        // Below the data area, the legend can never hide a point or the bound; one packed row at this width.
        plot.ShowLegend(Edge.Bottom);
        plot.Legend.TightHorizontalWrapping = true;
        plot.Legend.SymbolWidth = 32;
        plot.Legend.ShadowColor = Colors.Transparent;

        var path = Path.Combine(directory, spec.FileName);
        plot.SavePng(path, Width, Height);
        return path;
    }

    /// <summary>Every run of the series on that axis; more than one such series is drawn as one.</summary>
    private static List<LoadReport> RunsOn(IReadOnlyList<ScalingSeries> series, string axis) =>
        series
            .Where(s => string.Equals(s.Axis, axis, StringComparison.OrdinalIgnoreCase))
            .SelectMany(s => s.Runs)
            .ToList();

    /// <summary>One line per database; per database and profile only when the runs mix profiles, so a line never zigzags between them.</summary>
    private static List<Line> Lines(IReadOnlyList<LoadReport> runs)
    {
        var profiles = runs
            .Select(r => r.Profile)
            .Distinct(StringComparer.Ordinal)
            .OrderBy(p => Rank(s_profiles, p))
            .ThenBy(p => p, StringComparer.Ordinal)
            .ToList();
        var palette = new ScottPlot.Palettes.Category10();
        return runs
            .GroupBy(r => (r.Database, r.Profile))
            .OrderBy(g => Rank(s_databases, g.Key.Database))
            .ThenBy(g => g.Key.Database, StringComparer.Ordinal)
            .ThenBy(g => profiles.IndexOf(g.Key.Profile))
            .Select(g =>
            {
                var rank = Rank(s_databases, g.Key.Database);
                var profile = profiles.IndexOf(g.Key.Profile);
                var label = profiles.Count > 1 ? $"{g.Key.Database}, {g.Key.Profile}" : g.Key.Database;
                return new Line(
                    label,
                    palette.GetColor(rank + (s_databases.Length + 1) * profile),
                    s_markers[rank % s_markers.Length],
                    g.ToList());
            })
            .ToList();
    }

    /// <summary>The place of a name in a fixed order; names not in it come after all that are.</summary>
    private static int Rank(string[] order, string name)
    {
        var rank = Array.FindIndex(order, o => string.Equals(o, name, StringComparison.OrdinalIgnoreCase));
        return rank >= 0 ? rank : order.Length;
    }

    /// <summary>The settings all runs share (profile, cores, stores, and the other axis), as a subtitle; a setting that varies is left out.</summary>
    private static string Context(IReadOnlyList<LoadReport> runs, Func<LoadReport, int> other, string otherName)
    {
        var parts = new List<string>();
        AddIfShared(parts, runs.Select(r => r.Profile), p => $"{p} profile");
        AddIfShared(parts, runs.Select(other), n => Plural(n, otherName));
        AddIfShared(parts, runs.Select(r => r.Stores), n => Plural(n, "store"));
        AddIfShared(parts, runs.Select(r => r.Cores), n => Plural(n, "core"));
        return string.Join(" · ", parts);
    }

    private static void AddIfShared<T>(List<string> parts, IEnumerable<T> values, Func<T, string> describe)
    {
        var distinct = values.Distinct().Take(2).ToList();
        if (distinct.Count == 1)
        {
            parts.Add(describe(distinct[0]));
        }
    }

    private static string Plural(int n, string noun) =>
        string.Create(CultureInfo.InvariantCulture, $"{n} {noun}{(n == 1 ? "" : "s")}");

    private static double Median(double[] values)
    {
        Array.Sort(values);
        var middle = values.Length / 2;
        return values.Length % 2 == 1 ? values[middle] : (values[middle - 1] + values[middle]) / 2;
    }

    /// <summary>
    /// Points ScottPlot's default font, read by every plot made afterwards, at an installed sans-serif
    /// family; when none of them is installed Skia's default stays, which is still a real font.
    /// </summary>
    private static void UseInstalledSansFont()
    {
        foreach (var family in s_fontFamilies)
        {
            // A fontconfig-backed Skia may answer with a substitute; only the family itself counts.
            using var typeface = SkiaSharp.SKFontManager.Default.MatchFamily(family);
            if (typeface is not null && string.Equals(typeface.FamilyName, family, StringComparison.OrdinalIgnoreCase))
            {
                Fonts.Default = family;
                return;
            }
        }
    }
}
