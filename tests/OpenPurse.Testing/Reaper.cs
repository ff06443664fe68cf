using System.Diagnostics;
using System.Globalization;

namespace OpenPurse.Testing;

/// <summary>
/// Ends what a fixture started outside the test process (a PostgreSQL cluster, HAProxy, pcscd, a
/// built program) when the test process dies without disposing it: a cancelled run (Ctrl-C), a
/// test host killed for hanging, a crash. Disposing the fixture disposes its reaper first.
/// </summary>
/// <remarks>
/// Each reaper is a small shell in a session of its own (setsid), so the signals that end the test
/// run — Ctrl-C to the terminal's process group, a kill of the test host's process tree — do not
/// reach it. It ignores SIGINT, SIGTERM and SIGHUP, checks once a second that its owner still
/// lives, and when it does not, signals the processes it watches and deletes their directory.
/// Disposing it kills it with SIGKILL, the one signal it cannot ignore.
/// </remarks>
public sealed class Reaper : IDisposable
{
    private readonly Process _watchdog;

    private Reaper(Process watchdog)
    {
        _watchdog = watchdog;
    }

    /// <summary>The process id of the reaper's own shell.</summary>
    public int Id => _watchdog.Id;

    /// <summary>
    /// Watches <paramref name="owner"/> (this test process unless a test says otherwise); when it
    /// is gone, sends <paramref name="signal"/> to <paramref name="processIds"/>, waits up to 10 s
    /// for them to end, then deletes <paramref name="directory"/>.
    /// </summary>
    /// <param name="processIds">The processes to end.</param>
    /// <param name="directory">A directory of the fixture's own to delete afterwards, or null.</param>
    /// <param name="signal">KILL for most; QUIT for a postmaster (its immediate shutdown, which also ends its backends).</param>
    /// <param name="owner">The process whose death ends the fixture.</param>
    public static Reaper Watch(IReadOnlyCollection<int> processIds, string? directory, string signal = "KILL", int? owner = null)
    {
        ArgumentNullException.ThrowIfNull(processIds);
        var pids = string.Join(' ', processIds.Select(id => id.ToString(CultureInfo.InvariantCulture)));
        var ownerId = (owner ?? Environment.ProcessId).ToString(CultureInfo.InvariantCulture);
        // Arguments reach the script as $1.. ($0 is its name), never spliced into its text.
        const string Script = """
            trap '' INT TERM HUP QUIT
            echo watching
            owner=$1 signal=$2 directory=$3 pids=$4
            while kill -0 "$owner" 2>/dev/null; do sleep 1; done
            kill -s "$signal" $pids 2>/dev/null
            for _ in $(seq 100); do
              alive=; for pid in $pids; do kill -0 "$pid" 2>/dev/null && alive=1; done
              [ -z "$alive" ] && break; sleep 0.1
            done
            kill -s KILL $pids 2>/dev/null
            [ -n "$directory" ] && rm -rf -- "$directory"
            """;
        var start = new ProcessStartInfo("setsid", ["sh", "-c", Script, "openpurse-reaper", ownerId, signal, directory ?? "", pids])
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        // setsid execs sh in place (its caller is no process group leader), so the id is the shell's.
        var watchdog = Process.Start(start) ?? throw new InvalidOperationException("setsid did not start.");
        // Its first line says the signals are ignored from now on: until then a cancelled run could still end it.
        if (watchdog.StandardOutput.ReadLine() != "watching")
        {
            watchdog.Kill();
            throw new InvalidOperationException("The reaper did not start watching.");
        }

        watchdog.ErrorDataReceived += (_, _) => { };
        watchdog.BeginErrorReadLine();
        return new Reaper(watchdog);
    }

    public void Dispose()
    {
        try
        {
            if (!_watchdog.HasExited)
            {
                _watchdog.Kill();
                _watchdog.WaitForExit(5_000);
            }
        }
        catch (InvalidOperationException)
        {
            // Already gone.
        }

        _watchdog.Dispose();
    }
}
