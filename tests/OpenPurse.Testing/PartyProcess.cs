using System.Collections.Concurrent;
using System.Diagnostics;

namespace OpenPurse.Testing;

/// <summary>
/// One of the built programs (openpurse, openpurse-store, openpurse-operator) as its own process,
/// configured as in production by arguments and environment, so that a test can kill it for real
/// and a load run can read its memory. The program's assembly must be beside the caller's.
/// </summary>
public sealed class PartyProcess : IDisposable
{
    private readonly Process _process;
    private readonly ConcurrentQueue<string> _output = new();
    private readonly long _startedAt = Stopwatch.GetTimestamp();
    private readonly Reaper _reaper;

    private PartyProcess(Process process, int? owner)
    {
        _process = process;
        _reaper = Reaper.Watch([process.Id], directory: null, owner: owner);
    }

    public bool HasExited => _process.HasExited;

    /// <summary>The process id.</summary>
    public int Id => _process.Id;

    public int ExitCode => _process.ExitCode;

    /// <summary>Everything it wrote, standard output and error interleaved.</summary>
    public string Output => string.Join('\n', _output);

    /// <param name="program">The assembly name beside the tests, e.g. <c>openpurse</c>.</param>
    /// <param name="arguments">Its command line.</param>
    /// <param name="environment">Its settings.</param>
    /// <param name="umask">The file-creation mask to start it with (octal, e.g. <c>000</c>), or null for the caller's.</param>
    /// <param name="owner">The process whose end ends this one too; this test process unless a test of the reaper says otherwise.</param>
    public static PartyProcess Start(string program, IEnumerable<string> arguments, IReadOnlyDictionary<string, string> environment, string? umask = null, int? owner = null)
    {
        var dll = Path.Combine(AppContext.BaseDirectory, program + ".dll");
        // With a mask, a shell sets it and then becomes the program (exec): the process id stays the program's.
        var (file, commandLine) = umask is null
            ? ("dotnet", (IEnumerable<string>)["exec", dll, .. arguments])
            : ("/bin/sh", ["-c", $"umask {umask} && exec dotnet exec \"$0\" \"$@\"", dll, .. arguments]);
        var start = new ProcessStartInfo(file, commandLine)
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
        var party = new PartyProcess(process, owner);
        process.OutputDataReceived += (_, e) => party.Keep(e.Data);
        process.ErrorDataReceived += (_, e) => party.Keep(e.Data);
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return party;
    }

    /// <summary>
    /// Waits until <paramref name="probe"/> answers with success, and returns how long after the
    /// process started that was (its start-up time, to within the 10 ms between probes).
    /// </summary>
    /// <exception cref="InvalidOperationException">The process exited first.</exception>
    /// <exception cref="TimeoutException">No success within a minute (a start-up takes a second or two; a busy machine many more).</exception>
    public async Task<TimeSpan> WaitReadyAsync(Uri probe, string name, HttpMessageHandler? trust = null)
    {
        using var http = new HttpClient(trust ?? new HttpClientHandler(), disposeHandler: trust is null) { Timeout = TimeSpan.FromSeconds(2) };
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while (DateTime.UtcNow < deadline)
        {
            if (HasExited)
            {
                throw new InvalidOperationException($"{name} exited with {ExitCode}: {Output}");
            }

            try
            {
                using var response = await http.GetAsync(probe);
                if (response.IsSuccessStatusCode)
                {
                    return Stopwatch.GetElapsedTime(_startedAt);
                }
            }
            catch (Exception e) when (e is HttpRequestException or TaskCanceledException)
            {
                // Not listening yet.
            }

            await Task.Delay(10);
        }

        throw new TimeoutException($"{name} did not answer {probe} within 60 s: {Output}");
    }

    /// <summary>Waits until the process has written a line containing <paramref name="text"/>.</summary>
    /// <exception cref="InvalidOperationException">The process exited first.</exception>
    /// <exception cref="TimeoutException">No such line within <paramref name="timeout"/>.</exception>
    public async Task WaitForOutputAsync(string text, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (!_output.Any(line => line.Contains(text, StringComparison.Ordinal)))
        {
            if (HasExited)
            {
                throw new InvalidOperationException($"It exited with {ExitCode} before writing '{text}': {Output}");
            }

            if (DateTime.UtcNow > deadline)
            {
                throw new TimeoutException($"It did not write '{text}' within {timeout}: {Output}");
            }

            await Task.Delay(50);
        }
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

    /// <summary>Writes <paramref name="text"/> to its standard input and closes it, as a script piping its answers does.</summary>
    public void Answer(string text)
    {
        _process.StandardInput.Write(text);
        _process.StandardInput.Close();
    }

    /// <summary>Sends SIGTERM, as a service manager stopping it does.</summary>
    public void Terminate() => Signal(SigTerm);

    /// <summary>Sends SIGINT, as Ctrl-C at its terminal does.</summary>
    public void Interrupt() => Signal(SigInt);

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
        _reaper.Dispose();
        Kill();
        _process.Dispose();
    }

    private const string SigInt = "INT";
    private const string SigTerm = "TERM";

    private void Signal(string signal)
    {
        if (_process.HasExited)
        {
            return;
        }

        // kill(1) rather than a P/Invoke: the signal as a person or a service manager sends it.
        using var kill = Process.Start(new ProcessStartInfo("kill", ["-s", signal, _process.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)]))
            ?? throw new InvalidOperationException("kill did not start.");
        kill.WaitForExit();
        if (kill.ExitCode != 0 && !_process.HasExited)
        {
            throw new InvalidOperationException($"kill -s {signal} {_process.Id} exited with {kill.ExitCode}.");
        }
    }

    private void Keep(string? line)
    {
        if (line is not null)
        {
            _output.Enqueue(line);
        }
    }
}
