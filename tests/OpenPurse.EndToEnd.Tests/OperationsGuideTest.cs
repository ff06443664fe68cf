using System.Diagnostics;
using System.Text;
using System.Text.RegularExpressions;
using OpenPurse.Testing;
using Xunit.Abstractions;

namespace OpenPurse.EndToEnd.Tests;

/// <summary>
/// docs/operations.md, "Step by step", works as written: its shell blocks, taken from the page in
/// order, run as one script under <c>bash -euo pipefail</c> as root, and the card pays. Each
/// vault path of step 4 runs once. Only the settings at the top of the guide change (every
/// directory into this test's temporary directory); two programs are stood in for: <c>apt-get</c>
/// (checks that each package the guide installs is installed) and <c>dotnet publish</c> (puts the
/// programs built beside these tests where the guide publishes them).
/// </summary>
/// <remarks>
/// The script runs in namespaces of its own (<c>unshare --pid --mount-proc --net</c>): Debian's
/// PostgreSQL cluster is made afresh in directories bound over <c>/etc/postgresql</c>,
/// <c>/var/lib/postgresql</c>, … and pcscd gets its own <c>/run/pcscd</c>, so the guide's
/// <c>service postgresql start</c>, <c>runuser -u postgres</c> and <c>service pcscd start</c> run as written without touching
/// the machine's; its fixed ports are free in a network namespace with only loopback; and every
/// process it starts (servers, HAProxy, pcscd, PostgreSQL, the card) dies with the namespace when
/// the script ends, whether it succeeded or not.
/// </remarks>
public sealed partial class OperationsGuideTest(ITestOutputHelper output)
{
    private static readonly TimeSpan s_timeout = TimeSpan.FromMinutes(10);

    /// <summary>The settings of step 0, each of which the test must find and points into its directory.</summary>
    private static readonly string[] s_settings = ["OPENPURSE_SRC", "OPENPURSE_PROGRAMS", "OPENPURSE_ETC", "OPENPURSE_HOME", "OPENPURSE_LOG"];

    [IntegrationTheory(Components.PostgreSql, Components.SoftHsm, Components.Pcscd, Components.Vpcd, Components.HaProxy)]
    [InlineData("pkcs11")]
    [InlineData("software")]
    public async Task TheStepByStep_RunAsWritten_EndsWithAPaidPurchaseAndACleanLedger(string vault)
    {
        Assert.True(Environment.IsPrivilegedProcess, "The guide runs as root (and the test needs root for its namespaces).");
        var directory = Directory.CreateTempSubdirectory("openpurse-guide-").FullName;
        try
        {
            var script = OperationsGuide.Script(vault, s_settings.ToDictionary(name => name, name => name == "OPENPURSE_SRC" ? OperationsGuide.RepositoryRoot() : Path.Combine(directory, name.ToLowerInvariant())));
            await File.WriteAllTextAsync(Path.Combine(directory, "guide.sh"), script);
            await File.WriteAllTextAsync(Path.Combine(directory, "namespace.sh"), NamespaceScript);
            var (exitCode, text) = await RunAsync(directory);
            output.WriteLine(text);
            Assert.True(exitCode == 0, $"The guide's script exited with {exitCode}; its output is above.");
            AssertPrinted(text, vault);

            // Nothing the guide started (servers, HAProxy, pcscd, PostgreSQL, the card) outlived it.
            var pidNamespace = PidNamespaceLine().Match(text);
            Assert.True(pidNamespace.Success, "The script did not name its PID namespace.");
            Assert.Empty(ProcessesIn(pidNamespace.Groups[1].Value));
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    // What the guide shows each command printing, as it printed it here.
    private static void AssertPrinted(string text, string vault)
    {
        // Step 4: vault init names the signing key's kid, and (step 6) the nodes serve that key:
        // the jq line is the kid alone. Everything before the CA of step 5 is step 4's.
        var jwksKid = KidLine().Match(text);
        Assert.True(jwksKid.Success, "Step 6 printed no kid from the nodes' /.well-known/jwks.json.");
        var kid = jwksKid.Groups[1].Value;
        var step4 = text[..text.IndexOf("Made a new CA: ", StringComparison.Ordinal)];
        Assert.Contains(kid, step4, StringComparison.Ordinal);
        if (vault == "pkcs11")
        {
            // vault init names the master key by its label; pkcs11-tool shows it cannot leave the token.
            Assert.Contains("openpurse-card-master", step4, StringComparison.Ordinal);
            Assert.Matches(@"(?m)^Secret Key Object; AES length 16$", step4);
            Assert.Contains("sensitive, always sensitive, never extractable", step4, StringComparison.Ordinal);
        }

        Assert.Matches(@"(?m)^ok$", text);
        Assert.Contains("Registered store 'books' (Demo Books) in mall 'demo-mall'", text, StringComparison.Ordinal);
        Assert.Contains("Registered store 'tunes' (Demo Tunes) in mall 'demo-mall'", text, StringComparison.Ordinal);
        Assert.Matches(@"Issued card •••• \d{4} into .*card\.bin and loaded 50\.00 EUR\.", text);
        Assert.Matches(@"(?m)^Virtual PCD 00 00$", text);

        // Step 10: the purchase, with its proofs, and the card's balance read back through the reader.
        Assert.Contains("Approved with --yes.", text, StringComparison.Ordinal);
        Assert.Contains("Chapter 1. A bill, a signature, a card that agrees, and a receipt.", text, StringComparison.Ordinal);
        Assert.Contains("50.00 EUR → 37.50 EUR", text, StringComparison.Ordinal);
        // The receipt comes with the operator's answer, or, when the store's receipt reached the
        // operator after that answer (a busy machine), from the store itself; the panel may wrap it.
        Assert.Matches(@"completion notice \(SIG3\) (and receipt \(SIG4\) verified|verified; receipt \(SIG4\) fetched from)", text);
        Assert.Matches(@"Balance\s+37\.50 EUR", text);

        // Step 11: the ledger balances and both stores' statements agree with it.
        Assert.Contains("Ledger: clean.", text, StringComparison.Ordinal);
        Assert.Contains("Stores: 2 compared, in agreement", text, StringComparison.Ordinal);

        // Step 12, a day of business: the examination clean in the morning and in the evening, a
        // batch issued, the card registered, the operator's key rotated, the lost card replaced:
        // refused on the old card, its value taken by the new one, which pays under the new key.
        var day = text[text.IndexOf("Stores: 2 compared", StringComparison.Ordinal)..];
        Assert.Equal(2, Regex.Count(day, "Examination: clean;"));
        Assert.Equal(2, Regex.Count(day, "Stores: 2 compared, in agreement"));
        Assert.Contains("Issued 3 cards into ", day, StringComparison.Ordinal);
        Assert.Matches(@"Card •••• \d{4} is registered to holder [0-9a-f-]{36}\.", day);
        var newKid = Regex.Match(day, @"New operator signing key ([A-Za-z0-9_-]{43}): next");
        Assert.True(newKid.Success, "key rotate printed no new kid.");
        var lost = day[day.IndexOf("is blocked and replaced by card", StringComparison.Ordinal)..];
        Assert.Contains("card.blocked", lost, StringComparison.Ordinal);
        Assert.Contains("refused: exit 1", lost, StringComparison.Ordinal);
        Assert.Contains("37.50 EUR → 32.51 EUR", lost, StringComparison.Ordinal);
        // SIG2 and SIG3 of the new card's purchase, both under the key activated: every node switched.
        Assert.True(Regex.Count(lost, Regex.Escape(newKid.Groups[1].Value)) >= 2, "The new card's purchase was not signed under the new key.");
        Assert.Contains("Ledger: clean.", lost, StringComparison.Ordinal);
    }

    private static async Task<(int ExitCode, string Output)> RunAsync(string directory)
    {
        // --kill-child: should this test give up on the script, killing unshare ends the namespace and all in it.
        var start = new ProcessStartInfo("unshare", ["--kill-child", "--pid", "--fork", "--mount-proc", "--net", "--propagation", "private",
            "bash", Path.Combine(directory, "namespace.sh"), directory, AppContext.BaseDirectory])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            WorkingDirectory = directory,
        };
        // Only what a root shell has: nothing of this process's settings (SOFTHSM2_CONF, …) reaches the guide.
        start.Environment.Clear();
        foreach (var name in new[] { "PATH", "DOTNET_ROOT" })
        {
            if (Environment.GetEnvironmentVariable(name) is { } value)
            {
                start.Environment[name] = value;
            }
        }

        start.Environment["HOME"] = Path.Combine(directory, "root-home");
        start.Environment["LANG"] = "C.UTF-8";
        start.Environment["TERM"] = "dumb";
        start.Environment["NO_COLOR"] = "1";
        start.Environment["COLUMNS"] = "200";
        Directory.CreateDirectory(start.Environment["HOME"]!);

        var text = new StringBuilder();
        using var process = new Process { StartInfo = start };
        process.OutputDataReceived += (_, e) => Append(text, e.Data);
        process.ErrorDataReceived += (_, e) => Append(text, e.Data);
        process.Start();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        using var timeout = new CancellationTokenSource(s_timeout);
        try
        {
            await process.WaitForExitAsync(timeout.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            await process.WaitForExitAsync();
            lock (text)
            {
                return (-1, $"{text}\n(the script did not end within {s_timeout} and was killed)");
            }
        }

        process.WaitForExit(); // the output readers finish after the process
        lock (text)
        {
            return (process.ExitCode, text.ToString());
        }
    }

    private static void Append(StringBuilder text, string? line)
    {
        if (line is not null)
        {
            lock (text)
            {
                text.AppendLine(line);
            }
        }
    }

    // The processes still in the script's PID namespace, by their process directory.
    private static List<string> ProcessesIn(string pidNamespace) =>
        [.. Directory.EnumerateDirectories("/proc").Where(p => PidNamespaceOf(p) == pidNamespace)];

    private static string? PidNamespaceOf(string processDirectory)
    {
        try
        {
            return new FileInfo(Path.Combine(processDirectory, "ns", "pid")).LinkTarget;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null; // not a process, or it ended meanwhile
        }
    }

    [GeneratedRegex(@"(?m)^([A-Za-z0-9_-]{43})$")]
    private static partial Regex KidLine();

    [GeneratedRegex(@"(?m)^PID namespace (pid:\[\d+\])$")]
    private static partial Regex PidNamespaceLine();

    /// <summary>
    /// Run by <c>unshare</c> in the new namespaces, as root: <c>namespace.sh DIRECTORY BINARIES</c>.
    /// It makes what a fresh Debian has (the stopped cluster 15 main, an empty /run/pcscd) in
    /// private directories, stands in for apt-get and dotnet publish, then runs guide.sh.
    /// </summary>
    private const string NamespaceScript = """
        set -euo pipefail
        directory=$1 binaries=$2
        echo "PID namespace $(readlink /proc/self/ns/pid)"
        ip link set lo up
        for system in /etc/postgresql /var/lib/postgresql /var/log/postgresql /run/postgresql /run/pcscd; do
          mkdir -p "$directory/system$system"
          mount --bind "$directory/system$system" "$system"
        done
        chown postgres:postgres /etc/postgresql /var/lib/postgresql /run/postgresql
        chown root:postgres /var/log/postgresql
        chmod 1775 /var/log/postgresql
        chmod 2775 /run/postgresql
        pg_createcluster 15 main -- --no-sync > /dev/null

        # apt-get install: each package must be installed already.
        apt-get() {
          [ "$1" = install ] || return 0
          shift
          local package
          for package in "$@"; do
            [ "$package" = -y ] || dpkg-query -W "$package" > /dev/null
          done
        }

        # dotnet publish PROJECT ... -o DIR: DIR gets the program built beside the tests.
        dotnet() {
          [ "$1" = publish ] || { command dotnet "$@"; return; }
          local project=$2 out= program
          shift 2
          while [ $# -gt 0 ]; do
            [ "$1" = -o ] && out=$2
            shift
          done
          case $project in
            */OpenPurse.Operator) program=openpurse-operator ;;
            */OpenPurse.Store) program=openpurse-store ;;
            */OpenPurse.Wallet) program=openpurse ;;
            *) echo "dotnet publish $project: not a program of the guide" >&2; return 1 ;;
          esac
          mkdir -p "$out"
          printf '#!/bin/sh\nexec dotnet exec %s/%s.dll "$@"\n' "$binaries" "$program" > "$out/$program"
          chmod 755 "$out/$program"
        }

        cd "$directory"
        . "$directory/guide.sh"
        """;
}

/// <summary>The runnable part of docs/operations.md: the shell blocks of its "Step by step".</summary>
internal static class OperationsGuide
{
    private const string Section = "## Step by step";

    /// <summary>
    /// The shell blocks of "Step by step" in order, one path of step 4 (4a for pkcs11, 4b for
    /// software), with each of <paramref name="settings"/> given its value in the settings block.
    /// </summary>
    /// <exception cref="InvalidOperationException">The page no longer has what the test relies on.</exception>
    public static string Script(string vault, IReadOnlyDictionary<string, string> settings)
    {
        var otherPath = vault switch
        {
            "pkcs11" => "### 4b.",
            "software" => "### 4a.",
            _ => throw new ArgumentOutOfRangeException(nameof(vault), vault, "pkcs11 or software"),
        };
        var lines = File.ReadAllLines(Path.Combine(RepositoryRoot(), "docs", "operations.md"));
        var script = new StringBuilder();
        bool inSection = false, skipping = false, inBlock = false;
        var blocks = 0;
        var found = new HashSet<string>(StringComparer.Ordinal);
        foreach (var line in lines)
        {
            if (inBlock)
            {
                if (line == "```")
                {
                    inBlock = false;
                    script.AppendLine();
                    continue;
                }

                var setting = settings.Keys.FirstOrDefault(name => line.StartsWith(name + "=", StringComparison.Ordinal));
                if (setting is not null && found.Add(setting))
                {
                    script.AppendLine($"{setting}='{settings[setting]}'");
                    continue;
                }

                script.AppendLine(line);
                continue;
            }

            if (line.StartsWith("## ", StringComparison.Ordinal))
            {
                inSection = line == Section;
                continue;
            }

            if (!inSection)
            {
                continue;
            }

            if (line.StartsWith("### ", StringComparison.Ordinal))
            {
                skipping = line.StartsWith(otherPath, StringComparison.Ordinal);
                script.AppendLine("# " + line);
                continue;
            }

            if (line == "```sh" && !skipping)
            {
                inBlock = true;
                blocks++;
            }
        }

        if (blocks == 0 || settings.Keys.Any(name => !found.Contains(name)))
        {
            throw new InvalidOperationException($"docs/operations.md: \"{Section}\" has {blocks} shell blocks and does not set every one of {string.Join(", ", settings.Keys)}.");
        }

        return script.ToString();
    }

    /// <summary>The directory holding OpenPurse.slnx, above the test's binaries.</summary>
    public static string RepositoryRoot()
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
}
