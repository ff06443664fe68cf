using System.Text.RegularExpressions;

namespace OpenPurse.Hostile.Tests;

/// <summary>
/// The refusal codes docs/errors.md documents, per party, with the HTTP status each is answered
/// with: read from the tables under its "## Operator" and "## Store (and mall)" headings, so that a
/// code the servers answer but the document does not name fails the suite.
/// </summary>
internal sealed partial class DocumentedCodes
{
    private readonly Dictionary<string, int> _codes;

    private DocumentedCodes(Dictionary<string, int> codes) => _codes = codes;

    public static DocumentedCodes Operator { get; } = Read("Operator");

    public static DocumentedCodes Store { get; } = Read("Store (and mall)");

    public IReadOnlyCollection<string> Codes => _codes.Keys;

    /// <summary>The documented status of <paramref name="code"/>, or null when the document does not name it.</summary>
    public int? StatusOf(string code) => _codes.TryGetValue(code, out var status) ? status : null;

    /// <summary>The repository's root: the first directory above the test's base directory that holds OpenPurse.slnx.</summary>
    public static string RepositoryRoot()
    {
        for (var directory = new DirectoryInfo(AppContext.BaseDirectory); directory is not null; directory = directory.Parent)
        {
            if (File.Exists(Path.Combine(directory.FullName, "OpenPurse.slnx")))
            {
                return directory.FullName;
            }
        }

        throw new InvalidOperationException($"No OpenPurse.slnx above {AppContext.BaseDirectory}.");
    }

    private static DocumentedCodes Read(string heading)
    {
        var codes = new Dictionary<string, int>(StringComparer.Ordinal);
        var inSection = false;
        foreach (var line in File.ReadLines(Path.Combine(RepositoryRoot(), "docs", "errors.md")))
        {
            if (line.StartsWith("## ", StringComparison.Ordinal))
            {
                inSection = line[3..].Trim() == heading;
                continue;
            }

            if (inSection && TableRow().Match(line) is { Success: true } row)
            {
                codes.Add(row.Groups["code"].Value, int.Parse(row.Groups["status"].Value, System.Globalization.CultureInfo.InvariantCulture));
            }
        }

        if (codes.Count == 0)
        {
            throw new InvalidOperationException($"docs/errors.md has no table of codes under '## {heading}'.");
        }

        return new DocumentedCodes(codes);
    }

    // | `bill.expired` | 422 | when ... |
    [GeneratedRegex(@"^\|\s*`(?<code>[a-z0-9_.]+)`\s*\|\s*(?<status>\d{3})\s*\|")]
    private static partial Regex TableRow();
}
