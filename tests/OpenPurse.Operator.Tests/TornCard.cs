using System.Buffers.Binary;
using System.Security.Cryptography;
using OpenPurse.Card;
using OpenPurse.Protocol.Purse;
using OpenPurse.Testing;

namespace OpenPurse.Operator.Tests;

/// <summary>
/// A card whose power fails part-way through a write, as in OpenPurse.Card.Tests' TearingTest: its
/// memory file opened over a stream that passes the first <c>budget</c> bytes of writes through and
/// then loses power (the rest never arrives, the card answers 6581). Reopen the file with
/// <see cref="EmulatedCard.Open(string)"/> to bring the power back.
/// </summary>
internal static class TornCard
{
    /// <summary>Bytes one commit writes: the card's file is two slots of this length (CardMemory).</summary>
    public static int SlotLength(string path) => checked((int)(new FileInfo(path).Length / 2));

    /// <summary>
    /// Opens the card file so that the card's first commit (the INITIALIZE UPDATE that starts the
    /// next session) is written whole and power fails after <paramref name="cut"/> bytes of the
    /// second (the move), which goes to slot <paramref name="tornSlot"/>: a commit writes the slot
    /// that does not hold the current image, so the second goes to the one that holds it now. When
    /// that is the other slot, the card makes one more commit first (a SELECT and INITIALIZE UPDATE
    /// whose session is dropped with the power).
    /// </summary>
    public static EmulatedCard Open(string path, int tornSlot, int cut)
    {
        if (ActiveSlot(path) != tornSlot)
        {
            using var card = EmulatedCard.Open(path);
            card.Transmit(CardHostSession.Select().ToBytes());
            Assert.Equal([0x90, 0x00], card.Transmit(CardHostSession.InitializeUpdate(RandomNumberGenerator.GetBytes(8)).ToBytes())[^2..]);
        }

        Assert.Equal(tornSlot, ActiveSlot(path));
        return Open(path, SlotLength(path) + cut);
    }

    /// <summary>
    /// The slot holding the card's current image: the whole one with the highest generation. The
    /// format is CardMemory's: magic (4) ‖ generation (8) ‖ length (4) ‖ payload ‖ SHA-256 over all
    /// of that (32).
    /// </summary>
    public static int ActiveSlot(string path)
    {
        var file = File.ReadAllBytes(path);
        var length = file.Length / 2;
        var (active, newest) = (-1, 0UL);
        for (var slot = 0; slot < 2; slot++)
        {
            var bytes = file.AsSpan(slot * length, length);
            var generation = BinaryPrimitives.ReadUInt64BigEndian(bytes[4..]);
            if (SHA256.HashData(bytes[..^SHA256.HashSizeInBytes]).AsSpan().SequenceEqual(bytes[^SHA256.HashSizeInBytes..]) && (active < 0 || generation > newest))
            {
                (active, newest) = (slot, generation);
            }
        }

        return active >= 0 ? active : throw new InvalidDataException("Neither slot of the card file holds a whole image.");
    }

    /// <summary>Opens the card file so that power fails after <paramref name="budget"/> bytes of writes.</summary>
    public static EmulatedCard Open(string path, int budget)
    {
        var stream = new TearingStream(new FileStream(path, FileMode.Open, FileAccess.ReadWrite, FileShare.None), budget);
        try
        {
            return EmulatedCard.Open(stream);
        }
        catch
        {
            stream.Dispose();
            throw;
        }
    }

}
