using System.Buffers.Binary;
using System.Diagnostics;

namespace OpenPurse.Protocol.Channel;

/// <summary>
/// The NIST SP 800-108 key-based KDF in counter mode with AES-CMAC as the PRF.
/// Each block is PRF(K, before ‖ [i]_r ‖ after), i counting from 1.
/// </summary>
/// <remarks>
/// The counter may sit before, after or in the middle of the fixed input (CAVP's
/// BEFORE_FIXED / AFTER_FIXED / MIDDLE_FIXED); SCP03 puts a one-byte counter in the middle.
/// </remarks>
public static class Kbkdf
{
    /// <summary>The most fixed-input bytes accepted; SCP03 uses 32.</summary>
    public const int FixedInputLengthMax = 256;

    /// <summary>Derives <paramref name="output"/>.Length bytes.</summary>
    /// <param name="prf">AES-CMAC under the key-derivation key.</param>
    /// <param name="before">Fixed input before the counter.</param>
    /// <param name="after">Fixed input after the counter.</param>
    /// <param name="counterBytes">Width of the big-endian counter: 1, 2, 3 or 4 bytes.</param>
    /// <param name="output">Receives the derived bytes.</param>
    /// <exception cref="ArgumentException">The counter width is not 1..4, the fixed input is too long, or the output needs more blocks than the counter can count.</exception>
    public static void DeriveCounterMode(ICmac prf, ReadOnlySpan<byte> before, ReadOnlySpan<byte> after, int counterBytes, Span<byte> output)
    {
        ArgumentNullException.ThrowIfNull(prf);
        if (counterBytes is < 1 or > 4)
        {
            throw new ArgumentException("The counter is 1 to 4 bytes wide.", nameof(counterBytes));
        }

        if (before.Length + after.Length > FixedInputLengthMax)
        {
            throw new ArgumentException($"Fixed input exceeds {FixedInputLengthMax} bytes.", nameof(after));
        }

        var blocks = (output.Length + AesCmac.BlockSize - 1) / AesCmac.BlockSize;
        var counterMax = counterBytes == 4 ? uint.MaxValue : (1u << (8 * counterBytes)) - 1;
        if ((uint)blocks > counterMax)
        {
            throw new ArgumentException("The output needs more blocks than the counter can count.", nameof(output));
        }

        Span<byte> input = stackalloc byte[before.Length + counterBytes + after.Length];
        before.CopyTo(input);
        after.CopyTo(input[(before.Length + counterBytes)..]);
        var counter = input.Slice(before.Length, counterBytes);
        Span<byte> counterWide = stackalloc byte[4];
        Span<byte> block = stackalloc byte[AesCmac.BlockSize];

        for (var i = 1; i <= blocks; i++)
        {
            BinaryPrimitives.WriteUInt32BigEndian(counterWide, (uint)i);
            counterWide[(4 - counterBytes)..].CopyTo(counter);
            prf.Compute(input, block);
            var offset = (i - 1) * AesCmac.BlockSize;
            var take = Math.Min(AesCmac.BlockSize, output.Length - offset);
            block[..take].CopyTo(output[offset..]);
        }

        Debug.Assert(blocks * AesCmac.BlockSize >= output.Length, "Every output byte must be derived.");
        block.Clear();
    }
}
