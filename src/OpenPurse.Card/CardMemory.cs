using System.Buffers.Binary;
using System.Diagnostics;
using System.Security.Cryptography;

namespace OpenPurse.Card;

/// <summary>
/// The card's non-volatile memory: two slots in one file, written alternately, so that a write
/// cut at any byte leaves the previous image intact (anti-tearing, as smart-card EEPROM
/// journaling does).
/// </summary>
/// <remarks>
/// Each slot is magic (4) ‖ generation (8) ‖ length (4) ‖ payload (capacity) ‖ SHA-256 over
/// everything before it (32). A commit writes the whole inactive slot with the next generation
/// and flushes it to the disk; loading takes the valid slot with the highest generation. A torn
/// slot fails its hash, so the reader sees the old image; a whole one is the new image.
/// Generations only grow, so the card's state — its transaction counter with it — never goes back.
/// </remarks>
internal sealed class CardMemory : IDisposable
{
    private const uint Magic = 0x4F50_4D31; // "OPM1"
    private const int HeaderLength = 4 + 8 + 4;
    private const int HashLength = SHA256.HashSizeInBytes;

    private readonly Stream _stream;
    private readonly int _payloadCapacity;
    private ulong _generation;
    private int _activeSlot;

    internal CardMemory(Stream stream, int payloadCapacity)
    {
        Debug.Assert(stream.CanRead && stream.CanWrite && stream.CanSeek, "Card memory needs a random-access stream.");
        _stream = stream;
        _payloadCapacity = payloadCapacity;
    }

    /// <summary>Bytes one commit writes.</summary>
    internal int SlotLength => HeaderLength + _payloadCapacity + HashLength;

    /// <summary>Formats new memory: the first image in slot 0, slot 1 empty.</summary>
    public void Format(ReadOnlySpan<byte> payload)
    {
        _stream.SetLength(2L * SlotLength);
        _stream.Position = 0;
        _stream.Write(new byte[2 * SlotLength]);
        _generation = 0;
        _activeSlot = 1;
        Commit(payload);
    }

    /// <summary>Reads the newest whole image.</summary>
    /// <exception cref="InvalidDataException">Neither slot holds a whole image: the memory is not a card's.</exception>
    public byte[] Load()
    {
        byte[]? best = null;
        ulong bestGeneration = 0;
        var bestSlot = 0;
        for (var slot = 0; slot < 2; slot++)
        {
            if (TryReadSlot(slot, out var generation, out var payload) && (best is null || generation > bestGeneration))
            {
                (best, bestGeneration, bestSlot) = (payload, generation, slot);
            }
        }

        if (best is null)
        {
            throw new InvalidDataException("The card memory holds no valid image.");
        }

        _generation = bestGeneration;
        _activeSlot = bestSlot;
        return best;
    }

    /// <summary>Writes a new image into the inactive slot and makes it durable; then it is the active one.</summary>
    /// <exception cref="IOException">The write failed; the previous image is still the valid one.</exception>
    public void Commit(ReadOnlySpan<byte> payload)
    {
        if (payload.Length > _payloadCapacity)
        {
            throw new ArgumentException($"The image exceeds the card's {_payloadCapacity} bytes.", nameof(payload));
        }

        var slot = 1 - _activeSlot;
        var generation = _generation + 1;
        var buffer = new byte[SlotLength];
        BinaryPrimitives.WriteUInt32BigEndian(buffer, Magic);
        BinaryPrimitives.WriteUInt64BigEndian(buffer.AsSpan(4), generation);
        BinaryPrimitives.WriteInt32BigEndian(buffer.AsSpan(12), payload.Length);
        payload.CopyTo(buffer.AsSpan(HeaderLength));
        SHA256.HashData(buffer.AsSpan(0, HeaderLength + _payloadCapacity), buffer.AsSpan(HeaderLength + _payloadCapacity));

        _stream.Position = (long)slot * SlotLength;
        _stream.Write(buffer);
        if (_stream is FileStream file)
        {
            file.Flush(flushToDisk: true);
        }
        else
        {
            _stream.Flush();
        }

        _generation = generation;
        _activeSlot = slot;
    }

    public void Dispose() => _stream.Dispose();

    private bool TryReadSlot(int slot, out ulong generation, out byte[] payload)
    {
        generation = 0;
        payload = [];
        var buffer = new byte[SlotLength];
        _stream.Position = (long)slot * SlotLength;
        if (_stream.ReadAtLeast(buffer, SlotLength, throwOnEndOfStream: false) != SlotLength
            || BinaryPrimitives.ReadUInt32BigEndian(buffer) != Magic)
        {
            return false;
        }

        Span<byte> hash = stackalloc byte[HashLength];
        SHA256.HashData(buffer.AsSpan(0, HeaderLength + _payloadCapacity), hash);
        if (!hash.SequenceEqual(buffer.AsSpan(HeaderLength + _payloadCapacity)))
        {
            return false;
        }

        var length = BinaryPrimitives.ReadInt32BigEndian(buffer.AsSpan(12));
        if (length < 0 || length > _payloadCapacity)
        {
            return false;
        }

        generation = BinaryPrimitives.ReadUInt64BigEndian(buffer.AsSpan(4));
        payload = buffer.AsSpan(HeaderLength, length).ToArray();
        return true;
    }
}
