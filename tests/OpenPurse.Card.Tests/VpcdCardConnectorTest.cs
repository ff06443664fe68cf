using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using OpenPurse.Protocol.Apdu;
using OpenPurse.Protocol.Purse;

namespace OpenPurse.Card.Tests;

/// <summary>
/// vpcd's socket protocol as the card speaks it, against a fake driver on loopback: 2-byte
/// big-endian lengths both ways, 1-byte control codes, one answer per APDU (virtualsmartcard vpcd.h).
/// </summary>
public sealed class VpcdCardConnectorTest : IDisposable
{
    private readonly CardKit _kit = new();
    private readonly FakeVpcd _vpcd;
    private readonly VpcdCardConnector _connector;

    public VpcdCardConnectorTest()
    {
        (_vpcd, _connector) = FakeVpcd.InsertAsync(_kit.Card).GetAwaiter().GetResult();
    }

    [Fact]
    public void GetAtr_Connected_AnswersTheCardsAtrWithT1()
    {
        _vpcd.SendControl(VpcdCardConnector.ControlGetAtr);

        var atr = _vpcd.Receive();

        Assert.Equal(EmulatedCard.Atr.ToArray(), atr);
        Assert.Equal(0x01, atr[3] & 0x0F); // TD2: T=1, what pcscd's SCardConnect(T1) needs.
    }

    [Fact]
    public void Command_SelectAndGetData_SameBytesAsInProcess()
    {
        var select = CardHostSession.Select().ToBytes();
        var getData = CardHostSession.GetData().ToBytes();

        _vpcd.Send(select);
        var selected = _vpcd.Receive();
        _vpcd.Send(getData);
        var status = _vpcd.Receive();

        Assert.Equal(_kit.Card.Transmit(select), selected);
        Assert.Equal(_kit.Card.Transmit(getData), status);
        Assert.Equal([0x90, 0x00], status[^2..]);
    }

    [Theory]
    [InlineData(VpcdCardConnector.ControlPowerOff)]
    [InlineData(VpcdCardConnector.ControlPowerOn)]
    [InlineData(VpcdCardConnector.ControlReset)]
    public void Control_PowerOrReset_NoAnswerAndSelectionLost(byte code)
    {
        _vpcd.Send(CardHostSession.Select().ToBytes());
        Assert.Equal([0x90, 0x00], _vpcd.Receive()[^2..]);

        _vpcd.SendControl(code);
        _vpcd.Send(CardHostSession.GetData().ToBytes());

        // The first answer after the control is GET DATA's: the control got none, and the reset
        // took the selection, as a card's reset does.
        Assert.Equal(Sw(StatusWord.ConditionsNotSatisfied), _vpcd.Receive());
        Assert.True(_connector.IsInserted);
    }

    [Fact]
    public void Control_UnknownCode_IgnoredAndConnectionStays()
    {
        _vpcd.SendControl(0x03);
        _vpcd.SendControl(VpcdCardConnector.ControlGetAtr);

        Assert.Equal(EmulatedCard.Atr.ToArray(), _vpcd.Receive());
    }

    [Fact]
    public void Command_AtLengthMax_ReachesTheCard()
    {
        // SELECT by an AID of 255 bytes, with Le: the longest short APDU.
        var command = new CommandApdu(0x00, PurseInstruction.Select, 0x04, 0x00, new byte[CommandApdu.DataLengthMax], le: 0).ToBytes();
        Assert.Equal(VpcdCardConnector.CommandLengthMax, command.Length);

        _vpcd.Send(command);

        Assert.Equal(_kit.Card.Transmit(command), _vpcd.Receive());
    }

    [Theory]
    [InlineData(VpcdCardConnector.CommandLengthMax + 1)]
    [InlineData(ushort.MaxValue)]
    public void Command_LongerThanMax_Answers6700AndConnectionStays(int length)
    {
        _vpcd.Send(new byte[length]);

        Assert.Equal(Sw(StatusWord.WrongLength), _vpcd.Receive());
        _vpcd.SendControl(VpcdCardConnector.ControlGetAtr);
        Assert.Equal(EmulatedCard.Atr.ToArray(), _vpcd.Receive());
    }

    [Fact]
    public void Command_SplitIntoSingleBytes_AnsweredOnce()
    {
        var command = CardHostSession.Select().ToBytes();
        var frame = new byte[2 + command.Length];
        BinaryPrimitives.WriteUInt16BigEndian(frame, (ushort)command.Length);
        command.CopyTo(frame, 2);

        foreach (var b in frame)
        {
            _vpcd.SendRaw([b]);
            Thread.Sleep(2);
        }

        Assert.Equal([0x90, 0x00], _vpcd.Receive()[^2..]);
    }

    [Fact]
    public async Task Message_Empty_CardLeaves()
    {
        _vpcd.SendRaw([0x00, 0x00]);

        await _connector.Removed.WaitAsync(TimeSpan.FromSeconds(5));
        Assert.False(_connector.IsInserted);
        Assert.True(_vpcd.IsClosedByCard());
    }

    [Fact]
    public async Task Pull_Inserted_ConnectionClosesAndNothingMoreIsAnswered()
    {
        _connector.Pull();

        await _connector.Removed.WaitAsync(TimeSpan.FromSeconds(5));
        Assert.False(_connector.IsInserted);
        Assert.True(_vpcd.IsClosedByCard());
    }

    [Fact]
    public void PullOnNext_BeforeCard_CardNeverSawTheCommand()
    {
        _connector.PullOnNext(PurseInstruction.Select, afterCardProcessed: false);

        _vpcd.Send(CardHostSession.Select().ToBytes());

        Assert.True(_vpcd.IsClosedByCard());
        Assert.False(_connector.IsInserted);
        // Not selected: the SELECT never reached the card.
        Assert.Equal(Sw(StatusWord.ConditionsNotSatisfied), _kit.Card.Transmit(CardHostSession.GetData().ToBytes()));
    }

    [Fact]
    public void PullOnNext_AfterCard_CardProcessedButNoAnswerLeft()
    {
        _connector.PullOnNext(PurseInstruction.Select, afterCardProcessed: true);

        _vpcd.Send(CardHostSession.Select().ToBytes());

        Assert.True(_vpcd.IsClosedByCard());
        // Selected: the card did the work, the driver never heard of it.
        Assert.Equal(StatusWord.Ok, ResponseApdu.Parse(_kit.Card.Transmit(CardHostSession.GetData().ToBytes())).Status);
    }

    [Fact]
    public void PullOnNext_OtherInstruction_AnsweredNormally()
    {
        _connector.PullOnNext(PurseInstruction.Debit, afterCardProcessed: false);

        _vpcd.Send(CardHostSession.Select().ToBytes());

        Assert.Equal([0x90, 0x00], _vpcd.Receive()[^2..]);
        Assert.True(_connector.IsInserted);
    }

    [Fact]
    public async Task DriverCloses_CardLeaves()
    {
        _vpcd.Dispose();

        await _connector.Removed.WaitAsync(TimeSpan.FromSeconds(5));
        Assert.False(_connector.IsInserted);
    }

    [Fact]
    public async Task ConnectAsync_NothingListening_SocketException()
    {
        int port;
        using (var listener = new TcpListener(IPAddress.Loopback, 0))
        {
            listener.Start();
            port = ((IPEndPoint)listener.LocalEndpoint).Port;
        }

        await Assert.ThrowsAsync<SocketException>(() => VpcdCardConnector.ConnectAsync(_kit.Card, "127.0.0.1", port));
    }

    [Fact]
    public void Attach_StreamNotWritable_Throws()
    {
        using var stream = new MemoryStream([], writable: false);

        Assert.Throws<ArgumentException>(() => VpcdCardConnector.Attach(_kit.Card, stream));
    }

    public void Dispose()
    {
        _connector.Dispose();
        _vpcd.Dispose();
        _kit.Dispose();
    }

    private static byte[] Sw(StatusWord status) => [(byte)((ushort)status >> 8), (byte)status];

    /// <summary>The driver's side of one slot: it listens, the card connects, as with vpcd's default DEVICENAME /dev/null:PORT.</summary>
    private sealed class FakeVpcd : IDisposable
    {
        private const int ReceiveTimeoutMs = 5_000;

        private readonly Socket _socket;

        private FakeVpcd(Socket socket)
        {
            _socket = socket;
            _socket.ReceiveTimeout = ReceiveTimeoutMs;
            _socket.NoDelay = true;
        }

        public static async Task<(FakeVpcd Vpcd, VpcdCardConnector Connector)> InsertAsync(EmulatedCard card)
        {
            using var listener = new TcpListener(IPAddress.Loopback, 0);
            listener.Start();
            var accepted = listener.AcceptSocketAsync();
            var connector = await VpcdCardConnector.ConnectAsync(card, "127.0.0.1", ((IPEndPoint)listener.LocalEndpoint).Port);
            return (new FakeVpcd(await accepted), connector);
        }

        public void SendControl(byte code) => Send([code]);

        public void Send(byte[] message)
        {
            var frame = new byte[2 + message.Length];
            BinaryPrimitives.WriteUInt16BigEndian(frame, (ushort)message.Length);
            message.CopyTo(frame, 2);
            SendRaw(frame);
        }

        public void SendRaw(byte[] bytes) => _socket.Send(bytes);

        public byte[] Receive()
        {
            var header = ReceiveExactly(2);
            Assert.NotNull(header);
            var body = ReceiveExactly(BinaryPrimitives.ReadUInt16BigEndian(header));
            Assert.NotNull(body);
            return body;
        }

        /// <summary>True when the card closed the connection without another byte.</summary>
        public bool IsClosedByCard()
        {
            try
            {
                return _socket.Receive(new byte[1]) == 0;
            }
            catch (SocketException e) when (e.SocketErrorCode == SocketError.ConnectionReset)
            {
                return true;
            }
        }

        public void Dispose() => _socket.Dispose();

        private byte[]? ReceiveExactly(int length)
        {
            var buffer = new byte[length];
            for (var offset = 0; offset < length;)
            {
                var read = _socket.Receive(buffer, offset, length - offset, SocketFlags.None);
                if (read == 0)
                {
                    return null;
                }

                offset += read;
            }

            return buffer;
        }
    }
}
