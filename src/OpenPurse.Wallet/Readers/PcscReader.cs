using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;
using System.Text;
using OpenPurse.Protocol.Apdu;
using OpenPurse.Wallet.Purchase;

namespace OpenPurse.Wallet.Readers;

/// <summary>
/// A card in a PC/SC reader, through pcscd (pcsc-lite): a USB reader with a real card, or vpcd's
/// virtual reader with an emulated one (<c>OpenPurse.Card.VpcdCardConnector</c>). Connects with
/// T=1 in shared mode and carries one short APDU at a time.
/// </summary>
/// <remarks>
/// A client finds pcscd at /run/pcscd/pcscd.comm, or where <c>PCSCLITE_CSOCK_NAME</c> says; the
/// library reads that variable once, at the process's first PC/SC call (pcsc-lite
/// <c>getSocketName</c>), from the native environment.
/// </remarks>
public sealed class PcscReader : ICardReader, IDisposable
{
    private readonly Lock _lock = new();
    private readonly string _readerName;
    private nint _context;
    private nint _card;
    private bool _disposed;

    private PcscReader(string readerName, nint context, nint card)
    {
        _readerName = readerName;
        _context = context;
        _card = card;
    }

    /// <inheritdoc/>
    public string Name => $"PC/SC reader \"{_readerName}\"";

    /// <summary>The readers pcscd knows now, in its order; empty when there are none.</summary>
    /// <exception cref="WalletException">pcsc-lite is not installed or pcscd does not run (<c>reader.unavailable</c>).</exception>
    public static IReadOnlyList<string> ListReaders()
    {
        var context = EstablishContext();
        try
        {
            return ListReaders(context);
        }
        finally
        {
            _ = PcscNative.SCardReleaseContext(context);
        }
    }

    /// <summary>Connects to the card in the reader named <paramref name="readerName"/> (as <see cref="ListReaders()"/> gives it).</summary>
    /// <exception cref="WalletException">
    /// No such reader (<c>reader.not_found</c>), no card in it (<c>card.not_found</c>), the card is
    /// held by another program or does not speak T=1 (<c>card.unreadable</c>), pcscd is unreachable
    /// (<c>reader.unavailable</c>).
    /// </exception>
    public static PcscReader Open(string readerName)
    {
        ArgumentException.ThrowIfNullOrEmpty(readerName);
        var name = NulTerminated(readerName);
        if (name.Length > PcscNative.ReaderNameBytesMax)
        {
            throw new WalletException(ReaderErrors.NotFound, $"No reader is named \"{readerName}\": PC/SC reader names are shorter. `openpurse readers` lists them.");
        }

        var context = EstablishContext();
        try
        {
            var result = PcscNative.SCardConnect(context, name, new CULong(PcscNative.ShareShared), new CULong(PcscNative.ProtocolT1), out var card, out var protocol);
            var code = PcscNative.Code(result);
            switch (code)
            {
                case PcscError.Success:
                    break;
                case PcscError.UnknownReader or PcscError.ReaderUnavailable:
                    var known = ListReaders(context);
                    if (known.Contains(readerName, StringComparer.Ordinal))
                    {
                        throw new WalletException(ReaderErrors.Failed, $"The reader \"{readerName}\" is there but not available now ({PcscError.Name(code)}). Try again, or plug it in again.");
                    }

                    throw new WalletException(
                        ReaderErrors.NotFound,
                        known.Count == 0
                            ? $"No reader is named \"{readerName}\": PC/SC sees no reader at all. Plug one in, or start pcscd with its configuration."
                            : $"No reader is named \"{readerName}\". The readers are: {string.Join(", ", known.Select(k => $"\"{k}\""))}.");
                case PcscError.NoSmartcard or PcscError.RemovedCard or PcscError.UnpoweredCard or PcscError.UnresponsiveCard:
                    throw new WalletException(WalletErrors.CardNotFound, $"There is no card in reader \"{readerName}\" ({PcscError.Name(code)}). Insert it and try again.");
                case PcscError.SharingViolation:
                    throw new WalletException(WalletErrors.CardUnreadable, $"Another program holds the card in reader \"{readerName}\" exclusively. Close it and try again.");
                case PcscError.ProtoMismatch or PcscError.UnsupportedCard or PcscError.CardUnsupported:
                    throw new WalletException(WalletErrors.CardUnreadable, $"The card in reader \"{readerName}\" does not speak T=1 ({PcscError.Name(code)}): it is not an OpenPurse card.");
                default:
                    throw Unavailable(code, "SCardConnect");
            }

            if (protocol.Value != PcscNative.ProtocolT1)
            {
                _ = PcscNative.SCardDisconnect(card, new CULong(PcscNative.LeaveCard));
                throw new WalletException(WalletErrors.CardUnreadable, $"The card in reader \"{readerName}\" was connected with protocol {protocol.Value}, not T=1.");
            }

            return new PcscReader(readerName, context, card);
        }
        catch
        {
            _ = PcscNative.SCardReleaseContext(context);
            throw;
        }
    }

    /// <inheritdoc/>
    /// <exception cref="CardRemovedException">The card left the reader, or the reader or pcscd went away, before its answer came: what it did is unknown.</exception>
    /// <exception cref="PcscException">Any other PC/SC failure, with pcsc-lite's name for it.</exception>
    public ResponseApdu Transmit(CommandApdu command)
    {
        ArgumentNullException.ThrowIfNull(command);
        var send = command.ToBytes();
        Debug.Assert(send.Length is >= 4 and <= 4 + 1 + CommandApdu.DataLengthMax + 1, "A short command APDU.");
        var receive = new byte[ResponseApdu.DataLengthMax + 2];
        var receiveLength = new CULong((nuint)receive.Length);
        uint code;
        lock (_lock)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            code = PcscNative.Code(PcscNative.SCardTransmit(_card, in PcscNative.T1Pci, send, new CULong((nuint)send.Length), 0, receive, ref receiveLength));
        }

        if (code != PcscError.Success)
        {
            if (PcscError.MeansCardGone(code))
            {
                throw new CardRemovedException($"The card left {Name} ({PcscError.Name(code)}).", new PcscException(code, "SCardTransmit"));
            }

            throw new PcscException(code, "SCardTransmit");
        }

        var length = receiveLength.Value;
        if (length < 2)
        {
            // No status word: the driver lost the card mid-command. vpcd 0.8 reports a connection
            // closed by the card as a successful exchange of zero bytes (IFDHTransmitToICC), and a
            // card that answers at all answers at least SW1 SW2 (ISO 7816-4 §5.1.3).
            throw new CardRemovedException($"The card left {Name} during the command: the reader returned {length} bytes and no status word.");
        }

        if (length > (nuint)receive.Length)
        {
            throw new PcscException(PcscError.InsufficientBuffer, $"SCardTransmit (claimed {length} bytes in a {receive.Length}-byte buffer)");
        }

        var answer = ResponseApdu.Parse(receive.AsSpan(0, (int)length));
        Debug.Assert(answer.Data.Length == (int)length - 2, "The answer is its data and the status word.");
        return answer;
    }

    /// <summary>Leaves the card as it is (SCARD_LEAVE_CARD) and closes the connection to pcscd.</summary>
    public void Dispose()
    {
        lock (_lock)
        {
            if (_disposed)
            {
                return;
            }

            _disposed = true;
            _ = PcscNative.SCardDisconnect(_card, new CULong(PcscNative.LeaveCard));
            _ = PcscNative.SCardReleaseContext(_context);
            _card = 0;
            _context = 0;
        }
    }

    private static nint EstablishContext()
    {
        CLong result;
        nint context;
        try
        {
            result = PcscNative.SCardEstablishContext(new CULong(PcscNative.ScopeSystem), 0, 0, out context);
        }
        catch (DllNotFoundException e)
        {
            throw new WalletException(ReaderErrors.Unavailable, $"PC/SC is not installed ({PcscNative.Library} is missing): install pcscd and libpcsclite1, or use a card file with --card.", innerException: e);
        }

        var code = PcscNative.Code(result);
        if (code != PcscError.Success)
        {
            throw Unavailable(code, "SCardEstablishContext");
        }

        return context;
    }

    private static List<string> ListReaders(nint context)
    {
        var buffer = new byte[PcscNative.ReaderListBytesMax];
        var length = new CULong((nuint)buffer.Length);
        var code = PcscNative.Code(PcscNative.SCardListReaders(context, null, buffer, ref length));
        if (code == PcscError.NoReadersAvailable)
        {
            return [];
        }

        if (code != PcscError.Success)
        {
            throw Unavailable(code, "SCardListReaders");
        }

        // A multi-string: names each ended by NUL, the list by one more.
        var used = (int)Math.Min(length.Value, (nuint)buffer.Length);
        var names = new List<string>(PcscNative.ReadersMax);
        foreach (var name in Encoding.UTF8.GetString(buffer, 0, used).Split('\0', StringSplitOptions.RemoveEmptyEntries))
        {
            if (names.Count == PcscNative.ReadersMax)
            {
                break;
            }

            names.Add(name);
        }

        return names;
    }

    private static WalletException Unavailable(uint code, string call) => code switch
    {
        PcscError.NoService or PcscError.ServiceStopped => new WalletException(ReaderErrors.Unavailable, $"The PC/SC service (pcscd) is not running ({PcscError.Name(code)}). Start it, e.g. `systemctl start pcscd`.", innerException: new PcscException(code, call)),
        _ => new WalletException(ReaderErrors.Failed, $"PC/SC failed: {call} answered {PcscError.Name(code)}.", innerException: new PcscException(code, call)),
    };

    private static byte[] NulTerminated(string text)
    {
        var bytes = new byte[Encoding.UTF8.GetByteCount(text) + 1];
        Encoding.UTF8.GetBytes(text, bytes);
        return bytes;
    }
}

/// <summary>A PC/SC call failed; <see cref="ErrorName"/> is pcsc-lite's name for the code.</summary>
public sealed class PcscException : IOException
{
    /// <summary>Creates the exception for a result code.</summary>
    /// <param name="code">The result's low 32 bits, e.g. 0x80100016.</param>
    /// <param name="call">The function that returned it.</param>
    public PcscException(uint code, string call)
        : base($"{call} failed: {PcscError.Name(code)} (0x{code.ToString("X8", CultureInfo.InvariantCulture)}).")
    {
        Code = code;
        ErrorName = PcscError.Name(code);
    }

    /// <summary>Creates the exception (for serializers and analyzers; prefer the code).</summary>
    public PcscException()
        : this(PcscError.UnknownError, "PC/SC")
    {
    }

    /// <summary>Creates the exception with a message (prefer the code).</summary>
    public PcscException(string message)
        : base(message)
    {
        ErrorName = PcscError.Name(PcscError.UnknownError);
        Code = PcscError.UnknownError;
    }

    /// <summary>Creates the exception with a message and cause (prefer the code).</summary>
    public PcscException(string message, Exception innerException)
        : base(message, innerException)
    {
        ErrorName = PcscError.Name(PcscError.UnknownError);
        Code = PcscError.UnknownError;
    }

    /// <summary>The result code's low 32 bits.</summary>
    public uint Code { get; }

    /// <summary>pcsc-lite's name for the code, e.g. SCARD_E_NOT_TRANSACTED.</summary>
    public string ErrorName { get; }
}

/// <summary>The codes of reader failures that are not the card's (see <see cref="WalletErrors"/> for the card's).</summary>
internal static class ReaderErrors
{
    /// <summary>No reader by that name.</summary>
    public const string NotFound = "reader.not_found";

    /// <summary>PC/SC is not installed or pcscd does not run.</summary>
    public const string Unavailable = "reader.unavailable";

    /// <summary>Any other PC/SC failure, named in the message.</summary>
    public const string Failed = "reader.failed";
}

/// <summary>pcsc-lite's result codes (PCSC/pcsclite.h), as their low 32 bits.</summary>
internal static class PcscError
{
    public const uint Success = 0x0000_0000;
    public const uint InsufficientBuffer = 0x8010_0008;
    public const uint UnknownReader = 0x8010_0009;
    public const uint SharingViolation = 0x8010_000B;
    public const uint NoSmartcard = 0x8010_000C;
    public const uint ProtoMismatch = 0x8010_000F;
    public const uint CommError = 0x8010_0013;
    public const uint UnknownError = 0x8010_0014;
    public const uint NotTransacted = 0x8010_0016;
    public const uint ReaderUnavailable = 0x8010_0017;
    public const uint CardUnsupported = 0x8010_001C;
    public const uint NoService = 0x8010_001D;
    public const uint ServiceStopped = 0x8010_001E;
    public const uint NoReadersAvailable = 0x8010_002E;
    public const uint CommDataLost = 0x8010_002F;
    public const uint UnsupportedCard = 0x8010_0065;
    public const uint UnresponsiveCard = 0x8010_0066;
    public const uint UnpoweredCard = 0x8010_0067;
    public const uint ResetCard = 0x8010_0068;
    public const uint RemovedCard = 0x8010_0069;

    private static readonly Dictionary<uint, string> s_names = new()
    {
        [Success] = "SCARD_S_SUCCESS",
        [0x8010_0001] = "SCARD_F_INTERNAL_ERROR",
        [0x8010_0002] = "SCARD_E_CANCELLED",
        [0x8010_0003] = "SCARD_E_INVALID_HANDLE",
        [0x8010_0004] = "SCARD_E_INVALID_PARAMETER",
        [0x8010_0005] = "SCARD_E_INVALID_TARGET",
        [0x8010_0006] = "SCARD_E_NO_MEMORY",
        [0x8010_0007] = "SCARD_F_WAITED_TOO_LONG",
        [InsufficientBuffer] = "SCARD_E_INSUFFICIENT_BUFFER",
        [UnknownReader] = "SCARD_E_UNKNOWN_READER",
        [0x8010_000A] = "SCARD_E_TIMEOUT",
        [SharingViolation] = "SCARD_E_SHARING_VIOLATION",
        [NoSmartcard] = "SCARD_E_NO_SMARTCARD",
        [0x8010_000D] = "SCARD_E_UNKNOWN_CARD",
        [0x8010_000E] = "SCARD_E_CANT_DISPOSE",
        [ProtoMismatch] = "SCARD_E_PROTO_MISMATCH",
        [0x8010_0010] = "SCARD_E_NOT_READY",
        [0x8010_0011] = "SCARD_E_INVALID_VALUE",
        [0x8010_0012] = "SCARD_E_SYSTEM_CANCELLED",
        [CommError] = "SCARD_F_COMM_ERROR",
        [UnknownError] = "SCARD_F_UNKNOWN_ERROR",
        [0x8010_0015] = "SCARD_E_INVALID_ATR",
        [NotTransacted] = "SCARD_E_NOT_TRANSACTED",
        [ReaderUnavailable] = "SCARD_E_READER_UNAVAILABLE",
        [0x8010_0018] = "SCARD_P_SHUTDOWN",
        [0x8010_0019] = "SCARD_E_PCI_TOO_SMALL",
        [0x8010_001A] = "SCARD_E_READER_UNSUPPORTED",
        [0x8010_001B] = "SCARD_E_DUPLICATE_READER",
        [CardUnsupported] = "SCARD_E_CARD_UNSUPPORTED",
        [NoService] = "SCARD_E_NO_SERVICE",
        [ServiceStopped] = "SCARD_E_SERVICE_STOPPED",
        [0x8010_001F] = "SCARD_E_UNSUPPORTED_FEATURE",
        [NoReadersAvailable] = "SCARD_E_NO_READERS_AVAILABLE",
        [CommDataLost] = "SCARD_E_COMM_DATA_LOST",
        [0x8010_0031] = "SCARD_E_SERVER_TOO_BUSY",
        [UnsupportedCard] = "SCARD_W_UNSUPPORTED_CARD",
        [UnresponsiveCard] = "SCARD_W_UNRESPONSIVE_CARD",
        [UnpoweredCard] = "SCARD_W_UNPOWERED_CARD",
        [ResetCard] = "SCARD_W_RESET_CARD",
        [RemovedCard] = "SCARD_W_REMOVED_CARD",
        [0x8010_006A] = "SCARD_W_SECURITY_VIOLATION",
    };

    /// <summary>pcsc-lite's name for a code, or the code in hex when it has none.</summary>
    public static string Name(uint code) =>
        s_names.TryGetValue(code, out var name) ? name : "0x" + code.ToString("X8", CultureInfo.InvariantCulture);

    /// <summary>
    /// Whether a failed exchange means the card, its reader or pcscd went away mid-command, so
    /// that what the card did is unknown (<see cref="CardRemovedException"/>). A driver that loses
    /// its card during a command reports SCARD_E_NOT_TRANSACTED or SCARD_F_COMM_ERROR; later calls
    /// see SCARD_W_REMOVED_CARD.
    /// </summary>
    public static bool MeansCardGone(uint code) => code is RemovedCard or NoSmartcard or ReaderUnavailable or UnknownReader
        or UnpoweredCard or UnresponsiveCard or ResetCard or NotTransacted or CommError or CommDataLost or NoService or ServiceStopped;
}
