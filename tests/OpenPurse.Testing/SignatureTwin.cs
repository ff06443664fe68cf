using System.Buffers.Text;
using System.Globalization;
using System.Numerics;

namespace OpenPurse.Testing;

/// <summary>
/// The mirror image of an ES256 signature, as anyone on the way can make it without the key:
/// (r, s) becomes (r, n − s), which plain ECDSA accepts for the same message and key. Written
/// here from the curve's order alone, independently of the code under test.
/// </summary>
public static class SignatureTwin
{
    private const int ScalarLength = 32;

    // The order n of the P-256 base point (SEC 2 §2.4.2).
    private static readonly BigInteger s_order = BigInteger.Parse(
        "0FFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551", NumberStyles.HexNumber, CultureInfo.InvariantCulture);

    /// <summary>The compact JWS with its signature's s replaced by n − s; header and payload untouched.</summary>
    public static string Of(string compact)
    {
        ArgumentNullException.ThrowIfNull(compact);
        var dot = compact.LastIndexOf('.');
        var signature = Base64Url.DecodeFromChars(compact.AsSpan(dot + 1));
        if (dot < 0 || signature.Length != 2 * ScalarLength)
        {
            throw new ArgumentException("Not an ES256 compact JWS.", nameof(compact));
        }

        var twin = s_order - new BigInteger(signature.AsSpan(ScalarLength), isUnsigned: true, isBigEndian: true);
        var s = signature.AsSpan(ScalarLength);
        s.Clear();
        twin.TryWriteBytes(s[(ScalarLength - twin.GetByteCount(isUnsigned: true))..], out _, isUnsigned: true, isBigEndian: true);
        return compact[..(dot + 1)] + Base64Url.EncodeToString(signature);
    }

    /// <summary>Whether the compact JWS's signature has s above n/2 (the form OpenPurse never makes).</summary>
    public static bool IsHighS(string compact)
    {
        ArgumentNullException.ThrowIfNull(compact);
        var signature = Base64Url.DecodeFromChars(compact.AsSpan(compact.LastIndexOf('.') + 1));
        return new BigInteger(signature.AsSpan(ScalarLength), isUnsigned: true, isBigEndian: true) > s_order / 2;
    }
}
