using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Nodes;
using Jose;
using OpenPurse.Protocol.Jose;
using Base64Url = System.Buffers.Text.Base64Url;

namespace OpenPurse.Authorizer.Tests;

/// <summary>
/// Compact JWE with ECDH-ES and A256GCM: the RFC 7518 example of the key agreement, round trips
/// with an independent implementation (jose-jwt) in both directions, and every refusal.
/// </summary>
public sealed class JweTest : IDisposable
{
    private readonly ECDiffieHellman _recipient = ECDiffieHellman.Create(ECCurve.NamedCurves.nistP256);

    private JsonWebKey PublicKey => Jwe.PublicKeyOf(_recipient);

    public void Dispose() => _recipient.Dispose();

    /// <summary>RFC 7518 Appendix C: Alice's ephemeral key, Bob's key, apu "Alice", apv "Bob", enc A128GCM.</summary>
    [Fact]
    public void KeyAgreement_Rfc7518AppendixC_GivesTheRfcsZAndDerivedKey()
    {
        using var alice = Import("gI0GAILBdu7T53akrFmMyGcsF3n5dO7MmwNBHKW5SV0", "SLW_xSffzlPWrHEVI30DHM_4egVwt3NQqeUD7nMFpps", "0_NxaRPUMQoAJt50Gz8YiTr8gRTwyEaCumd-MToTmIo");
        using var bob = Import("weNJy2HscCSM6AEDTDg04biOvhFhyyWvOHQfeF_PxMQ", "e8lnCO-AlStT-NJVX-crhB7QRYhiix03illJOVAOyck", "VEmDZpDXXK8p8N0Cndsxs924q6nS1RXFASRl6BfUqdw");

        var z = bob.DeriveRawSecretAgreement(alice.PublicKey);
        var derived = Jwe.ConcatKdf(z, "A128GCM", 128, "Alice"u8, "Bob"u8);

        Assert.Equal(
            new byte[] { 158, 86, 217, 29, 129, 113, 53, 211, 114, 131, 66, 131, 191, 132, 38, 156, 251, 49, 110, 163, 218, 128, 106, 72, 246, 218, 167, 121, 140, 254, 144, 196 },
            z);
        Assert.Equal("VqqN6vgjbSBcIijNcacQGg", Base64Url.EncodeToString(derived));
    }

    [Fact]
    public void Ours_DecryptsWithJoseJwt()
    {
        var compact = Jwe.Encrypt("{\"pan\":\"4242424242424242\"}"u8, PublicKey);

        var plaintext = JWT.Decode(compact, _recipient, JweAlgorithm.ECDH_ES, JweEncryption.A256GCM);

        Assert.Equal("{\"pan\":\"4242424242424242\"}", plaintext);
        Assert.Equal(PublicKey.Kid, JWT.Headers(compact)["kid"]);
    }

    [Fact]
    public void JoseJwts_DecryptsWithOurs()
    {
        using var publicOnly = ECDiffieHellman.Create(_recipient.ExportParameters(includePrivateParameters: false));
        var compact = JWT.Encode("card data", publicOnly, JweAlgorithm.ECDH_ES, JweEncryption.A256GCM, extraHeaders: new Dictionary<string, object> { ["kid"] = PublicKey.Kid! });

        Assert.Equal("card data", Encoding.UTF8.GetString(Jwe.Decrypt(compact, _recipient, PublicKey.Kid!)));
    }

    [Fact]
    public void RoundTrip_EachMessageHasItsOwnEphemeralKeyAndIv()
    {
        var first = Jwe.Encrypt("same"u8, PublicKey);
        var second = Jwe.Encrypt("same"u8, PublicKey);

        Assert.NotEqual(first, second);
        Assert.Equal("same", Encoding.UTF8.GetString(Jwe.Decrypt(first, _recipient, PublicKey.Kid!)));
        Assert.Equal("same", Encoding.UTF8.GetString(Jwe.Decrypt(second, _recipient, PublicKey.Kid!)));
    }

    public static TheoryData<string, string, string> HeaderChanges() => new()
    {
        { "alg", "\"ECDH-ES+A256KW\"", "alg" },
        { "alg", "\"dir\"", "alg" },
        { "enc", "\"A128GCM\"", "enc" },
        { "enc", "\"A256CBC-HS512\"", "enc" },
        { "zip", "\"DEF\"", "zip" },
        { "crit", "[\"exp\"]", "crit" },
        { "kid", "\"another-key\"", "another key" },
        { "x5u", "\"https://example.org/\"", "x5u" },
    };

    [Theory]
    [MemberData(nameof(HeaderChanges))]
    public void Decrypt_RefusesAHeaderOutsideTheOnePair(string member, string json, string named)
    {
        var changed = WithHeader(Jwe.Encrypt("x"u8, PublicKey), header => header[member] = JsonNode.Parse(json));

        var refused = Assert.Throws<JweException>(() => Jwe.Decrypt(changed, _recipient, PublicKey.Kid!));

        Assert.Contains(named, refused.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Decrypt_RefusesAnEphemeralKeyOffTheCurve()
    {
        var changed = WithHeader(Jwe.Encrypt("x"u8, PublicKey), header => header["epk"]!["y"] = Base64Url.EncodeToString(new byte[32]));

        var refused = Assert.Throws<JweException>(() => Jwe.Decrypt(changed, _recipient, PublicKey.Kid!));

        Assert.Contains("not a P-256 point", refused.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Decrypt_RefusesAnEphemeralKeyOnAnotherCurve()
    {
        using var p384 = ECDiffieHellman.Create(ECCurve.NamedCurves.nistP384);
        var q = p384.ExportParameters(false).Q;
        var changed = WithHeader(Jwe.Encrypt("x"u8, PublicKey), header => header["epk"] = new JsonObject
        {
            ["kty"] = "EC",
            ["crv"] = "P-384",
            ["x"] = Base64Url.EncodeToString(q.X),
            ["y"] = Base64Url.EncodeToString(q.Y),
        });

        var refused = Assert.Throws<JweException>(() => Jwe.Decrypt(changed, _recipient, PublicKey.Kid!));

        Assert.Contains("P-256", refused.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Decrypt_RefusesAnEphemeralKeyWithItsPrivatePart()
    {
        var changed = WithHeader(Jwe.Encrypt("x"u8, PublicKey), header => header["epk"]!["d"] = Base64Url.EncodeToString(new byte[32]));

        Assert.Contains("private", Assert.Throws<JweException>(() => Jwe.Decrypt(changed, _recipient, PublicKey.Kid!)).Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(2)]
    [InlineData(3)]
    [InlineData(4)]
    public void Decrypt_RefusesAChangedIvCiphertextOrTag(int part)
    {
        var parts = Jwe.Encrypt("{\"pan\":\"4242424242424242\"}"u8, PublicKey).Split('.');
        var bytes = Base64Url.DecodeFromChars(parts[part]);
        bytes[0] ^= 0x01;
        parts[part] = Base64Url.EncodeToString(bytes);

        var refused = Assert.Throws<JweException>(() => Jwe.Decrypt(string.Join('.', parts), _recipient, PublicKey.Kid!));

        Assert.Contains("tag does not match", refused.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Decrypt_RefusesAHeaderChangedWithinTheRules_ByTheTag()
    {
        // A header that passes every check but is not the one encrypted with: the AAD differs.
        var changed = WithHeader(Jwe.Encrypt("x"u8, PublicKey), header => header["typ"] = "JOSE");

        Assert.Contains("tag does not match", Assert.Throws<JweException>(() => Jwe.Decrypt(changed, _recipient, PublicKey.Kid!)).Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Decrypt_RefusesAnotherKeysMessage()
    {
        using var other = ECDiffieHellman.Create(ECCurve.NamedCurves.nistP256);
        var forOther = Jwe.Encrypt("x"u8, Jwe.PublicKeyOf(other) with { Kid = PublicKey.Kid });

        Assert.Throws<JweException>(() => Jwe.Decrypt(forOther, _recipient, PublicKey.Kid!));
    }

    [Theory]
    [InlineData("")]
    [InlineData("a.b.c")]
    [InlineData("a.b.c.d.e.f")]
    [InlineData("eyJhbGciOiJFQ0RILUVTIn0.AAAA.AAAAAAAAAAAAAAAA.AA.AAAAAAAAAAAAAAAAAAAAAA")]
    [InlineData("e30..AAAAAAAAAAAAAAAA.AA.AAAAAAAAAAAAAAAAAAAAAA")]
    [InlineData("!!!..AAAAAAAAAAAAAAAA.AA.AAAAAAAAAAAAAAAAAAAAAA")]
    public void Decrypt_RefusesWhatIsNotACompactJweOfThisPair(string compact) =>
        Assert.Throws<JweException>(() => Jwe.Decrypt(compact, _recipient, PublicKey.Kid!));

    [Fact]
    public void Decrypt_RefusesAnOverlongJwe_BeforeParsing() =>
        Assert.Contains("at most", Assert.Throws<JweException>(() => Jwe.Decrypt(new string('A', Jwe.CompactLengthMax + 1), _recipient, PublicKey.Kid!)).Message, StringComparison.Ordinal);

    private static ECDiffieHellman Import(string x, string y, string d) => ECDiffieHellman.Create(new ECParameters
    {
        Curve = ECCurve.NamedCurves.nistP256,
        Q = new ECPoint { X = Base64Url.DecodeFromChars(x), Y = Base64Url.DecodeFromChars(y) },
        D = Base64Url.DecodeFromChars(d),
    });

    private static string WithHeader(string compact, Action<JsonObject> change)
    {
        var parts = compact.Split('.');
        var header = JsonNode.Parse(Base64Url.DecodeFromChars(parts[0]))!.AsObject();
        change(header);
        parts[0] = Base64Url.EncodeToString(Encoding.UTF8.GetBytes(header.ToJsonString()));
        return string.Join('.', parts);
    }
}
