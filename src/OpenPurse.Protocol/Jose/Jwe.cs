using System.Buffers.Binary;
using System.Buffers.Text;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;

namespace OpenPurse.Protocol.Jose;

/// <summary>Why a JWE was refused: the message names what was wrong, never what the JWE holds.</summary>
public sealed class JweException : Exception
{
    /// <summary>Creates the exception.</summary>
    public JweException()
    {
    }

    /// <summary>Creates the exception with its reason.</summary>
    public JweException(string message)
        : base(message)
    {
    }

    /// <summary>Creates the exception with its reason and cause.</summary>
    public JweException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}

/// <summary>
/// Compact JWE (RFC 7516 §7.1) with one algorithm pair only: <c>alg</c> <c>ECDH-ES</c>, direct key
/// agreement on P-256 with a fresh ephemeral key per message and the Concat KDF of RFC 7518 §4.6,
/// and <c>enc</c> <c>A256GCM</c>. A sender encrypts to a recipient's published key so that whoever
/// carries the message between them (the operator, for card data) cannot read it.
/// </summary>
/// <remarks>
/// Decryption refuses everything else before any key is used: another <c>alg</c> or <c>enc</c>,
/// compression (<c>zip</c>), critical extensions, another key id, an ephemeral key not on P-256 or
/// with a private part, an encrypted key (there is none with direct agreement), and header members
/// it does not know. The protected header is the additional authenticated data, so a change to any
/// of its bytes fails the tag like a change to the ciphertext.
/// </remarks>
public static class Jwe
{
    /// <summary>The one key management algorithm: ECDH-ES, direct key agreement.</summary>
    public const string EcdhEs = "ECDH-ES";

    /// <summary>The one content encryption: AES-256 in GCM with a 96-bit IV and a 128-bit tag.</summary>
    public const string A256Gcm = "A256GCM";

    /// <summary>The largest compact JWE accepted: card data is small; this bounds parsing work.</summary>
    public const int CompactLengthMax = 16 * 1024;

    private const int KeyBits = 256;
    private const int IvLength = 12;
    private const int TagLength = 16;
    private const int CoordinateLength = 32;

    /// <summary>The public JWK of a P-256 key agreement key, with its RFC 7638 thumbprint as kid unless one is given.</summary>
    /// <exception cref="ArgumentException">The key is not on P-256.</exception>
    public static JsonWebKey PublicKeyOf(ECDiffieHellman key, string? kid = null)
    {
        ArgumentNullException.ThrowIfNull(key);
        var parameters = key.ExportParameters(includePrivateParameters: false);
        if (parameters.Curve.Oid.Value != ECCurve.NamedCurves.nistP256.Oid.Value)
        {
            throw new ArgumentException("JWE keys here are P-256 keys (ECDH-ES).", nameof(key));
        }

        var jwk = new JsonWebKey
        {
            Kty = "EC",
            Crv = "P-256",
            X = Base64Url.EncodeToString(parameters.Q.X),
            Y = Base64Url.EncodeToString(parameters.Q.Y),
            Use = "enc",
            Alg = EcdhEs,
        };
        return jwk with { Kid = kid ?? jwk.Thumbprint() };
    }

    /// <summary>Encrypts <paramref name="plaintext"/> to <paramref name="recipient"/>: <c>header..iv.ciphertext.tag</c>, with the recipient's kid in the header.</summary>
    /// <exception cref="ArgumentException">The recipient is not a P-256 key with a kid meant for ECDH-ES.</exception>
    public static string Encrypt(ReadOnlySpan<byte> plaintext, JsonWebKey recipient)
    {
        ArgumentNullException.ThrowIfNull(recipient);
        if (string.IsNullOrEmpty(recipient.Kid) || recipient.Alg is not (null or EcdhEs) || recipient.Use is not (null or "enc"))
        {
            throw new ArgumentException("The recipient's key needs a kid and must be meant for ECDH-ES encryption.", nameof(recipient));
        }

        using var recipientKey = ImportPublic(recipient.Crv, recipient.X, recipient.Y)
            ?? throw new ArgumentException("The recipient's key is not a P-256 public key.", nameof(recipient));
        using var ephemeral = ECDiffieHellman.Create(ECCurve.NamedCurves.nistP256);
        var epk = ephemeral.ExportParameters(includePrivateParameters: false);

        using var headerBuffer = new MemoryStream();
        using (var writer = new Utf8JsonWriter(headerBuffer))
        {
            writer.WriteStartObject();
            writer.WriteString("alg", EcdhEs);
            writer.WriteString("enc", A256Gcm);
            writer.WriteString("kid", recipient.Kid);
            writer.WriteStartObject("epk");
            writer.WriteString("kty", "EC");
            writer.WriteString("crv", "P-256");
            writer.WriteString("x", Base64Url.EncodeToString(epk.Q.X));
            writer.WriteString("y", Base64Url.EncodeToString(epk.Q.Y));
            writer.WriteEndObject();
            writer.WriteEndObject();
        }

        var header = Base64Url.EncodeToString(headerBuffer.ToArray());
        var iv = RandomNumberGenerator.GetBytes(IvLength);
        var ciphertext = new byte[plaintext.Length];
        var tag = new byte[TagLength];
        var cek = AgreedKey(ephemeral, recipientKey.PublicKey, [], []);
        try
        {
            using var aes = new AesGcm(cek, TagLength);
            aes.Encrypt(iv, plaintext, ciphertext, tag, Encoding.ASCII.GetBytes(header));
        }
        finally
        {
            CryptographicOperations.ZeroMemory(cek);
        }

        return string.Join('.', header, "", Base64Url.EncodeToString(iv), Base64Url.EncodeToString(ciphertext), Base64Url.EncodeToString(tag));
    }

    /// <summary>Decrypts a compact JWE made for the key <paramref name="keyId"/> and returns its plaintext.</summary>
    /// <param name="compact">The JWE.</param>
    /// <param name="key">The recipient's private key; the caller serializes concurrent use of one instance.</param>
    /// <param name="keyId">The key's id, which the header's <c>kid</c> must name.</param>
    /// <exception cref="JweException">Not a JWE of this algorithm pair for this key, or it does not decrypt (the tag does not match).</exception>
    public static byte[] Decrypt(string? compact, ECDiffieHellman key, string keyId)
    {
        ArgumentNullException.ThrowIfNull(key);
        ArgumentException.ThrowIfNullOrEmpty(keyId);
        if (compact is null || compact.Length > CompactLengthMax)
        {
            throw new JweException($"A JWE is a string of at most {CompactLengthMax} characters.");
        }

        var parts = compact.Split('.');
        if (parts.Length != 5)
        {
            throw new JweException("A compact JWE has five parts.");
        }

        if (parts[1].Length != 0)
        {
            throw new JweException("ECDH-ES agrees on the key directly: the encrypted key part must be empty.");
        }

        if (!Jws.TryDecode(parts[0], out var headerJson) || !Jws.TryDecode(parts[2], out var iv) || !Jws.TryDecode(parts[3], out var ciphertext) || !Jws.TryDecode(parts[4], out var tag))
        {
            throw new JweException("A part of the JWE is not base64url.");
        }

        if (iv.Length != IvLength || tag.Length != TagLength)
        {
            throw new JweException($"A256GCM takes a {IvLength}-byte IV and a {TagLength}-byte tag.");
        }

        var header = ReadHeader(headerJson);
        if (!string.Equals(header.Kid, keyId, StringComparison.Ordinal))
        {
            throw new JweException("The JWE is for another key (kid).");
        }

        using var ephemeral = ImportPublic(header.EpkCrv, header.EpkX, header.EpkY)
            ?? throw new JweException("The ephemeral key (epk) is not a P-256 point.");
        var cek = AgreedKey(key, ephemeral.PublicKey, header.PartyU, header.PartyV);
        var plaintext = new byte[ciphertext.Length];
        try
        {
            using var aes = new AesGcm(cek, TagLength);
            aes.Decrypt(iv, ciphertext, tag, plaintext, Encoding.ASCII.GetBytes(parts[0]));
            return plaintext;
        }
        catch (CryptographicException e)
        {
            CryptographicOperations.ZeroMemory(plaintext);
            throw new JweException("The JWE does not decrypt: its tag does not match (changed on the way, or made for another key).", e);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(cek);
        }
    }

    /// <summary>
    /// The Concat KDF of NIST SP 800-56A §5.8.1 as RFC 7518 §4.6.2 uses it: rounds of
    /// SHA-256(counter ‖ Z ‖ OtherInfo), OtherInfo being AlgorithmID, PartyUInfo and PartyVInfo,
    /// each with its 32-bit big-endian length, then the key length in bits.
    /// </summary>
    /// <param name="z">The shared secret (the x coordinate of the agreed point).</param>
    /// <param name="algorithmId">For direct agreement, the <c>enc</c> value.</param>
    /// <param name="keyBits">The key length in bits, a multiple of 8.</param>
    /// <param name="partyU">The decoded <c>apu</c>, or empty.</param>
    /// <param name="partyV">The decoded <c>apv</c>, or empty.</param>
    internal static byte[] ConcatKdf(ReadOnlySpan<byte> z, string algorithmId, int keyBits, ReadOnlySpan<byte> partyU, ReadOnlySpan<byte> partyV)
    {
        var algorithm = Encoding.ASCII.GetBytes(algorithmId);
        var input = new byte[4 + z.Length + 4 + algorithm.Length + 4 + partyU.Length + 4 + partyV.Length + 4];
        var at = 4;
        z.CopyTo(input.AsSpan(at));
        at += z.Length;
        at = WithLength(input, at, algorithm);
        at = WithLength(input, at, partyU);
        at = WithLength(input, at, partyV);
        BinaryPrimitives.WriteInt32BigEndian(input.AsSpan(at), keyBits);

        var key = new byte[keyBits / 8];
        var round = new byte[SHA256.HashSizeInBytes];
        try
        {
            for (var (counter, written) = (1, 0); written < key.Length; counter++, written += round.Length)
            {
                BinaryPrimitives.WriteInt32BigEndian(input, counter);
                SHA256.HashData(input, round);
                round.AsSpan(0, Math.Min(round.Length, key.Length - written)).CopyTo(key.AsSpan(written));
            }

            return key;
        }
        finally
        {
            CryptographicOperations.ZeroMemory(input);
            CryptographicOperations.ZeroMemory(round);
        }
    }

    private static int WithLength(byte[] target, int at, ReadOnlySpan<byte> value)
    {
        BinaryPrimitives.WriteInt32BigEndian(target.AsSpan(at), value.Length);
        value.CopyTo(target.AsSpan(at + 4));
        return at + 4 + value.Length;
    }

    private static byte[] AgreedKey(ECDiffieHellman own, ECDiffieHellmanPublicKey other, ReadOnlySpan<byte> partyU, ReadOnlySpan<byte> partyV)
    {
        var z = own.DeriveRawSecretAgreement(other);
        try
        {
            return ConcatKdf(z, A256Gcm, KeyBits, partyU, partyV);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(z);
        }
    }

    /// <summary>A P-256 public key, or null when the coordinates are not full-length base64url of a point on the curve.</summary>
    private static ECDiffieHellman? ImportPublic(string? crv, string? x, string? y)
    {
        if (crv != "P-256" || x is null || y is null || !Jws.TryDecode(x, out var xBytes) || !Jws.TryDecode(y, out var yBytes)
            || xBytes.Length != CoordinateLength || yBytes.Length != CoordinateLength)
        {
            return null;
        }

        try
        {
            // The import checks that the point is on the curve: an invalid point would leak the key.
            return ECDiffieHellman.Create(new ECParameters { Curve = ECCurve.NamedCurves.nistP256, Q = new ECPoint { X = xBytes, Y = yBytes } });
        }
        catch (CryptographicException)
        {
            return null;
        }
    }

    private static Header ReadHeader(byte[] json)
    {
        try
        {
            using var document = JsonDocument.Parse(json);
            if (document.RootElement.ValueKind != JsonValueKind.Object)
            {
                throw new JweException("The JWE header is not a JSON object.");
            }

            var header = new Header();
            var seen = new HashSet<string>(StringComparer.Ordinal);
            foreach (var member in document.RootElement.EnumerateObject())
            {
                if (!seen.Add(member.Name))
                {
                    throw new JweException($"The JWE header names '{member.Name}' twice.");
                }

                var value = member.Value;
                switch (member.Name)
                {
                    case "alg":
                        header.Alg = StringOf(value, "alg");
                        break;
                    case "enc":
                        header.Enc = StringOf(value, "enc");
                        break;
                    case "kid":
                        header.Kid = StringOf(value, "kid");
                        break;
                    case "epk":
                        ReadEphemeralKey(value, header);
                        break;
                    case "apu":
                        header.PartyU = Base64UrlOf(value, "apu");
                        break;
                    case "apv":
                        header.PartyV = Base64UrlOf(value, "apv");
                        break;
                    case "typ" or "cty":
                        StringOf(value, member.Name);
                        break;
                    case "zip":
                        throw new JweException("Compressed JWEs (zip) are refused.");
                    case "crit":
                        throw new JweException("The JWE header asks for extensions (crit) that are not implemented here.");
                    default:
                        throw new JweException($"The JWE header member '{member.Name}' is not accepted here.");
                }
            }

            if (header.Alg != EcdhEs)
            {
                throw new JweException($"The JWE's alg must be {EcdhEs}.");
            }

            if (header.Enc != A256Gcm)
            {
                throw new JweException($"The JWE's enc must be {A256Gcm}.");
            }

            if (header.Kid is null)
            {
                throw new JweException("The JWE header has no kid.");
            }

            if (header.EpkX is null)
            {
                throw new JweException("The JWE header has no ephemeral key (epk).");
            }

            return header;
        }
        catch (Exception e) when (e is JsonException or InvalidOperationException)
        {
            // GetString and Name throw on strings that are not valid UTF-8.
            throw new JweException("The JWE header is not well-formed JSON.", e);
        }
    }

    private static void ReadEphemeralKey(JsonElement epk, Header header)
    {
        if (epk.ValueKind != JsonValueKind.Object)
        {
            throw new JweException("The JWE's epk is not a JSON object.");
        }

        string? kty = null;
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var member in epk.EnumerateObject())
        {
            if (!seen.Add(member.Name))
            {
                throw new JweException($"The JWE's epk names '{member.Name}' twice.");
            }

            switch (member.Name)
            {
                case "kty":
                    kty = StringOf(member.Value, "epk.kty");
                    break;
                case "crv":
                    header.EpkCrv = StringOf(member.Value, "epk.crv");
                    break;
                case "x":
                    header.EpkX = StringOf(member.Value, "epk.x");
                    break;
                case "y":
                    header.EpkY = StringOf(member.Value, "epk.y");
                    break;
                case "d":
                    throw new JweException("The JWE's epk holds a private key (d).");
                default:
                    // Optional public members of a JWK (kid, use, …) change nothing here.
                    break;
            }
        }

        if (kty != "EC" || header.EpkCrv != "P-256")
        {
            throw new JweException("The JWE's epk must be an EC key on P-256.");
        }
    }

    private static string StringOf(JsonElement value, string name) =>
        value.ValueKind == JsonValueKind.String ? value.GetString()! : throw new JweException($"The JWE header's '{name}' is not a string.");

    private static byte[] Base64UrlOf(JsonElement value, string name) =>
        Jws.TryDecode(StringOf(value, name), out var bytes) ? bytes : throw new JweException($"The JWE header's '{name}' is not base64url.");

    private sealed class Header
    {
        public string? Alg { get; set; }

        public string? Enc { get; set; }

        public string? Kid { get; set; }

        public string? EpkCrv { get; set; }

        public string? EpkX { get; set; }

        public string? EpkY { get; set; }

        public byte[] PartyU { get; set; } = [];

        public byte[] PartyV { get; set; } = [];
    }
}
