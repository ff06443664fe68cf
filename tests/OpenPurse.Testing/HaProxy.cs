using System.Diagnostics;
using System.Net;
using System.Net.Sockets;

namespace OpenPurse.Testing;

/// <summary>
/// HAProxy in front of operator nodes, in a private temporary directory, on a free loopback port:
/// HTTP mode, round robin per request, health checks on /health, a failed node's requests
/// redispatched to another. With TLS it terminates the clients' TLS with the deployment's
/// certificate and re-encrypts to the nodes, verifying them against the deployment's CA.
/// </summary>
public sealed class HaProxy : IDisposable
{
    // Where FreePort draws from: above the well-known and registered ports most services use.
    private const int LowestPort = 10_000;

    private static readonly HashSet<int> s_given = [];

    private readonly Process _process;
    private readonly string _directory;
    private readonly Reaper _reaper;

    private HaProxy(Process process, string directory, Uri url)
    {
        _process = process;
        _directory = directory;
        Url = url;
        _reaper = Reaper.Watch([process.Id], directory);
    }

    /// <summary>The balancer's address, what wallets and stores use.</summary>
    public Uri Url { get; }

    /// <param name="nodes">The operator nodes' base addresses (http or https on 127.0.0.1).</param>
    /// <param name="certificatePemPath">With TLS: the balancer's certificate chain (PEM).</param>
    /// <param name="keyPemPath">With TLS: its private key (PEM).</param>
    /// <param name="caPath">With TLS: the CA that signed the nodes' certificates.</param>
    public static HaProxy Start(IReadOnlyList<Uri> nodes, string? certificatePemPath = null, string? keyPemPath = null, string? caPath = null)
    {
        Components.Require(Components.HaProxy);
        var directory = Directory.CreateTempSubdirectory("openpurse-haproxy-").FullName;
        var port = FreePort();
        var tls = certificatePemPath is not null;
        string bindOptions = "";
        if (tls)
        {
            // HAProxy wants certificate and key in one PEM file.
            var combined = Path.Combine(directory, "balancer.pem");
            File.WriteAllText(combined, File.ReadAllText(certificatePemPath!) + File.ReadAllText(keyPemPath!));
            File.SetUnixFileMode(combined, UnixFileMode.UserRead | UnixFileMode.UserWrite);
            bindOptions = $" ssl crt {combined}";
        }

        var servers = string.Join('\n', nodes.Select((node, i) =>
            $"    server node{i + 1} 127.0.0.1:{node.Port} check inter 500 fall 2 rise 1"
            + (node.Scheme == "https" ? $" ssl verify required ca-file {caPath} verifyhost {node.Host}" : "")));
        var config = $"""
            global
                maxconn 2000

            defaults
                mode http
                timeout connect 2s
                timeout client 30s
                timeout server 30s
                retries 3
                option redispatch
                retry-on conn-failure empty-response response-timeout

            frontend operators
                bind 127.0.0.1:{port}{bindOptions}
                default_backend nodes

            backend nodes
                balance roundrobin
                option httpchk GET /health
                http-check expect status 200
            {servers}
            """;
        var configPath = Path.Combine(directory, "haproxy.cfg");
        // HAProxy refuses a configuration whose last line has no LF ("file might have been truncated").
        File.WriteAllText(configPath, config + "\n");
        var process = Process.Start(new ProcessStartInfo(Components.PathOf(Components.HaProxy), ["-db", "-f", configPath])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        }) ?? throw new InvalidOperationException("HAProxy did not start.");
        process.OutputDataReceived += (_, _) => { };
        process.ErrorDataReceived += (_, _) => { };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        WaitForPort(port, process);
        return new HaProxy(process, directory, new Uri($"{(tls ? "https" : "http")}://127.0.0.1:{port}/"));
    }

    public void Dispose()
    {
        _reaper.Dispose();
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
            _process.WaitForExit(5_000);
        }

        _process.Dispose();
        Directory.Delete(_directory, recursive: true);
    }

    /// <summary>
    /// A port nobody listens on now, for a server a test starts later. Drawn below the kernel's
    /// range of ephemeral ports: a port from that range (what binding port 0 gives) may go to any
    /// outgoing connection between the probe and the server's bind, and on a busy machine one did.
    /// No port is given twice by this process.
    /// </summary>
    public static int FreePort()
    {
        var below = EphemeralPortsFrom();
        for (var attempt = 0; attempt < 200; attempt++)
        {
            var port = Random.Shared.Next(LowestPort, below);
            lock (s_given)
            {
                if (!s_given.Add(port))
                {
                    continue;
                }
            }

            try
            {
                using var listener = new TcpListener(IPAddress.Loopback, port);
                listener.Start();
                return port;
            }
            catch (SocketException)
            {
                // Somebody listens there: draw again.
            }
        }

        throw new InvalidOperationException($"No free port between {LowestPort} and {below} in 200 draws.");
    }

    // The first ephemeral port (net.ipv4.ip_local_port_range); Linux's default when it cannot be read.
    private static int EphemeralPortsFrom()
    {
        try
        {
            var range = File.ReadAllText("/proc/sys/net/ipv4/ip_local_port_range").Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries);
            return int.Parse(range[0], System.Globalization.CultureInfo.InvariantCulture) is var first && first > LowestPort + 1_000 ? first : 32_768;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or FormatException or IndexOutOfRangeException)
        {
            return 32_768;
        }
    }

    private static void WaitForPort(int port, Process process)
    {
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (DateTime.UtcNow < deadline)
        {
            if (process.HasExited)
            {
                throw new InvalidOperationException($"HAProxy exited with {process.ExitCode}.");
            }

            try
            {
                using var client = new TcpClient();
                client.Connect(IPAddress.Loopback, port);
                return;
            }
            catch (SocketException)
            {
                Thread.Sleep(50);
            }
        }

        throw new TimeoutException("HAProxy did not start listening within 10 s.");
    }
}
