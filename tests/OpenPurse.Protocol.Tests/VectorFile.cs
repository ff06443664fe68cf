namespace OpenPurse.Protocol.Tests;

/// <summary>
/// Reads the test-vector files in Vectors/: '#' comments, "[section]" lines, "key = value" lines.
/// A record is a run of key lines; a blank line or a section line ends it. Each record carries the
/// section lines in force when it began (CAVP files stack several, e.g. [PRF=…][CTRLOCATION=…]).
/// </summary>
internal static class VectorFile
{
    public static IReadOnlyList<VectorRecord> Read(string name)
    {
        var path = Path.Combine(AppContext.BaseDirectory, "Vectors", name);
        var records = new List<VectorRecord>();
        var sections = new List<string>();
        var current = new Dictionary<string, string>(StringComparer.Ordinal);
        var sectionOpen = false;

        void Flush()
        {
            if (current.Count > 0)
            {
                records.Add(new VectorRecord([.. sections], current));
                current = new Dictionary<string, string>(StringComparer.Ordinal);
            }
        }

        foreach (var raw in File.ReadLines(path))
        {
            var line = raw.Trim();
            if (line.StartsWith('#'))
            {
                continue;
            }

            if (line.Length == 0)
            {
                Flush();
                continue;
            }

            if (line.StartsWith('['))
            {
                Flush();
                if (!sectionOpen)
                {
                    sections.Clear();
                }

                sections.Add(line.Trim('[', ']'));
                sectionOpen = true;
                continue;
            }

            sectionOpen = false;
            var equals = line.IndexOf('=', StringComparison.Ordinal);
            current[line[..equals].Trim()] = line[(equals + 1)..].Trim();
        }

        Flush();
        return records;
    }
}

internal sealed record VectorRecord(IReadOnlyList<string> Sections, IReadOnlyDictionary<string, string> Values)
{
    public string this[string key] => Values[key];

    public byte[] Hex(string key) => Convert.FromHexString(Values[key]);

    public bool Has(string key) => Values.ContainsKey(key);

    public string Section(string prefix) => Sections.First(s => s.StartsWith(prefix, StringComparison.Ordinal));

    public override string ToString() => string.Join(" ", Sections) + " " + string.Join(",", Values.Where(v => v.Key.StartsWith("COUNT", StringComparison.Ordinal)).Select(v => v.Value));
}
