using System.Collections.Concurrent;
using System.Diagnostics;

namespace OpenPurse.EndToEnd.Tests.Faults;

/// <summary>
/// One of the built programs (openpurse, openpurse-store, openpurse-operator) as its own process,
/// configured as in production by arguments and environment, so that a test can kill it for real.
/// </summary>
internal sealed class PartyProcess : IDisposable
{
    private readonly Process _process;
    private readonly ConcurrentQueue<string> _output = new();

    private PartyProcess(Process process)
    {
        _process = process;
    }

    public bool HasExited => _process.HasExited;

    public int ExitCode => _process.ExitCode;

    /// <summary>Everything it wrote, standard output and error interleaved.</summary>
    public string Output => string.Join('\n', _output);

    /// <param name="program">The assembly name beside the tests, e.g. <c>openpurse</c>.</param>
    /// <param name="arguments">Its command line.</param>
    /// <param name="environment">Its settings.</param>
    public static PartyProcess Start(string program, IEnumerable<string> arguments, IReadOnlyDictionary<string, string> environment)
    {
        var dll = Path.Combine(AppContext.BaseDirectory, program + ".dll");
        var start = new ProcessStartInfo("dotnet", ["exec", dll, .. arguments])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
        };
        // Plain output: no terminal colours or widths in what the test reads.
        start.Environment["NO_COLOR"] = "1";
        start.Environment["TERM"] = "dumb";
        start.Environment["COLUMNS"] = "200";
        foreach (var (key, value) in environment)
        {
            start.Environment[key] = value;
        }

        var process = Process.Start(start) ?? throw new InvalidOperationException($"{program} did not start.");
        var party = new PartyProcess(process);
        process.OutputDataReceived += (_, e) => party.Keep(e.Data);
        process.ErrorDataReceived += (_, e) => party.Keep(e.Data);
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return party;
    }

    /// <summary>Runs a program to its end and returns its exit code and output.</summary>
    public static async Task<(int ExitCode, string Output)> RunAsync(string program, IEnumerable<string> arguments, IReadOnlyDictionary<string, string> environment, TimeSpan? timeout = null)
    {
        using var party = Start(program, arguments, environment);
        var exit = await party.WaitAsync(timeout ?? TimeSpan.FromSeconds(60));
        return (exit ?? throw new TimeoutException($"{program} {string.Join(' ', arguments)} did not end: {party.Output}"), party.Output);
    }

    /// <summary>Waits for the process to end; its exit code, or null on timeout.</summary>
    public async Task<int?> WaitAsync(TimeSpan timeout)
    {
        using var cancel = new CancellationTokenSource(timeout);
        try
        {
            await _process.WaitForExitAsync(cancel.Token);
            // The output readers finish after the process; WaitForExit() without a timeout waits for them.
            _process.WaitForExit();
            return _process.ExitCode;
        }
        catch (OperationCanceledException)
        {
            return null;
        }
    }

    /// <summary>Kills the process at once, as a crash or a pulled plug would.</summary>
    public void Kill()
    {
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
            _process.WaitForExit(5_000);
        }
    }

    public void Dispose()
    {
        Kill();
        _process.Dispose();
    }

    private void Keep(string? line)
    {
        if (line is not null)
        {
            _output.Enqueue(line);
        }
    }
}
