using System.Text.RegularExpressions;

namespace OpenPurse.Testing;

/// <summary>
/// docs/errors.md as the tests read it: the codes each party's table documents, so that a test
/// can enumerate every code a server answers and find each one there.
/// </summary>
public static partial class ErrorsDocument
{
    /// <summary>The codes in the table under the heading <paramref name="section"/> (e.g. "Operator", "Store (and mall)").</summary>
    public static IReadOnlySet<string> CodesOf(string section) => StatusesOf(section).Keys.ToHashSet(StringComparer.Ordinal);

    /// <summary>The codes in the table under the heading <paramref name="section"/>, each with the HTTP status it documents.</summary>
    public static IReadOnlyDictionary<string, int> StatusesOf(string section)
    {
        var lines = File.ReadAllLines(Path.Combine(RepositoryRoot(), "docs", "errors.md"));
        var start = Array.FindIndex(lines, line => line == "## " + section);
        if (start < 0)
        {
            throw new InvalidOperationException($"docs/errors.md has no section '{section}'.");
        }

        return lines.Skip(start + 1).TakeWhile(line => !line.StartsWith("## ", StringComparison.Ordinal))
            .Select(line => TableCode().Match(line)).Where(match => match.Success)
            .ToDictionary(match => match.Groups[1].Value, match => int.Parse(match.Groups[2].Value, System.Globalization.CultureInfo.InvariantCulture), StringComparer.Ordinal);
    }

    /// <summary>The directory holding OpenPurse.slnx, above the test's binaries.</summary>
    private static string RepositoryRoot()
    {
        for (var directory = new DirectoryInfo(AppContext.BaseDirectory); directory is not null; directory = directory.Parent)
        {
            if (File.Exists(Path.Combine(directory.FullName, "OpenPurse.slnx")))
            {
                return directory.FullName;
            }
        }

        throw new InvalidOperationException("The tests run outside the repository: no OpenPurse.slnx above " + AppContext.BaseDirectory);
    }

    [GeneratedRegex(@"^\| `([a-z_.]+)` \| (\d{3}) \|")]
    private static partial Regex TableCode();
}
