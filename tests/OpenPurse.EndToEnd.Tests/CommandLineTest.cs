using System.Diagnostics;
using System.Globalization;

namespace OpenPurse.EndToEnd.Tests;

/// <summary>
/// Every program's every command as a person may mistype it, run as the built program with HOME and
/// the working directory a fresh empty directory: <c>--help</c> and <c>--version</c> exit 0 (they did
/// what was asked, as every Unix tool does); no command, an unknown command or an unknown option
/// prints usage on stderr and exits 2. Either way nothing is written, and nothing listens on the
/// default ports 5080, 5081 and 5090. And the demo's "wallet commands to try" run as printed.
/// </summary>
public sealed class CommandLineTest
{
    private static readonly int[] s_defaultPorts = [5080, 5081, 5090];

    /// <summary>Far more than a program needs to print its help; a server that started would never end.</summary>
    private static readonly TimeSpan s_exitWithin = TimeSpan.FromSeconds(60);

    // Each program's commands (the words before the options), those with a positional argument marked.
    private static readonly (string Program, string[] Command, bool TakesArgument)[] s_commands =
    [
        ("openpurse-operator", [], false),
        ("openpurse-operator", ["serve"], false),
        ("openpurse-operator", ["vault"], false),
        ("openpurse-operator", ["vault", "init"], false),
        ("openpurse-operator", ["tls"], false),
        ("openpurse-operator", ["tls", "init"], false),
        ("openpurse-operator", ["card"], false),
        ("openpurse-operator", ["card", "issue"], false),
        ("openpurse-operator", ["card", "find"], false),
        ("openpurse-operator", ["card", "block"], true),
        ("openpurse-operator", ["card", "unblock"], true),
        ("openpurse-operator", ["store"], false),
        ("openpurse-operator", ["store", "register"], true),
        ("openpurse-operator", ["reconcile"], false),
        ("openpurse-operator", ["examine"], false),
        ("openpurse-store", [], false),
        ("openpurse-store", ["serve"], false),
        ("openpurse-store", ["registration"], false),
        ("openpurse", [], false),
        ("openpurse", ["catalog"], false),
        ("openpurse", ["pay"], false),
        ("openpurse", ["card"], false),
        ("openpurse", ["readers"], false),
        ("openpurse", ["insert"], false),
        ("openpurse", ["sync"], false),
        ("openpurse", ["topup"], false),
        ("OpenPurse.Demo", [], false),
        ("openpurse-load", [], false),
        ("openpurse-load", ["sweep"], false),
        ("openpurse-load", ["chart"], true),
    ];

    public static IEnumerable<object[]> Help() =>
        s_commands.Select(c => Case(c.Program, [.. c.Command, "--help"])).Concat(s_commands.Where(c => c.Command.Length == 0).Select(c => Case(c.Program, ["-h"])));

    public static IEnumerable<object[]> Versions() =>
        s_commands.Where(c => c.Command.Length == 0).Select(c => Case(c.Program, ["--version"]));

    public static IEnumerable<object[]> Misspellings() =>
    [
        .. s_commands.Select(c => Case(c.Program, [.. c.Command, "--colour", "blue"])),
        .. s_commands.Select(c => Case(c.Program, [.. c.Command, "--Urls=http://127.0.0.1:5080"])),
        .. s_commands.Where(c => !c.TakesArgument).Select(c => Case(c.Program, [.. c.Command, "srve"])),
        Case("openpurse-operator", ["card", "block", "4242424242424242"]),
        Case("openpurse-operator", ["card", "find", "--last"]),
        Case("openpurse-operator", ["serve", "--OpenPurse:Operator:Urls"]),
        Case("openpurse-operator", ["reconcile", "now"]),
        Case("openpurse-operator", ["examine", "--card"]),
        Case("openpurse", ["pay", "--item", "book-001", "--quantity", "abc"]),
    ];

    // The servers (and the wallet) need a command: none is bad usage.
    public static IEnumerable<object[]> NoCommand() => [Case("openpurse-operator", []), Case("openpurse-store", []), Case("openpurse", [])];

    [Theory]
    [MemberData(nameof(Help))]
    [MemberData(nameof(Versions))]
    public async Task HelpAndVersion_PrintAndExitZero_WritingAndStartingNothing(string program, string[] arguments)
    {
        var run = await RunAsync(program, arguments);

        Assert.True(run.ExitCode == 0, $"{program} {string.Join(' ', arguments)} exited {run.ExitCode}: {run.Error}");
        Assert.NotEmpty(run.Output.Trim());
        if (arguments[^1] != "--version")
        {
            Assert.Contains("Usage:", run.Output, StringComparison.Ordinal);
            Assert.Contains("Exit codes:", run.Output, StringComparison.Ordinal);
        }
    }

    [Theory]
    [MemberData(nameof(Misspellings))]
    [MemberData(nameof(NoCommand))]
    public async Task BadUsage_UsageOnStderrAndExitTwo_WritingAndStartingNothing(string program, string[] arguments)
    {
        var run = await RunAsync(program, arguments);

        Assert.True(run.ExitCode == 2, $"{program} {string.Join(' ', arguments)} exited {run.ExitCode}: {run.Output} {run.Error}");
        Assert.Contains("Usage:", run.Error, StringComparison.Ordinal);
        Assert.DoesNotContain("System.", run.Error, StringComparison.Ordinal);
        Assert.Empty(run.Output);
    }

    [Fact]
    public async Task Demo_WalletCommandsToTry_RunAsPrinted_FromAnotherDirectory()
    {
        var directory = Directory.CreateTempSubdirectory("openpurse-demo-try-").FullName;
        try
        {
            using var demo = OpenPurse.Testing.PartyProcess.Start("OpenPurse.Demo", ["--data", directory], new Dictionary<string, string>());
            await demo.WaitForOutputAsync(" --item course-001 ", TimeSpan.FromSeconds(90));
            var lines = demo.Output.Split('\n').Select(line => line.Trim()).ToList();
            var commands = lines.Where(line => line.StartsWith("dotnet ", StringComparison.Ordinal)).ToList();
            Assert.Equal(9, commands.Count);
            Assert.DoesNotContain(commands, command => command.Contains("dotnet run", StringComparison.Ordinal));
            string Command(string part, string? also = null) => commands.First(c => c.Contains(part, StringComparison.Ordinal) && (also is null || c.Contains(also, StringComparison.Ordinal)));

            var catalog = await ShellAsync(Command(" catalog "), directory);
            var card = await ShellAsync(Command(" card --card "), directory);
            // Not interactive here, so the purchase is declined, as printed: the command ran and asked.
            var pay = await ShellAsync(Command(" pay ", "book-001"), directory);
            // Standard input closed here, so the credit card's three lines are missing, as printed: the command ran and asked.
            var topUp = await ShellAsync(Command(" topup "), directory);
            // The store owner's refund, as printed, of the demo's first purchase; the card takes it at its sync.
            string Curl(string part) => lines.Single(line => line.StartsWith("curl ", StringComparison.Ordinal) && line.Contains(part, StringComparison.Ordinal)).Replace("ORDER-NO", "demo-mall-000001", StringComparison.Ordinal);
            var refund = await ShellAsync(Curl(" -X POST "), directory);
            var sync = await ShellAsync(Command(" sync ", "card.bin"), directory);
            // The store owner's list of the order's refunds, as printed: the store asks the operator, which saw the card take it.
            var refunds = await ShellAsync(Curl("/ORDER-NO/refunds"), directory);
            // Not interactive: the transfer and the cash-out ask, and are not confirmed.
            var transfer = await ShellAsync(Command(" transfer "), directory);
            var cashOut = await ShellAsync(Command(" cashout "), directory);
            var friend = await ShellAsync(Command(" sync ", "friend.bin"), directory);

            demo.Terminate();
            Assert.Equal(0, await demo.WaitAsync(TimeSpan.FromSeconds(20)));
            Assert.True(catalog.ExitCode == 0, catalog.Output);
            Assert.Contains("book-001", catalog.Output, StringComparison.Ordinal);
            Assert.True(card.ExitCode == 0, card.Output);
            Assert.Contains("demo-mall-000001", card.Output, StringComparison.Ordinal);
            Assert.Contains("books", card.Output, StringComparison.Ordinal);
            Assert.Equal(1, pay.ExitCode);
            Assert.Contains("purchase.declined", pay.Output, StringComparison.Ordinal);
            Assert.Equal(1, topUp.ExitCode);
            Assert.Contains("credit_card.missing", topUp.Output, StringComparison.Ordinal);
            Assert.True(refund.ExitCode == 0 && refund.Output.Contains("\"state\":\"owed\"", StringComparison.Ordinal), refund.Output);
            Assert.True(sync.ExitCode == 0, sync.Output);
            Assert.Contains("Added to the card: 2.00 EUR", sync.Output, StringComparison.Ordinal);
            Assert.True(refunds.ExitCode == 0 && refunds.Output.Contains("\"state\":\"credited\"", StringComparison.Ordinal) && !refunds.Output.Contains("\"state\":\"owed\"", StringComparison.Ordinal), refunds.Output);
            Assert.Equal(1, transfer.ExitCode);
            Assert.Equal(1, cashOut.ExitCode);
            Assert.True(friend.ExitCode == 0, friend.Output);
            Assert.Contains("Balance: 5.00 EUR", friend.Output, StringComparison.Ordinal);
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    // A line as a person pastes it into a shell, in another directory than the demo's.
    private static async Task<(int ExitCode, string Output)> ShellAsync(string commandLine, string directory)
    {
        var start = new ProcessStartInfo("/bin/sh", ["-c", commandLine])
        {
            WorkingDirectory = directory,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
        };
        start.Environment["NO_COLOR"] = "1";
        start.Environment["COLUMNS"] = "120";
        using var process = Process.Start(start) ?? throw new InvalidOperationException("sh did not start.");
        process.StandardInput.Close();
        var output = process.StandardOutput.ReadToEndAsync();
        var error = process.StandardError.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(s_exitWithin);
        await process.WaitForExitAsync(timeout.Token);
        return (process.ExitCode, await output + await error);
    }

    private static object[] Case(string program, string[] arguments) => [program, arguments];

    // The program in an empty directory that is also its HOME; checks that it stays empty and that
    // nothing new listened on the default ports while it ran.
    private static async Task<(int ExitCode, string Output, string Error)> RunAsync(string program, string[] arguments)
    {
        var home = Directory.CreateTempSubdirectory("openpurse-cli-").FullName;
        try
        {
            var listeningBefore = Listening();
            var start = new ProcessStartInfo("dotnet", ["exec", ProgramPath(program), .. arguments])
            {
                WorkingDirectory = home,
                RedirectStandardOutput = true,
                RedirectStandardError = true,
                RedirectStandardInput = true,
            };
            start.Environment["HOME"] = home;
            start.Environment["XDG_DATA_HOME"] = Path.Combine(home, ".local", "share");
            start.Environment["XDG_CONFIG_HOME"] = Path.Combine(home, ".config");
            start.Environment["NO_COLOR"] = "1";
            start.Environment["TERM"] = "dumb";
            using var process = Process.Start(start) ?? throw new InvalidOperationException($"{program} did not start.");
            var output = process.StandardOutput.ReadToEndAsync();
            var error = process.StandardError.ReadToEndAsync();
            var exited = process.WaitForExitAsync();
            var deadline = Stopwatch.StartNew();
            while (!exited.IsCompleted)
            {
                var opened = Listening().Except(listeningBefore).ToList();
                if (opened.Count > 0 || deadline.Elapsed > s_exitWithin)
                {
                    process.Kill(entireProcessTree: true);
                    Assert.Fail($"{program} {string.Join(' ', arguments)} {(opened.Count > 0 ? $"listened on {string.Join(", ", opened)}" : "did not exit")}: {await output} {await error}");
                }

                await Task.WhenAny(exited, Task.Delay(20));
            }

            await exited;
            var written = Directory.EnumerateFileSystemEntries(home, "*", SearchOption.AllDirectories).ToList();
            Assert.True(written.Count == 0, $"{program} {string.Join(' ', arguments)} wrote {string.Join(", ", written)}");
            return (process.ExitCode, await output, await error);
        }
        finally
        {
            Directory.Delete(home, recursive: true);
        }
    }

    private static string ProgramPath(string program)
    {
        var beside = Path.Combine(AppContext.BaseDirectory, program + ".dll");
        if (program != "openpurse-load")
        {
            return beside;
        }

        // The load generator is built with the tests, not copied beside them: bench/OpenPurse.Load/bin/<configuration>/<framework>.
        var framework = new DirectoryInfo(AppContext.BaseDirectory.TrimEnd(Path.DirectorySeparatorChar));
        var configuration = framework.Parent!;
        var repository = configuration.Parent!.Parent!.Parent!.Parent!.FullName;
        var path = Path.Combine(repository, "bench", "OpenPurse.Load", "bin", configuration.Name, framework.Name, "openpurse-load.dll");
        return File.Exists(path) ? path : throw new FileNotFoundException("The load generator is built with the end-to-end tests.", path);
    }

    // The default ports something listens on now (IPv4 and IPv6).
    private static HashSet<int> Listening()
    {
        var ports = new HashSet<int>();
        foreach (var table in new[] { "/proc/net/tcp", "/proc/net/tcp6" }.Where(File.Exists))
        {
            foreach (var line in File.ReadLines(table).Skip(1))
            {
                // sl local_address rem_address st …; local_address is HEXADDR:HEXPORT, st 0A is LISTEN.
                var fields = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
                if (fields.Length > 3 && fields[3] == "0A"
                    && int.TryParse(fields[1].AsSpan(fields[1].LastIndexOf(':') + 1), NumberStyles.HexNumber, CultureInfo.InvariantCulture, out var port)
                    && s_defaultPorts.Contains(port))
                {
                    ports.Add(port);
                }
            }
        }

        return ports;
    }
}
