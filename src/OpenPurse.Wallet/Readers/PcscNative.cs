using System.Runtime.InteropServices;

namespace OpenPurse.Wallet.Readers;

/// <summary>
/// The part of PC/SC (pcsc-lite's libpcsclite, winscard.h) the wallet calls, for Linux x64.
/// </summary>
/// <remarks>
/// <para>
/// pcsc-lite on Linux declares <c>DWORD</c> as <c>unsigned long</c> and <c>LONG</c> as <c>long</c>
/// (PCSC/wintypes.h), both 8 bytes on x64 — unlike Windows and macOS, where they are 4. Hence
/// <see cref="CULong"/> and <see cref="CLong"/>, which are C's <c>unsigned long</c> and <c>long</c>
/// on every platform; contexts and card handles are <c>LONG</c> too, held as <see cref="nint"/>.
/// An error such as SCARD_E_NO_SMARTCARD (0x8010000C) comes back as the positive 64-bit value
/// 0x000000008010000C, so results are compared on their low 32 bits (<see cref="Code"/>).
/// </para>
/// <para>
/// Every parameter is blittable (integers, byte arrays, a struct of two <see cref="CULong"/>), so
/// the runtime passes them as they are and no unsafe code is needed; reader names cross as
/// NUL-terminated UTF-8 byte arrays.
/// </para>
/// </remarks>
internal static class PcscNative
{
    /// <summary>The client library of pcsc-lite (Debian package libpcsclite1).</summary>
    public const string Library = "libpcsclite.so.1";

    public const uint ScopeSystem = 2;          // SCARD_SCOPE_SYSTEM
    public const uint ShareShared = 2;          // SCARD_SHARE_SHARED
    public const uint ProtocolT1 = 2;           // SCARD_PROTOCOL_T1
    public const uint LeaveCard = 0;            // SCARD_LEAVE_CARD

    /// <summary>pcsc-lite's limits (pcsclite.h): 16 reader contexts, names of at most 128 bytes with their NUL.</summary>
    public const int ReadersMax = 16;

    /// <summary>The longest name pcsc-lite gives a reader, NUL included (MAX_READERNAME).</summary>
    public const int ReaderNameBytesMax = 128;

    /// <summary>The whole multi-string SCardListReaders can return: every reader's name and the final NUL.</summary>
    public const int ReaderListBytesMax = (ReadersMax * ReaderNameBytesMax) + 1;

    /// <summary>SCARD_IO_REQUEST for T=1 (what libpcsclite exports as g_rgSCardT1Pci): 16 bytes on Linux x64.</summary>
    public static readonly IoRequest T1Pci = new(new CULong(ProtocolT1), new CULong((nuint)Marshal.SizeOf<IoRequest>()));

    /// <summary>The low 32 bits of a result: pcsc-lite's error codes as its header spells them.</summary>
    public static uint Code(CLong result) => unchecked((uint)(long)result.Value);

    /// <summary>SCARD_IO_REQUEST: { unsigned long dwProtocol; unsigned long cbPciLength; } (pcsclite.h).</summary>
    [StructLayout(LayoutKind.Sequential)]
    public readonly record struct IoRequest(CULong Protocol, CULong PciLength);

    [DllImport(Library, ExactSpelling = true)]
    public static extern CLong SCardEstablishContext(CULong dwScope, nint pvReserved1, nint pvReserved2, out nint phContext);

    [DllImport(Library, ExactSpelling = true)]
    public static extern CLong SCardReleaseContext(nint hContext);

    [DllImport(Library, ExactSpelling = true)]
    public static extern CLong SCardListReaders(nint hContext, byte[]? mszGroups, byte[] mszReaders, ref CULong pcchReaders);

    [DllImport(Library, ExactSpelling = true)]
    public static extern CLong SCardConnect(nint hContext, byte[] szReader, CULong dwShareMode, CULong dwPreferredProtocols, out nint phCard, out CULong pdwActiveProtocol);

    [DllImport(Library, ExactSpelling = true)]
    public static extern CLong SCardDisconnect(nint hCard, CULong dwDisposition);

    [DllImport(Library, ExactSpelling = true)]
    public static extern CLong SCardTransmit(nint hCard, in IoRequest pioSendPci, byte[] pbSendBuffer, CULong cbSendLength, nint pioRecvPci, byte[] pbRecvBuffer, ref CULong pcbRecvLength);
}
