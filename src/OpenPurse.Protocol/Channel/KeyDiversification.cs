using System.Diagnostics;

namespace OpenPurse.Protocol.Channel;

/// <summary>
/// AES-128 key diversification as in NXP application note AN10922 §2.2: the card key is
/// the CMAC construction over D = 0x01 ‖ M, with D always padded to two blocks (32 bytes).
/// </summary>
/// <remarks>
/// Each card gets its own keys from the master key and its identity, so breaking one card
/// reveals one card's keys only. Note the padding: D is padded to 32 bytes even when shorter
/// than 16, which is why a plain RFC 4493 CMAC of 0x01 ‖ M agrees only for 16 ≤ |M| ≤ 31.
/// OpenPurse's own diversification input is exactly 31 bytes (see <see cref="CardKeyInput"/>),
/// so that an HSM's plain CMAC computes the same key.
/// </remarks>
public static class KeyDiversification
{
    /// <summary>Length of the diversification input M that makes AN10922 equal to plain CMAC.</summary>
    public const int CardKeyInputLength = 31;

    private const int InputLengthMax = 31;
    private const int PaddedLength = 32;
    private const byte Aes128DivConstant = 0x01;

    // System identifier that ends every OpenPurse diversification input (ASCII "OPENPURSE-V1").
    private static ReadOnlySpan<byte> SystemIdentifier => "OPENPURSE-V1"u8;

    /// <summary>Diversifies an AES-128 key: writes the 16-byte card key for input <paramref name="m"/>.</summary>
    /// <param name="master">CMAC under the master key.</param>
    /// <param name="m">Diversification input, 1 to 31 bytes (typically UID ‖ AID ‖ system identifier).</param>
    /// <param name="diversifiedKey">Receives 16 bytes.</param>
    /// <exception cref="ArgumentException">M is empty or longer than 31 bytes.</exception>
    public static void An10922Aes128(AesCmac master, ReadOnlySpan<byte> m, Span<byte> diversifiedKey)
    {
        ArgumentNullException.ThrowIfNull(master);
        if (m.Length is < 1 or > InputLengthMax)
        {
            throw new ArgumentException($"The diversification input has 1 to {InputLengthMax} bytes.", nameof(m));
        }

        Span<byte> d = stackalloc byte[1 + m.Length];
        d[0] = Aes128DivConstant;
        m.CopyTo(d[1..]);
        master.ComputePadded(d, PaddedLength, diversifiedKey);
    }

    /// <summary>
    /// The 31-byte diversification input of one of a card's keys:
    /// key usage (1) ‖ card id (8) ‖ application AID (10) ‖ system identifier (12).
    /// </summary>
    public static byte[] CardKeyInput(CardKeyUsage usage, CardId cardId)
    {
        var m = new byte[CardKeyInputLength];
        m[0] = (byte)usage;
        cardId.WriteTo(m.AsSpan(1, CardId.Length));
        PurseAid.Value.CopyTo(m.AsSpan(1 + CardId.Length));
        SystemIdentifier.CopyTo(m.AsSpan(1 + CardId.Length + PurseAid.Value.Length));
        Debug.Assert(1 + CardId.Length + PurseAid.Value.Length + SystemIdentifier.Length == CardKeyInputLength, "Input layout must fill 31 bytes.");
        return m;
    }
}

/// <summary>Which of a card's static keys a diversification input is for.</summary>
public enum CardKeyUsage : byte
{
    /// <summary>K-ENC: source of the session encryption key.</summary>
    Encryption = 0x01,

    /// <summary>K-MAC: source of the session MAC keys and cryptograms.</summary>
    Mac = 0x02,
}
