using System.Buffers.Binary;
using System.Diagnostics;
using System.Security.Cryptography;

namespace OpenPurse.Protocol.Channel;

/// <summary>
/// The GlobalPlatform SCP03 key schedule (GP Card Specification Amendment D §6.2): session
/// keys and the card and host cryptograms, derived with the SP 800-108 counter KDF over
/// AES-CMAC from the static keys and the two challenges.
/// </summary>
public static class Scp03
{
    /// <summary>Length of the host and card challenges in bytes (S8 mode).</summary>
    public const int ChallengeLength = 8;

    /// <summary>Length of the card and host cryptograms in bytes (S8 mode).</summary>
    public const int CryptogramLength = 8;

    /// <summary>Length of a truncated C-MAC or R-MAC in bytes (S8 mode).</summary>
    public const int MacLength = 8;

    // Derivation constants, Amendment D table 6-1.
    internal const byte CardCryptogramConstant = 0x00;
    internal const byte HostCryptogramConstant = 0x01;
    internal const byte CardChallengeConstant = 0x02;
    internal const byte SessionEncConstant = 0x04;
    internal const byte SessionMacConstant = 0x06;
    internal const byte SessionRmacConstant = 0x07;

    private const int LabelLength = 12; // 11 zero bytes ‖ constant.

    /// <summary>
    /// Derives the three session keys, each as long as the static key (128 bits for AES-128).
    /// S-ENC comes from K-ENC; S-MAC and S-RMAC from K-MAC.
    /// </summary>
    /// <exception cref="ArgumentException">A challenge is not 8 bytes.</exception>
    public static SessionKeys DeriveSessionKeys(ICmac staticEnc, ICmac staticMac, ReadOnlySpan<byte> hostChallenge, ReadOnlySpan<byte> cardChallenge, int keyLength = 16)
    {
        Span<byte> context = stackalloc byte[2 * ChallengeLength];
        Context(hostChallenge, cardChallenge, context);
        var enc = new byte[keyLength];
        var mac = new byte[keyLength];
        var rmac = new byte[keyLength];
        Derive(staticEnc, SessionEncConstant, context, enc);
        Derive(staticMac, SessionMacConstant, context, mac);
        Derive(staticMac, SessionRmacConstant, context, rmac);
        return new SessionKeys(enc, mac, rmac);
    }

    /// <summary>The card cryptogram the card sends in its INITIALIZE UPDATE answer.</summary>
    public static void CardCryptogram(ICmac sessionMac, ReadOnlySpan<byte> hostChallenge, ReadOnlySpan<byte> cardChallenge, Span<byte> cryptogram) =>
        Cryptogram(sessionMac, CardCryptogramConstant, hostChallenge, cardChallenge, cryptogram);

    /// <summary>The host cryptogram the host sends in EXTERNAL AUTHENTICATE.</summary>
    public static void HostCryptogram(ICmac sessionMac, ReadOnlySpan<byte> hostChallenge, ReadOnlySpan<byte> cardChallenge, Span<byte> cryptogram) =>
        Cryptogram(sessionMac, HostCryptogramConstant, hostChallenge, cardChallenge, cryptogram);

    /// <summary>
    /// The SCP03 KDF: PRF input is 11×00 ‖ constant ‖ 00 ‖ L (16 bits, in bits) ‖ i (8 bits) ‖ context,
    /// that is SP 800-108 counter mode with an 8-bit counter between the fixed parts.
    /// </summary>
    internal static void Derive(ICmac key, byte constant, ReadOnlySpan<byte> context, Span<byte> output)
    {
        Debug.Assert(output.Length is > 0 and <= 32, "SCP03 derives at most 256 bits.");
        Span<byte> before = stackalloc byte[LabelLength + 1 + 2];
        before.Clear();
        before[LabelLength - 1] = constant;
        // before[LabelLength] is the 00 separator.
        BinaryPrimitives.WriteUInt16BigEndian(before[(LabelLength + 1)..], (ushort)(output.Length * 8));
        Kbkdf.DeriveCounterMode(key, before, context, counterBytes: 1, output);
    }

    private static void Cryptogram(ICmac sessionMac, byte constant, ReadOnlySpan<byte> hostChallenge, ReadOnlySpan<byte> cardChallenge, Span<byte> cryptogram)
    {
        Span<byte> context = stackalloc byte[2 * ChallengeLength];
        Context(hostChallenge, cardChallenge, context);
        Derive(sessionMac, constant, context, cryptogram[..CryptogramLength]);
    }

    private static void Context(ReadOnlySpan<byte> hostChallenge, ReadOnlySpan<byte> cardChallenge, Span<byte> context)
    {
        if (hostChallenge.Length != ChallengeLength || cardChallenge.Length != ChallengeLength)
        {
            throw new ArgumentException($"SCP03 challenges have {ChallengeLength} bytes.");
        }

        hostChallenge.CopyTo(context);
        cardChallenge.CopyTo(context[ChallengeLength..]);
    }
}

/// <summary>The three keys of one secure-channel session. Zeroed on dispose.</summary>
public sealed class SessionKeys : IDisposable
{
    private readonly byte[] _enc;
    private readonly byte[] _mac;
    private readonly byte[] _rmac;

    /// <summary>Takes ownership of the three key arrays.</summary>
    public SessionKeys(byte[] enc, byte[] mac, byte[] rmac)
    {
        ArgumentNullException.ThrowIfNull(enc);
        ArgumentNullException.ThrowIfNull(mac);
        ArgumentNullException.ThrowIfNull(rmac);
        _enc = enc;
        _mac = mac;
        _rmac = rmac;
    }

    /// <summary>S-ENC: command and response encryption.</summary>
    public ReadOnlySpan<byte> Enc => _enc;

    /// <summary>S-MAC: command MACs and both cryptograms.</summary>
    public ReadOnlySpan<byte> Mac => _mac;

    /// <summary>S-RMAC: response MACs.</summary>
    public ReadOnlySpan<byte> Rmac => _rmac;

    /// <inheritdoc/>
    public void Dispose()
    {
        CryptographicOperations.ZeroMemory(_enc);
        CryptographicOperations.ZeroMemory(_mac);
        CryptographicOperations.ZeroMemory(_rmac);
    }
}

/// <summary>SCP03 security level, the P1 of EXTERNAL AUTHENTICATE (GP Amendment D table 7-3 bit values).</summary>
[Flags]
public enum SecurityLevel : byte
{
    /// <summary>No secure messaging after authentication.</summary>
    None = 0x00,

    /// <summary>C-MAC on every command.</summary>
    CommandMac = 0x01,

    /// <summary>Command data encrypted (C-DECRYPTION, as the card sees it).</summary>
    CommandEncryption = 0x02,

    /// <summary>R-MAC on every response.</summary>
    ResponseMac = 0x10,

    /// <summary>Response data encrypted (R-ENCRYPTION).</summary>
    ResponseEncryption = 0x20,

    /// <summary>Everything: what the OpenPurse card requires.</summary>
    Full = CommandMac | CommandEncryption | ResponseMac | ResponseEncryption,
}
