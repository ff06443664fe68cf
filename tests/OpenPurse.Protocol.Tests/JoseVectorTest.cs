using OpenPurse.Protocol.Jose;
using OpenPurse.Testing;

namespace OpenPurse.Protocol.Tests;

/// <summary>JWS and JWK against RFC 7515 Appendix A.3 (ES256) and RFC 7638 §3.1 (thumbprint).</summary>
public sealed class JoseVectorTest
{
    private static VectorRecord Rfc7515 => VectorFile.Read("rfc7515-a3.txt")[0];

    private static JsonWebKey Rfc7515Key => new() { Kty = "EC", Crv = "P-256", X = Rfc7515["jwk.x"], Y = Rfc7515["jwk.y"] };

    [Fact]
    public void TryVerify_Rfc7515A3Example_IsRefusedAsHighS()
    {
        // The RFC's signature has s = C50A…, above n/2: valid ECDSA, but the twin OpenPurse never makes.
        Assert.True(SignatureTwin.IsHighS(Rfc7515["jws_compact"]));

        Assert.False(Jws.TryVerify(Rfc7515["jws_compact"], Rfc7515Key, expectedType: null, out var payload, out var error));
        Assert.Equal(JwsError.HighS, error);
        Assert.Empty(payload);
    }

    [Fact]
    public void TryVerify_Rfc7515A3ExampleLowSTwin_ReturnsThePayload()
    {
        var twin = SignatureTwin.Of(Rfc7515["jws_compact"]);

        Assert.Equal(Rfc7515["signing_input"], twin[..twin.LastIndexOf('.')]);
        Assert.True(Jws.TryVerify(twin, Rfc7515Key, expectedType: null, out var payload, out _));
        Assert.Equal(Rfc7515.Hex("payload.hex"), payload);
    }

    [Fact]
    public void TryVerify_Rfc7515A3ExampleWithPayloadOfAnotherExample_IsRefused()
    {
        var parts = Rfc7515["jws_compact"].Split('.');
        var other = parts[0] + "." + System.Buffers.Text.Base64Url.EncodeToString("{\"iss\":\"joe\"}"u8) + "." + SignatureTwin.Of(Rfc7515["jws_compact"]).Split('.')[2];

        Assert.False(Jws.TryVerify(other, Rfc7515Key, null, out _, out var error));
        Assert.Equal(JwsError.BadSignature, error);
    }

    [Fact]
    public void Thumbprint_Rfc7638Example_MatchesPublishedValue()
    {
        var v = VectorFile.Read("rfc7638-3.1.txt").Single(r => r.Has("jwk.n"));
        var key = new JsonWebKey { Kty = v["jwk.kty"], N = v["jwk.n"], E = v["jwk.e"], Alg = v["jwk.alg"], Kid = v["jwk.kid"] };

        Assert.Equal(v["thumbprint.b64u"], key.Thumbprint());
    }

    [Fact]
    public void Thumbprint_EcKeyOfRfc7515_MatchesPublishedValue()
    {
        var v = VectorFile.Read("rfc7638-3.1.txt").Single(r => r.Has("ec.jwk.x"));

        Assert.Equal(v["ec.thumbprint.b64u"], Rfc7515Key.Thumbprint());
    }
}
