using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace OpenPurse.Testing;

/// <summary>
/// pcscd with vsmartcard's vpcd driver, private to this test process: its own reader.conf, its own
/// client socket, its own network namespace. Readers appear to PC/SC clients in this process as
/// "<see cref="FriendlyName"/> 00 00" (slot 0) and "… 00 01" (slot 1); a test puts a card into slot 0
/// with a connection from <see cref="ConnectSlot"/>.
/// </summary>
/// <remarks>
/// <para>
/// pcscd always binds /run/pcscd/pcscd.comm (it ignores PCSCLITE_CSOCK_NAME), so it runs in a
/// private mount namespace with this process's own run directory bound over /run/pcscd
/// (<c>unshare -m --propagation private</c>); the system's pcscd, if any, is untouched. The client
/// library reads PCSCLITE_CSOCK_NAME once, at the process's first PC/SC call, from the native
/// environment, which <see cref="Environment.SetEnvironmentVariable(string, string)"/> does not
/// reach: so the variable is set with libc's setenv before the first daemon starts, to a path that
/// stays the same for the whole process. Hence one daemon at a time per process.
/// </para>
/// <para>
/// vpcd listens for cards on DEVICENAME's port and the next (slot 1) on every interface. Its
/// "reversed" mode (the card listens, vpcd connects) would keep that to loopback, but Debian 12's
/// driver (virtualsmartcard 0.8) aborts pcscd the moment a reversed-mode card leaves or a slot has
/// none: <c>vicc_connect</c> tests <c>server_sock</c> for non-zero and selects on descriptor -1
/// (fixed upstream in commit 76543ea). So vpcd listens, but in a private network namespace as well
/// (<c>unshare -n</c>): nothing outside it can reach the port, no other test's port can collide
/// with it, and the card's socket is made inside it (setns on a thread of its own).
/// </para>
/// <para>Needs root, for the namespaces; CI runs as root.</para>
/// </remarks>
public sealed class PcscDaemon : IDisposable
{
    /// <summary>The reader's FRIENDLYNAME in reader.conf.</summary>
    public const string FriendlyName = "OpenPurse Test Reader";

    /// <summary>vpcd's port for slot 0, inside the daemon's network namespace (slot 1 is the next).</summary>
    public const int VpcdPort = 35963;

    private const string SocketVariable = "PCSCLITE_CSOCK_NAME";
    private const int StartTimeoutMs = 15_000;
    private const int PollIntervalMs = 50;
    private const int OutputLinesMax = 200;
    private const int CloneNewNet = 0x4000_0000;   // CLONE_NEWNET, sched.h
    private const uint SiocGetInterfaceFlags = 0x8913; // SIOCGIFFLAGS, linux/sockios.h
    private const uint SiocSetInterfaceFlags = 0x8914; // SIOCSIFFLAGS
    private const short InterfaceUp = 0x1;             // IFF_UP, net/if.h
    private const int InterfaceRequestLength = 40;     // sizeof(struct ifreq) on x64: name[16], then the union
    private const int InterfaceFlagsOffset = 16;

    private static readonly Lazy<string> s_directory = new(CreateProcessDirectory, LazyThreadSafetyMode.ExecutionAndPublication);
    private static readonly Lock s_running = new();
    private static PcscDaemon? s_current;

    private readonly Process _process;
    private readonly ConcurrentQueue<string> _output;
    private readonly Reaper _reaper;
    private bool _stopped;

    private PcscDaemon(Process process, ConcurrentQueue<string> output)
    {
        _process = process;
        _output = output;
        // The namespaces and the bind mount die with pcscd; the test process's directory for it goes too.
        _reaper = Reaper.Watch([process.Id], s_directory.Value);
    }

    /// <summary>The name PC/SC gives slot 0: the slot <see cref="ConnectSlot"/> reaches.</summary>
    public static string ReaderName => FriendlyName + " 00 00";

    /// <summary>The name PC/SC gives slot 1, which stays empty.</summary>
    public static string EmptyReaderName => FriendlyName + " 00 01";

    /// <summary>pcscd's client socket: PCSCLITE_CSOCK_NAME, already set in this process (and its children).</summary>
    public static string SocketPath => Path.Combine(s_directory.Value, "run", "pcscd.comm");

    /// <summary>What pcscd has written, the last lines of it, for a failing test's message.</summary>
    public string Output => string.Join('\n', _output);

    /// <summary>
    /// Starts pcscd and waits until <paramref name="listReaders"/> (the client under test, e.g.
    /// the wallet's PC/SC reader list) sees <see cref="ReaderName"/>.
    /// </summary>
    /// <exception cref="InvalidOperationException">A component is missing, this process is not root, or a daemon already runs in this process.</exception>
    /// <exception cref="TimeoutException">The reader did not appear within 15 s.</exception>
    public static PcscDaemon Start(Func<IEnumerable<string>> listReaders)
    {
        Components.Require(Components.Pcscd, Components.Vpcd);
        ArgumentNullException.ThrowIfNull(listReaders);
        if (geteuid() != 0)
        {
            throw new InvalidOperationException("PcscDaemon runs pcscd in private mount and network namespaces, which needs root (CI runs as root). Run the tests as root, or leave OPENPURSE_REQUIRE_INTEGRATION unset to skip them.");
        }

        lock (s_running)
        {
            if (s_current is not null)
            {
                throw new InvalidOperationException("A PcscDaemon already runs in this process: PC/SC clients find one daemon per process. Share it (a collection fixture).");
            }

            var root = s_directory.Value;
            var configuration = Recreate(Path.Combine(root, "conf"));
            var run = Recreate(Path.Combine(root, "run"));
            File.WriteAllText(Path.Combine(configuration, "reader.conf"), $"""
                FRIENDLYNAME "{FriendlyName}"
                DEVICENAME /dev/null:{VpcdPort}
                LIBPATH {Components.PathOf(Components.Vpcd)}

                """);

            var start = new ProcessStartInfo("unshare", [
                "--mount", "--net", "--propagation", "private", "sh", "-c",
                $"mkdir -p /run/pcscd && mount --bind '{run}' /run/pcscd && exec '{Components.PathOf(Components.Pcscd)}' --foreground -c '{configuration}'"])
            {
                RedirectStandardOutput = true,
                RedirectStandardError = true,
            };
            var process = Process.Start(start) ?? throw new InvalidOperationException("unshare did not start.");
            var output = new ConcurrentQueue<string>();
            process.OutputDataReceived += (_, e) => Keep(output, e.Data);
            process.ErrorDataReceived += (_, e) => Keep(output, e.Data);
            process.BeginOutputReadLine();
            process.BeginErrorReadLine();
            var daemon = new PcscDaemon(process, output);
            try
            {
                daemon.WaitForReader(listReaders);
                daemon.InNetworkNamespace(BringLoopbackUp);
            }
            catch
            {
                daemon.Stop();
                throw;
            }

            s_current = daemon;
            return daemon;
        }
    }

    /// <summary>
    /// A TCP connection to vpcd's slot 0, made inside the daemon's network namespace: give it to the
    /// card (<c>VpcdCardConnector.Attach</c>). The card is in the reader while it is open.
    /// </summary>
    public Socket ConnectSlot() => InNetworkNamespace(() =>
    {
        var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        try
        {
            socket.Connect(new IPEndPoint(IPAddress.Loopback, VpcdPort));
            return socket;
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    });

    public void Dispose()
    {
        lock (s_running)
        {
            Stop();
            if (ReferenceEquals(s_current, this))
            {
                s_current = null;
            }
        }
    }

    private void Stop()
    {
        if (_stopped)
        {
            return;
        }

        _stopped = true;
        _reaper.Dispose();
        if (!_process.HasExited)
        {
            // The mount and network namespaces die with pcscd, the bind mount with them.
            _process.Kill();
            _process.WaitForExit(5_000);
        }

        _process.Dispose();
        foreach (var directory in new[] { "conf", "run" })
        {
            var path = Path.Combine(s_directory.Value, directory);
            if (Directory.Exists(path))
            {
                Directory.Delete(path, recursive: true);
            }
        }
    }

    private void WaitForReader(Func<IEnumerable<string>> listReaders)
    {
        var clock = Stopwatch.StartNew();
        Exception? last = null;
        while (clock.ElapsedMilliseconds < StartTimeoutMs)
        {
            if (_process.HasExited)
            {
                throw new InvalidOperationException($"pcscd exited with {_process.ExitCode}: {Output}");
            }

            try
            {
                if (listReaders().Contains(ReaderName, StringComparer.Ordinal))
                {
                    return;
                }
            }
#pragma warning disable CA1031 // Until the daemon is up, any failure of the client is "not yet".
            catch (Exception e)
#pragma warning restore CA1031
            {
                last = e;
            }

            Thread.Sleep(PollIntervalMs);
        }

        throw new TimeoutException($"The reader \"{ReaderName}\" did not appear within {StartTimeoutMs} ms (last client error: {last?.Message ?? "none"}). pcscd said: {Output}");
    }

    // Network namespaces belong to threads: a thread of its own joins pcscd's, does the work there
    // and ends, so no thread of the pool ever leaves the test's namespace. Sockets stay in the
    // namespace they were made in, whichever thread uses them later.
    private T InNetworkNamespace<T>(Func<T> action)
    {
        T result = default!;
        Exception? failure = null;
        var thread = new Thread(() =>
        {
            try
            {
                using var target = File.OpenHandle($"/proc/{_process.Id}/ns/net");
                var ours = new FileInfo("/proc/thread-self/ns/net").LinkTarget;
                var theirs = new FileInfo($"/proc/{_process.Id}/ns/net").LinkTarget;
                if (ours is null || string.Equals(ours, theirs, StringComparison.Ordinal))
                {
                    throw new InvalidOperationException($"pcscd runs in this process's own network namespace ({ours}); unshare --net did not take.");
                }

                if (setns(target, CloneNewNet) != 0)
                {
                    throw new InvalidOperationException($"setns into pcscd's network namespace failed (errno {Marshal.GetLastPInvokeError()}).");
                }

                result = action();
            }
#pragma warning disable CA1031 // Handed back to the calling thread.
            catch (Exception e)
#pragma warning restore CA1031
            {
                failure = e;
            }
        })
        {
            IsBackground = true,
            Name = "pcscd network namespace",
        };
        thread.Start();
        thread.Join();
        if (failure is not null)
        {
            throw new InvalidOperationException($"In pcscd's network namespace: {failure.Message}", failure);
        }

        return result;
    }

    private void InNetworkNamespace(Action action) => InNetworkNamespace(() =>
    {
        action();
        return true;
    });

    // A new network namespace has its loopback interface down; vpcd's listener is reachable on
    // 127.0.0.1 only once it is up (what `ip link set lo up` does, without needing iproute2).
    private static void BringLoopbackUp()
    {
        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
        var request = new byte[InterfaceRequestLength];
        "lo"u8.CopyTo(request);
        if (ioctl((int)socket.Handle, SiocGetInterfaceFlags, request) != 0)
        {
            throw new InvalidOperationException($"SIOCGIFFLAGS on lo failed (errno {Marshal.GetLastPInvokeError()}).");
        }

        var flags = BitConverter.ToInt16(request, InterfaceFlagsOffset);
        BitConverter.TryWriteBytes(request.AsSpan(InterfaceFlagsOffset), (short)(flags | InterfaceUp));
        if (ioctl((int)socket.Handle, SiocSetInterfaceFlags, request) != 0)
        {
            throw new InvalidOperationException($"SIOCSIFFLAGS on lo failed (errno {Marshal.GetLastPInvokeError()}).");
        }
    }

    private static string Recreate(string path)
    {
        if (Directory.Exists(path))
        {
            Directory.Delete(path, recursive: true);
        }

        Directory.CreateDirectory(path, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        return path;
    }

    private static string CreateProcessDirectory()
    {
        var directory = Directory.CreateTempSubdirectory("openpurse-pcscd-").FullName;
        var socket = Path.Combine(directory, "run", "pcscd.comm");
        Environment.SetEnvironmentVariable(SocketVariable, socket);
        if (setenv(SocketVariable, socket, 1) != 0)
        {
            throw new InvalidOperationException($"setenv({SocketVariable}) failed.");
        }

        AppDomain.CurrentDomain.ProcessExit += (_, _) =>
        {
            try
            {
                Directory.Delete(directory, recursive: true);
            }
            catch (IOException)
            {
                // A temporary directory left behind is not worth failing the run for.
            }
        };
        return directory;
    }

    private static void Keep(ConcurrentQueue<string> output, string? line)
    {
        if (line is null)
        {
            return;
        }

        output.Enqueue(line);
        while (output.Count > OutputLinesMax)
        {
            output.TryDequeue(out _);
        }
    }

    [DllImport("libc", SetLastError = true, BestFitMapping = false, ThrowOnUnmappableChar = true)]
    private static extern int setenv([MarshalAs(UnmanagedType.LPUTF8Str)] string name, [MarshalAs(UnmanagedType.LPUTF8Str)] string value, int overwrite);

    [DllImport("libc")]
    private static extern uint geteuid();

    [DllImport("libc", SetLastError = true)]
    private static extern int setns(SafeFileHandle fd, int nstype);

    [DllImport("libc", SetLastError = true)]
    private static extern int ioctl(int fd, nuint request, byte[] argument);
}
