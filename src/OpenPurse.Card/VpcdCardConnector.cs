using System.Buffers.Binary;
using System.Diagnostics;
using System.Net.Sockets;
using OpenPurse.Protocol.Apdu;

namespace OpenPurse.Card;

/// <summary>
/// Puts an <see cref="EmulatedCard"/> into a slot of vsmartcard's vpcd, the reader driver pcscd
/// loads from <c>/etc/reader.conf.d/vpcd</c>, so that every PC/SC program (the wallet's
/// <c>--reader</c>, <c>pcsc_scan</c>, <c>opensc-tool</c>) sees the card in a reader. The card stays
/// in the slot while the connection lasts; closing it is pulling the card out.
/// </summary>
/// <remarks>
/// <para>
/// The protocol is vpcd's (virtualsmartcard <c>src/vpcd/vpcd.h</c>, <c>vpcd.c</c>): every message
/// in both directions is a 2-byte big-endian length and that many bytes. A 1-byte message from the
/// driver is a control code — power off (00), power on (01), reset (02), which get no answer, and
/// GET ATR (04), answered with the ATR; the driver polls presence with GET ATR. Any longer message
/// is a command APDU, answered with one response APDU.
/// </para>
/// <para>
/// The card connects to the driver, which listens (DEVICENAME <c>/dev/null:PORT</c>, the Debian
/// default, port 35963 for slot 0). vpcd also has a "reversed" mode in which the card listens and
/// the driver connects, but Debian 12's driver (virtualsmartcard 0.8) aborts pcscd as soon as such
/// a card leaves or a slot has none (<c>vicc_connect</c> tests <c>server_sock</c> for non-zero, so
/// it selects on descriptor -1; fixed upstream in commit 76543ea, virtualsmartcard 0.9), so
/// OpenPurse does not offer it.
/// </para>
/// </remarks>
public sealed class VpcdCardConnector : IDisposable
{
    /// <summary>vpcd's default port (VPCDPORT, 0x8C7B): slot 0 of the stock reader "Virtual PCD".</summary>
    public const int DefaultPort = 35963;

    /// <summary>Length of a control message.</summary>
    internal const int ControlLength = 1;

    /// <summary>Power off: the card loses its session (no answer).</summary>
    internal const byte ControlPowerOff = 0x00;

    /// <summary>Power on: a cold reset (no answer).</summary>
    internal const byte ControlPowerOn = 0x01;

    /// <summary>Warm reset (no answer).</summary>
    internal const byte ControlReset = 0x02;

    /// <summary>GET ATR: answered with the ATR; also the driver's presence poll.</summary>
    internal const byte ControlGetAtr = 0x04;

    /// <summary>
    /// The longest command the card reads: a short APDU with 255 data bytes, CLA INS P1 P2 Lc data Le.
    /// A longer message (an extended APDU, which the card does not speak) is skipped and answered
    /// 6700, as a card would, without being held in memory.
    /// </summary>
    internal const int CommandLengthMax = 4 + 1 + CommandApdu.DataLengthMax + 1;

    /// <summary>The longest answer: 256 data bytes and the status word.</summary>
    internal const int AnswerLengthMax = ResponseApdu.DataLengthMax + 2;

    private const int HeaderLength = 2;

    private readonly Lock _lock = new();
    private readonly EmulatedCard _card;
    private readonly Stream _connection;
    private readonly CancellationTokenSource _stop = new();
    private readonly TaskCompletionSource _removed = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private (byte Instruction, bool AfterCardProcessed)? _pullOn;
    private bool _pulled;

    private VpcdCardConnector(EmulatedCard card, Stream connection)
    {
        _card = card;
        _connection = connection;
    }

    /// <summary>Whether the card is still in the slot: false once pulled or once the driver closed the connection.</summary>
    public bool IsInserted
    {
        get
        {
            lock (_lock)
            {
                return !_pulled && !_removed.Task.IsCompleted;
            }
        }
    }

    /// <summary>Completes when the card has left the slot, whichever side ended the connection.</summary>
    public Task Removed => _removed.Task;

    /// <summary>
    /// Inserts the card: connects to vpcd's slot at <paramref name="host"/>:<paramref name="port"/>
    /// and answers the driver until the card is pulled or the driver goes away.
    /// </summary>
    /// <param name="card">The card; it stays the caller's, and is not disposed with the connector.</param>
    /// <param name="host">Where pcscd runs: 127.0.0.1 for the local reader.</param>
    /// <param name="port">The slot's port: <see cref="DefaultPort"/> for slot 0 of the stock configuration, one more for slot 1.</param>
    /// <param name="cancellationToken">Cancels the connection attempt.</param>
    /// <exception cref="SocketException">Nothing listens there: pcscd does not run or has no vpcd reader on that port.</exception>
    public static async Task<VpcdCardConnector> ConnectAsync(EmulatedCard card, string host, int port = DefaultPort, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(card);
        ArgumentException.ThrowIfNullOrEmpty(host);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(port);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(port, ushort.MaxValue);
        var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        try
        {
            await socket.ConnectAsync(host, port, cancellationToken).ConfigureAwait(false);
        }
        catch
        {
            socket.Dispose();
            throw;
        }

        return Attach(card, new NetworkStream(socket, ownsSocket: true));
    }

    /// <summary>
    /// Inserts the card over a connection to vpcd that is already open (a socket made in another
    /// network namespace, a test's peer). The connector owns the stream from here on.
    /// </summary>
    /// <param name="card">The card; it stays the caller's.</param>
    /// <param name="connection">A readable and writable stream to the driver; for sockets, set NoDelay (every message waits for its answer).</param>
    public static VpcdCardConnector Attach(EmulatedCard card, Stream connection)
    {
        ArgumentNullException.ThrowIfNull(card);
        ArgumentNullException.ThrowIfNull(connection);
        if (!connection.CanRead || !connection.CanWrite)
        {
            throw new ArgumentException("The connection to vpcd must be readable and writable.", nameof(connection));
        }

        var connector = new VpcdCardConnector(card, connection);
        _ = Task.Run(connector.ServeAsync);
        return connector;
    }

    /// <summary>
    /// Pulls the card out of the reader at once: the connection closes and no further message is
    /// answered, not even one the card is working on. The driver sees the card gone at its next
    /// message or presence poll.
    /// </summary>
    public void Pull()
    {
        lock (_lock)
        {
            if (_pulled)
            {
                return;
            }

            _pulled = true;
        }

        _stop.Cancel();
        _connection.Dispose();
    }

    /// <summary>
    /// Arms a tear, for tests and demonstrations: the card is pulled at the next command with
    /// instruction byte <paramref name="instruction"/> — before the card sees it, or, with
    /// <paramref name="afterCardProcessed"/>, after the card processed it but before its answer leaves.
    /// Either way the host never learns what the card did.
    /// </summary>
    public void PullOnNext(byte instruction, bool afterCardProcessed)
    {
        lock (_lock)
        {
            _pullOn = (instruction, afterCardProcessed);
        }
    }

    /// <summary>Pulls the card (<see cref="Pull"/>). The card itself stays open.</summary>
    public void Dispose()
    {
        Pull();
        _stop.Dispose();
    }

    // One message in, at most one answer out, until the connection ends: the loop is bounded by
    // the connection's life, and every message by CommandLengthMax.
    private async Task ServeAsync()
    {
        var header = new byte[HeaderLength];
        var message = new byte[CommandLengthMax];
        try
        {
            var cancellationToken = _stop.Token;
            while (!cancellationToken.IsCancellationRequested)
            {
                await _connection.ReadExactlyAsync(header, cancellationToken).ConfigureAwait(false);
                int length = BinaryPrimitives.ReadUInt16BigEndian(header);
                if (length == 0)
                {
                    // vpcd never sends an empty message (vicc_transmit sends nothing then): the peer
                    // does not speak the protocol, so the card leaves rather than guess.
                    return;
                }

                if (length > CommandLengthMax)
                {
                    await SkipAsync(length, message, cancellationToken).ConfigureAwait(false);
                    await AnswerAsync(ResponseApdu.Of(StatusWord.WrongLength).ToBytes(), cancellationToken).ConfigureAwait(false);
                    continue;
                }

                Debug.Assert(length is > 0 and <= CommandLengthMax, "What is read fits the buffer.");
                var received = message.AsMemory(0, length);
                await _connection.ReadExactlyAsync(received, cancellationToken).ConfigureAwait(false);
                if (length == ControlLength)
                {
                    if (Control(message[0]) is { } atr)
                    {
                        await AnswerAsync(atr, cancellationToken).ConfigureAwait(false);
                    }

                    continue;
                }

                if (Process(received.Span) is not { } answer)
                {
                    return; // Pulled: the answer, if any, never leaves.
                }

                await AnswerAsync(answer, cancellationToken).ConfigureAwait(false);
            }
        }
        catch (Exception e) when (e is IOException or EndOfStreamException or ObjectDisposedException or OperationCanceledException or SocketException)
        {
            // The driver closed the connection (pcscd stopped) or the card was pulled: either way
            // the card is out of the reader, which is no error of the card's.
        }
        finally
        {
            Pull();
            _removed.TrySetResult();
        }
    }

    // Power and reset lose the session and selection as on a real card (ISO 7816-3 resets);
    // memory stays. Returns the ATR for GET ATR, null for the codes that get no answer.
    private byte[]? Control(byte code)
    {
        switch (code)
        {
            case ControlPowerOff:
            case ControlPowerOn:
            case ControlReset:
                _card.Reset();
                return null;
            case ControlGetAtr:
                return EmulatedCard.Atr.ToArray();
            default:
                // Unknown codes get no answer, as vsmartcard's own card (vicc) does.
                return null;
        }
    }

    // Returns the card's answer, or null when the armed tear pulled the card.
    private byte[]? Process(ReadOnlySpan<byte> command)
    {
        bool? pullAfterCard = null;
        lock (_lock)
        {
            if (_pullOn is { } pullOn && command.Length >= 2 && command[1] == pullOn.Instruction)
            {
                pullAfterCard = pullOn.AfterCardProcessed;
                _pullOn = null;
            }
        }

        if (pullAfterCard is false)
        {
            Pull();
            return null;
        }

        var answer = _card.Transmit(command);
        if (pullAfterCard is true)
        {
            Pull();
            return null;
        }

        return answer;
    }

    private async Task SkipAsync(int length, byte[] buffer, CancellationToken cancellationToken)
    {
        Debug.Assert(length <= ushort.MaxValue, "A message length has two bytes.");
        for (var left = length; left > 0;)
        {
            var chunk = Math.Min(left, buffer.Length);
            await _connection.ReadExactlyAsync(buffer.AsMemory(0, chunk), cancellationToken).ConfigureAwait(false);
            left -= chunk;
        }
    }

    // Length and answer go in one write, as vpcd sends its own messages, so that no peer waits on half a message.
    private async Task AnswerAsync(byte[] answer, CancellationToken cancellationToken)
    {
        Debug.Assert(answer.Length is > 0 and <= AnswerLengthMax, "An answer is a response APDU or an ATR.");
        var frame = new byte[HeaderLength + answer.Length];
        BinaryPrimitives.WriteUInt16BigEndian(frame, (ushort)answer.Length);
        answer.CopyTo(frame, HeaderLength);
        lock (_lock)
        {
            if (_pulled)
            {
                return;
            }
        }

        await _connection.WriteAsync(frame, cancellationToken).ConfigureAwait(false);
        await _connection.FlushAsync(cancellationToken).ConfigureAwait(false);
    }
}
