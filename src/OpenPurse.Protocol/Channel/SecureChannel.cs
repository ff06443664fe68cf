using System.Buffers.Binary;
using System.Diagnostics;
using System.Security.Cryptography;
using OpenPurse.Protocol.Apdu;

namespace OpenPurse.Protocol.Channel;

/// <summary>
/// One SCP03 secure-messaging session after mutual authentication (GP Amendment D §6.2.4–6.2.7):
/// command MAC chaining, command encryption with a counter-derived ICV, response MAC and
/// response encryption. The host calls <see cref="ExternalAuthenticate"/>, <see cref="Wrap(CommandApdu)"/>
/// and <see cref="TryUnwrap(ResponseApdu, out ResponseApdu?)"/>; the card calls
/// <see cref="TryUnwrap(CommandApdu, out CommandApdu?)"/> and <see cref="Wrap(ResponseApdu)"/>.
/// </summary>
/// <remarks>
/// The two sides keep the same state: the 16-byte MAC chaining value (the last full C-MAC)
/// and the encryption counter (incremented before every command after EXTERNAL AUTHENTICATE,
/// also data-less ones). A command replayed within the session, or from another session, fails
/// its MAC because the chaining value or the key has moved on. MACs are compared in fixed time.
/// An instance is not thread-safe; one session belongs to one card exchange.
/// </remarks>
public sealed class SecureChannel : IDisposable
{
    /// <summary>INS of EXTERNAL AUTHENTICATE.</summary>
    public const byte ExternalAuthenticateIns = 0x82;

    /// <summary>Class-byte bit that marks secure messaging (ISO 7816-4 §5.4.1).</summary>
    public const byte SecureMessagingBit = 0x04;

    private const int BlockSize = AesCmac.BlockSize;

    private readonly Aes _enc;
    private readonly AesCmac _mac;
    private readonly AesCmac _rmac;
    private readonly byte[] _chain = new byte[BlockSize];
    private uint _counter;
    private bool _disposed;

    /// <summary>Starts a session with freshly derived keys; the keys are copied, the caller keeps ownership.</summary>
    public SecureChannel(SessionKeys keys, SecurityLevel level)
    {
        ArgumentNullException.ThrowIfNull(keys);
        if (level.HasFlag(SecurityLevel.CommandEncryption) && !level.HasFlag(SecurityLevel.CommandMac))
        {
            throw new ArgumentException("Command encryption needs a command MAC.", nameof(level));
        }

        if (level.HasFlag(SecurityLevel.ResponseEncryption) && !level.HasFlag(SecurityLevel.ResponseMac))
        {
            throw new ArgumentException("Response encryption needs a response MAC.", nameof(level));
        }

        Level = level;
        _enc = Aes.Create();
        var encKey = keys.Enc.ToArray();
        _enc.Key = encKey;
        CryptographicOperations.ZeroMemory(encKey);
        _mac = new AesCmac(keys.Mac);
        _rmac = new AesCmac(keys.Rmac);
    }

    /// <summary>The security level agreed in EXTERNAL AUTHENTICATE.</summary>
    public SecurityLevel Level { get; }

    /// <summary>The encryption counter: how many commands followed EXTERNAL AUTHENTICATE.</summary>
    public uint Counter => _counter;

    /// <summary>The host's EXTERNAL AUTHENTICATE command: host cryptogram ‖ C-MAC, with the chain starting at zero.</summary>
    public CommandApdu ExternalAuthenticate(ReadOnlySpan<byte> hostCryptogram)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (hostCryptogram.Length != Scp03.CryptogramLength)
        {
            throw new ArgumentException($"The host cryptogram has {Scp03.CryptogramLength} bytes.", nameof(hostCryptogram));
        }

        Debug.Assert(_counter == 0 && _chain.AsSpan().IndexOfAnyExcept((byte)0) < 0, "EXTERNAL AUTHENTICATE opens the session.");
        return AppendMac(0x80 | SecureMessagingBit, ExternalAuthenticateIns, (byte)Level, 0x00, hostCryptogram, le: null);
    }

    /// <summary>Host side: secures a plain command (counter, C-DECRYPTION, C-MAC).</summary>
    /// <exception cref="ArgumentException">The secured data would not fit a short APDU.</exception>
    public CommandApdu Wrap(CommandApdu command)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        ArgumentNullException.ThrowIfNull(command);
        if (!Level.HasFlag(SecurityLevel.CommandMac))
        {
            return command;
        }

        _counter = checked(_counter + 1);
        var data = Level.HasFlag(SecurityLevel.CommandEncryption) && command.Data.Length > 0
            ? Encrypt(command.Data, responseDirection: false)
            : command.Data.ToArray();
        if (data.Length + Scp03.MacLength > CommandApdu.DataLengthMax)
        {
            throw new ArgumentException("The secured command does not fit a short APDU.", nameof(command));
        }

        return AppendMac((byte)(command.Cla | SecureMessagingBit), command.Ins, command.P1, command.P2, data, command.Le);
    }

    /// <summary>
    /// Card side: checks the C-MAC and decrypts. False when the command is not secured, is too short,
    /// or its MAC does not verify (tampered, replayed, or from another session); the caller must then
    /// end the session.
    /// </summary>
    public bool TryUnwrap(CommandApdu command, [System.Diagnostics.CodeAnalysis.NotNullWhen(true)] out CommandApdu? plain)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        ArgumentNullException.ThrowIfNull(command);
        plain = null;
        if (!Level.HasFlag(SecurityLevel.CommandMac) && command.Ins != ExternalAuthenticateIns)
        {
            plain = command;
            return true;
        }

        var data = command.Data;
        if ((command.Cla & SecureMessagingBit) == 0 || data.Length < Scp03.MacLength)
        {
            return false;
        }

        var body = data[..^Scp03.MacLength];
        Span<byte> mac = stackalloc byte[BlockSize];
        ComputeCommandMac(command.Cla, command.Ins, command.P1, command.P2, body, mac);
        if (!CryptographicOperations.FixedTimeEquals(mac[..Scp03.MacLength], data[^Scp03.MacLength..]))
        {
            return false;
        }

        mac.CopyTo(_chain);
        if (command.Ins == ExternalAuthenticateIns)
        {
            plain = command.With(command.Cla, body);
            return true;
        }

        _counter = checked(_counter + 1);
        byte[]? clear = body.ToArray();
        if (Level.HasFlag(SecurityLevel.CommandEncryption) && body.Length > 0)
        {
            clear = Decrypt(body, responseDirection: false);
            if (clear is null)
            {
                return false;
            }
        }

        plain = command.With((byte)(command.Cla & ~SecureMessagingBit), clear);
        return true;
    }

    /// <summary>Card side: encrypts the answer's data (R-ENCRYPTION) and appends the R-MAC.</summary>
    /// <remarks>Only 9000, 62xx and 63xx answers carry an R-MAC; errors go back bare, as GP specifies.</remarks>
    public ResponseApdu Wrap(ResponseApdu response)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        ArgumentNullException.ThrowIfNull(response);
        if (!Level.HasFlag(SecurityLevel.ResponseMac) || !CarriesResponseMac(response.Status))
        {
            return response;
        }

        var data = Level.HasFlag(SecurityLevel.ResponseEncryption) && response.Data.Length > 0
            ? Encrypt(response.Data, responseDirection: true)
            : response.Data.ToArray();
        var secured = new byte[data.Length + Scp03.MacLength];
        data.CopyTo(secured, 0);
        Span<byte> mac = stackalloc byte[BlockSize];
        ComputeResponseMac(data, response.Status, mac);
        mac[..Scp03.MacLength].CopyTo(secured.AsSpan(data.Length));
        return new ResponseApdu(secured, response.Status);
    }

    /// <summary>
    /// Host side: checks the R-MAC and decrypts the answer. False when the MAC is missing or wrong,
    /// or the decrypted padding is malformed. An error status without data is passed through.
    /// </summary>
    public bool TryUnwrap(ResponseApdu response, [System.Diagnostics.CodeAnalysis.NotNullWhen(true)] out ResponseApdu? plain)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        ArgumentNullException.ThrowIfNull(response);
        plain = null;
        if (!Level.HasFlag(SecurityLevel.ResponseMac) || (!CarriesResponseMac(response.Status) && response.Data.Length == 0))
        {
            plain = response;
            return true;
        }

        var data = response.Data;
        if (data.Length < Scp03.MacLength)
        {
            return false;
        }

        var body = data[..^Scp03.MacLength];
        Span<byte> mac = stackalloc byte[BlockSize];
        ComputeResponseMac(body, response.Status, mac);
        if (!CryptographicOperations.FixedTimeEquals(mac[..Scp03.MacLength], data[^Scp03.MacLength..]))
        {
            return false;
        }

        var clear = Level.HasFlag(SecurityLevel.ResponseEncryption) && body.Length > 0
            ? Decrypt(body, responseDirection: true)
            : body.ToArray();
        if (clear is null)
        {
            return false;
        }

        plain = new ResponseApdu(clear, response.Status);
        return true;
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }

        _disposed = true;
        CryptographicOperations.ZeroMemory(_chain);
        _enc.Dispose();
        _mac.Dispose();
        _rmac.Dispose();
    }

    private static bool CarriesResponseMac(StatusWord status) =>
        status == StatusWord.Ok || ((ushort)status >> 8) is 0x62 or 0x63;

    private CommandApdu AppendMac(byte cla, byte ins, byte p1, byte p2, ReadOnlySpan<byte> data, int? le)
    {
        Span<byte> mac = stackalloc byte[BlockSize];
        ComputeCommandMac(cla, ins, p1, p2, data, mac);
        mac.CopyTo(_chain);
        Span<byte> secured = stackalloc byte[data.Length + Scp03.MacLength];
        data.CopyTo(secured);
        mac[..Scp03.MacLength].CopyTo(secured[data.Length..]);
        return new CommandApdu(cla, ins, p1, p2, secured, le);
    }

    // C-MAC = CMAC(S-MAC, chain ‖ CLA INS P1 P2 Lc ‖ data), Lc counting the 8 MAC bytes.
    private void ComputeCommandMac(byte cla, byte ins, byte p1, byte p2, ReadOnlySpan<byte> data, Span<byte> mac)
    {
        Span<byte> input = stackalloc byte[BlockSize + 5 + data.Length];
        _chain.CopyTo(input);
        input[BlockSize] = cla;
        input[BlockSize + 1] = ins;
        input[BlockSize + 2] = p1;
        input[BlockSize + 3] = p2;
        input[BlockSize + 4] = (byte)(data.Length + Scp03.MacLength);
        data.CopyTo(input[(BlockSize + 5)..]);
        _mac.Compute(input, mac);
    }

    // R-MAC = CMAC(S-RMAC, chain ‖ data ‖ SW1 SW2), the chain being the command's full C-MAC.
    private void ComputeResponseMac(ReadOnlySpan<byte> data, StatusWord status, Span<byte> mac)
    {
        Span<byte> input = stackalloc byte[BlockSize + data.Length + 2];
        _chain.CopyTo(input);
        data.CopyTo(input[BlockSize..]);
        BinaryPrimitives.WriteUInt16BigEndian(input[^2..], (ushort)status);
        _rmac.Compute(input, mac);
    }

    // ICV = AES(S-ENC, counter as 16 bytes big-endian); for responses the first byte is 0x80.
    private void ComputeIcv(bool responseDirection, Span<byte> icv)
    {
        Span<byte> block = stackalloc byte[BlockSize];
        block.Clear();
        BinaryPrimitives.WriteUInt32BigEndian(block[^4..], _counter);
        if (responseDirection)
        {
            block[0] = 0x80;
        }

        _enc.EncryptEcb(block, icv, PaddingMode.None);
    }

    // ISO 9797-1 padding method 2 (80 00…), then AES-CBC under S-ENC.
    private byte[] Encrypt(ReadOnlySpan<byte> data, bool responseDirection)
    {
        var padded = new byte[(data.Length / BlockSize + 1) * BlockSize];
        data.CopyTo(padded);
        padded[data.Length] = 0x80;
        Span<byte> icv = stackalloc byte[BlockSize];
        ComputeIcv(responseDirection, icv);
        return _enc.EncryptCbc(padded, icv, PaddingMode.None);
    }

    private byte[]? Decrypt(ReadOnlySpan<byte> data, bool responseDirection)
    {
        if (data.Length % BlockSize != 0)
        {
            return null;
        }

        Span<byte> icv = stackalloc byte[BlockSize];
        ComputeIcv(responseDirection, icv);
        var padded = _enc.DecryptCbc(data, icv, PaddingMode.None);
        var end = padded.AsSpan().LastIndexOfAnyExcept((byte)0);
        if (end < 0 || padded[end] != 0x80)
        {
            CryptographicOperations.ZeroMemory(padded);
            return null;
        }

        var clear = padded.AsSpan(0, end).ToArray();
        CryptographicOperations.ZeroMemory(padded);
        return clear;
    }
}
