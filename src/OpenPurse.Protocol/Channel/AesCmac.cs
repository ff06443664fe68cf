using System.Buffers;
using System.Diagnostics;
using System.Security.Cryptography;

namespace OpenPurse.Protocol.Channel;

/// <summary>
/// AES-CMAC (NIST SP 800-38B, RFC 4493) over the platform's AES.
/// </summary>
/// <remarks>
/// .NET has no CMAC, so this is the one place that builds it: the last block is XORed
/// with subkey K1 (complete block) or K2 (padded block) and the whole message goes through
/// one AES-CBC call with a zero IV, whose last block is the MAC. Checked against all
/// RFC 4493 examples and, on random inputs, against BouncyCastle's CMac.
/// An instance is not thread-safe: give each thread its own.
/// </remarks>
public sealed class AesCmac : ICmac, IDisposable
{
    /// <summary>AES block size and CMAC output size in bytes.</summary>
    public const int BlockSize = 16;

    // Messages up to this size are handled on the stack; the card's and the channel's all are.
    private const int StackBufferMax = 512;

    private readonly Aes _aes;
    private readonly byte[] _k1 = new byte[BlockSize];
    private readonly byte[] _k2 = new byte[BlockSize];
    private bool _disposed;

    /// <summary>Creates a CMAC under an AES-128, -192 or -256 key (the key is copied).</summary>
    /// <exception cref="ArgumentException">The key is not 16, 24 or 32 bytes.</exception>
    public AesCmac(ReadOnlySpan<byte> key)
    {
        if (key.Length is not (16 or 24 or 32))
        {
            throw new ArgumentException($"An AES key has 16, 24 or 32 bytes, not {key.Length}.", nameof(key));
        }

        _aes = Aes.Create();
        var copy = key.ToArray();
        try
        {
            _aes.Key = copy;
        }
        finally
        {
            CryptographicOperations.ZeroMemory(copy);
        }

        // SP 800-38B §6.1: L = AES(K, 0^128); K1 = dbl(L); K2 = dbl(K1).
        Span<byte> l = stackalloc byte[BlockSize];
        _aes.EncryptEcb(new byte[BlockSize], l, PaddingMode.None);
        Double(l, _k1);
        Double(_k1, _k2);
        CryptographicOperations.ZeroMemory(l);
    }

    /// <summary>Subkey K1 (for known-answer tests).</summary>
    internal ReadOnlySpan<byte> K1 => _k1;

    /// <summary>Subkey K2 (for known-answer tests).</summary>
    internal ReadOnlySpan<byte> K2 => _k2;

    /// <inheritdoc/>
    public void Compute(ReadOnlySpan<byte> message, Span<byte> mac)
    {
        var paddedLength = message.Length == 0 ? BlockSize : (message.Length + BlockSize - 1) / BlockSize * BlockSize;
        ComputePadded(message, paddedLength, mac);
    }

    /// <summary>Computes the CMAC of a message into a new 16-byte array.</summary>
    public byte[] Compute(ReadOnlySpan<byte> message)
    {
        var mac = new byte[BlockSize];
        Compute(message, mac);
        return mac;
    }

    /// <summary>
    /// The CMAC construction with the message padded to <paramref name="paddedLength"/> rather
    /// than to the next block: a message that fills it ends with K1, a shorter one is padded with
    /// 80 00… and ends with K2. Plain CMAC is the case "next block"; NXP AN10922 pads to 32.
    /// </summary>
    internal void ComputePadded(ReadOnlySpan<byte> message, int paddedLength, Span<byte> mac)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (mac.Length < BlockSize)
        {
            throw new ArgumentException($"The MAC needs {BlockSize} bytes.", nameof(mac));
        }

        Debug.Assert(paddedLength >= message.Length && paddedLength > 0 && paddedLength % BlockSize == 0, "Padding must fill whole blocks.");

        byte[]? rented = null;
        var buffer = paddedLength * 2 <= StackBufferMax
            ? stackalloc byte[paddedLength * 2]
            : (rented = ArrayPool<byte>.Shared.Rent(paddedLength * 2)).AsSpan(0, paddedLength * 2);
        try
        {
            var input = buffer[..paddedLength];
            var output = buffer[paddedLength..];
            message.CopyTo(input);
            var complete = message.Length == paddedLength;
            if (!complete)
            {
                input[message.Length] = 0x80;
                input[(message.Length + 1)..].Clear();
            }

            var last = input[^BlockSize..];
            var subkey = complete ? _k1 : _k2;
            for (var i = 0; i < BlockSize; i++)
            {
                last[i] ^= subkey[i];
            }

            _aes.EncryptCbc(input, stackalloc byte[BlockSize], output, PaddingMode.None);
            output[^BlockSize..].CopyTo(mac);
        }
        finally
        {
            buffer.Clear();
            if (rented is not null)
            {
                ArrayPool<byte>.Shared.Return(rented);
            }
        }
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }

        _disposed = true;
        CryptographicOperations.ZeroMemory(_k1);
        CryptographicOperations.ZeroMemory(_k2);
        _aes.Dispose();
    }

    // Multiplication by x in GF(2^128): shift left one bit, XOR 0x87 into the last byte on carry.
    private static void Double(ReadOnlySpan<byte> input, Span<byte> output)
    {
        var carry = input[0] >> 7;
        for (var i = 0; i < BlockSize - 1; i++)
        {
            output[i] = (byte)((input[i] << 1) | (input[i + 1] >> 7));
        }

        output[BlockSize - 1] = (byte)((input[BlockSize - 1] << 1) ^ (0x87 * carry));
    }
}
