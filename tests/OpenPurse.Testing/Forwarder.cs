using System.Net;
using System.Net.Sockets;

namespace OpenPurse.Testing;

/// <summary>
/// A TCP forwarder on a free port of 127.0.0.1 to a port of the same host: the cable between a
/// machine and its network, which a test can pull (<see cref="Cut"/>) and plug in again
/// (<see cref="Heal"/>).
/// </summary>
/// <remarks>
/// A pulled cable resets nothing: the peers' sockets stay open and simply stop hearing from each
/// other until their own timeouts give up. So a cut forwarder keeps its connections open and drops
/// every byte either way; connections made while it is cut are accepted and hear nothing either.
/// Healing closes those held connections (their peers' state is stale by then) and forwards anew.
/// </remarks>
public sealed class Forwarder : IDisposable
{
    private const int BufferSize = 16 * 1024;

    private readonly TcpListener _listener;
    private readonly int _targetPort;
    private readonly CancellationTokenSource _stopping = new();
    private readonly Lock _lock = new();
    private readonly HashSet<Link> _links = [];
    private bool _cut;

    public Forwarder(int targetPort)
    {
        _targetPort = targetPort;
        _listener = new TcpListener(IPAddress.Loopback, 0);
        _listener.Start();
        Port = ((IPEndPoint)_listener.LocalEndpoint).Port;
        _ = AcceptAsync();
    }

    /// <summary>The port clients connect to.</summary>
    public int Port { get; }

    /// <summary>Stops passing bytes on every connection, open or new, holding them open.</summary>
    public void Cut()
    {
        lock (_lock)
        {
            _cut = true;
            foreach (var link in _links)
            {
                link.Severed = true;
            }
        }
    }

    /// <summary>Closes the connections held while cut and forwards new ones again.</summary>
    public void Heal()
    {
        Link[] held;
        lock (_lock)
        {
            _cut = false;
            held = [.. _links.Where(link => link.Severed)];
        }

        foreach (var link in held)
        {
            Close(link);
        }
    }

    public void Dispose()
    {
        _stopping.Cancel();
        _listener.Stop();
        Link[] all;
        lock (_lock)
        {
            all = [.. _links];
        }

        foreach (var link in all)
        {
            Close(link);
        }

        _stopping.Dispose();
    }

    private async Task AcceptAsync()
    {
        while (!_stopping.IsCancellationRequested)
        {
            Socket client;
            try
            {
                client = await _listener.AcceptSocketAsync(_stopping.Token);
            }
            catch (Exception e) when (e is OperationCanceledException or SocketException or ObjectDisposedException)
            {
                return;
            }

            var link = new Link(client);
            bool cut;
            lock (_lock)
            {
                _links.Add(link);
                cut = _cut;
                link.Severed = cut;
            }

            _ = cut ? PumpAsync(link, client, null) : ConnectAsync(link);
        }
    }

    private async Task ConnectAsync(Link link)
    {
        var upstream = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        link.Upstream = upstream;
        try
        {
            await upstream.ConnectAsync(new IPEndPoint(IPAddress.Loopback, _targetPort), _stopping.Token);
        }
        catch (Exception e) when (e is OperationCanceledException or SocketException or ObjectDisposedException)
        {
            // Nothing listens behind (a killed server): the client sees its connection refused as a closed one.
            if (!link.Severed)
            {
                Close(link);
            }

            return;
        }

        _ = PumpAsync(link, link.Client, upstream);
        _ = PumpAsync(link, upstream, link.Client);
    }

    // Copies from one side to the other while the link is whole; drops what it reads once severed.
    private async Task PumpAsync(Link link, Socket from, Socket? to)
    {
        var buffer = new byte[BufferSize];
        try
        {
            while (true)
            {
                var read = await from.ReceiveAsync(buffer, SocketFlags.None, _stopping.Token);
                if (read == 0)
                {
                    break;
                }

                if (!link.Severed && to is not null)
                {
                    await to.SendAsync(buffer.AsMemory(0, read), SocketFlags.None, _stopping.Token);
                }
            }
        }
        catch (Exception e) when (e is OperationCanceledException or SocketException or ObjectDisposedException)
        {
            // One side is gone, or the forwarder stops.
        }

        // A closed end is news that a pulled cable would not carry: a severed link waits for Heal.
        if (!link.Severed)
        {
            Close(link);
        }
    }

    private void Close(Link link)
    {
        lock (_lock)
        {
            _links.Remove(link);
        }

        link.Client.Dispose();
        link.Upstream?.Dispose();
    }

    private sealed class Link(Socket client)
    {
        public Socket Client { get; } = client;

        public Socket? Upstream { get; set; }

        private volatile bool _severed;

        public bool Severed
        {
            get => _severed;
            set => _severed = value;
        }
    }
}
