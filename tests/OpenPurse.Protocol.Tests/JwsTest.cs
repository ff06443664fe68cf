using System.Buffers.Text;
using System.Security.Cryptography;
using System.Text;
using OpenPurse.Protocol.Jose;
using OpenPurse.Protocol.Messages;
using OpenPurse.Testing;

namespace OpenPurse.Protocol.Tests;

public class JwsTest
{
    private const string Type = "openpurse-bill+jwt";
    private const string Base64UrlAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

    // One key for the whole class: key generation is the slow part, and no test changes it.
    private static readonly EcdsaSigningKey s_key = EcdsaSigningKey.Generate();
    private static readonly JsonWebKeySet s_keys = new([s_key.PublicKey]);
    private static readonly byte[] s_payload = Encoding.UTF8.GetBytes("""{"amount":"12.34 EUR"}""");

    [Fact]
    public void TryVerify_SignedToken_ReturnsPayload()
    {
        var token = Jws.Sign(s_key, s_payload, Type);

        Assert.True(Jws.TryVerify(token, s_keys, Type, out var payload, out _));
        Assert.Equal(s_payload, payload);
    }

    [Fact]
    public void TryVerify_EmptyPayload_ReturnsEmpty()
    {
        var token = Jws.Sign(s_key, [], Type);

        Assert.True(Jws.TryVerify(token, s_keys, Type, out var payload, out _));
        Assert.Empty(payload);
    }

    [Fact]
    public void TryVerify_SingleKey_ReturnsPayload()
    {
        var token = Jws.Sign(s_key, s_payload, Type);

        Assert.True(Jws.TryVerify(token, s_key.PublicKey, Type, out var payload, out _));
        Assert.Equal(s_payload, payload);
    }

    [Fact]
    public void TryVerify_OtherKeyUnderTheSameKid_RefusedAfterTheFirstWasUsed()
    {
        using var other = EcdsaSigningKey.Generate(s_key.KeyId);
        var token = Jws.Sign(s_key, s_payload, Type);
        Assert.True(Jws.TryVerify(token, s_keys, Type, out _, out _)); // the first key's verifier is now kept

        Assert.False(Jws.TryVerify(token, new JsonWebKeySet([other.PublicKey]), Type, out _, out var error));
        Assert.Equal(JwsError.BadSignature, error);
        Assert.True(Jws.TryVerify(Jws.Sign(other, s_payload, Type), new JsonWebKeySet([other.PublicKey]), Type, out _, out _));
    }

    [Fact]
    public void TryVerify_ManyAtOnceWithOneKey_EachAnsweredForItsOwnToken()
    {
        var tokens = Enumerable.Range(0, 64).Select(i => Jws.Sign(s_key, Encoding.UTF8.GetBytes($"{{\"n\":{i}}}"), Type)).ToArray();
        var forged = tokens.Select(t => t[..^4] + (t[^4] == 'A' ? "B" : "A") + t[^3..]).ToArray();

        var results = new (bool Genuine, bool Forged, string Payload)[tokens.Length * 8];
        Parallel.For(0, results.Length, i =>
        {
            var k = i % tokens.Length;
            var genuine = Jws.TryVerify(tokens[k], s_keys, Type, out var payload, out _);
            results[i] = (genuine, Jws.TryVerify(forged[k], s_keys, Type, out _, out _), Encoding.UTF8.GetString(payload));
        });

        Assert.All(results.Select((r, i) => (r, i)), x => Assert.Equal((true, false, $"{{\"n\":{x.i % tokens.Length}}}"), x.r));
    }

    [Fact]
    public void Sign_ManyTimes_EverySignatureLowS()
    {
        // s is random in the signer: about half of 64 raw signatures are high; none may leave Sign so.
        var tokens = Enumerable.Range(0, 64).Select(_ => Jws.Sign(s_key, s_payload, Type)).ToArray();

        Assert.All(tokens, t => Assert.False(SignatureTwin.IsHighS(t)));
        Assert.All(tokens, t => Assert.True(Jws.TryVerify(t, s_keys, Type, out _, out _)));
    }

    [Fact]
    public void Sign_KeyThatAnswersHighS_IsNormalisedAndVerifies()
    {
        // A key (a PKCS#11 token, say) that returns the high twin of every signature it makes.
        var token = Jws.Sign(new HighSKey(s_key), s_payload, Type);

        Assert.False(SignatureTwin.IsHighS(token));
        Assert.True(Jws.TryVerify(token, s_keys, Type, out var payload, out _));
        Assert.Equal(s_payload, payload);
    }

    [Fact]
    public void TryVerify_HighSTwin_RefusesHighS()
    {
        var twin = SignatureTwin.Of(Jws.Sign(s_key, s_payload, Type));
        Assert.True(SignatureTwin.IsHighS(twin));

        AssertRefused(twin, JwsError.HighS);
    }

    [Fact]
    public void TryVerify_HighSSignature_IsValidEcdsaButRefused()
    {
        // The high twin really is a valid ECDSA signature: only the low-S rule stands between it and acceptance.
        var token = Jws.Sign(s_key, s_payload, Type);
        var signingInput = Encoding.ASCII.GetBytes(token[..token.LastIndexOf('.')]);
        var high = new HighSKey(s_key).SignEs256(signingInput);
        using var verifier = s_key.PublicKey.ToECDsa()!;

        Assert.True(verifier.VerifyData(signingInput, high, HashAlgorithmName.SHA256, DSASignatureFormat.IeeeP1363FixedFieldConcatenation));
        Assert.False(Jws.TryVerify(Encoding.ASCII.GetString(signingInput) + "." + Base64Url.EncodeToString(high), s_keys, Type, out _, out var error));
        Assert.Equal(JwsError.HighS, error);
    }

    [Fact]
    public void Verify_HighSTwin_NamesHighS()
    {
        var twin = SignatureTwin.Of(SignedMessage.Sign(s_key, new Receipt(Guid.NewGuid(), "A-1", "shop", Money.Parse("1.00 EUR"), "digest", DateTimeOffset.UnixEpoch), MessageTypes.Receipt));

        Assert.Null(SignedMessage.Verify<Receipt>(twin, s_keys, MessageTypes.Receipt, out var error));
        Assert.Equal("signature.high_s", error);
    }

    [Fact]
    public void Digest_TwoSignaturesOfOneMessage_AreOneDigest()
    {
        // ECDSA is randomised, and a signature has a twin: neither may change what names the message.
        var first = Jws.Sign(s_key, s_payload, Type);
        var second = Jws.Sign(s_key, s_payload, Type);
        Assert.NotEqual(first, second);

        Assert.Equal(SignedMessage.Digest(first), SignedMessage.Digest(second));
        Assert.Equal(SignedMessage.Digest(first), SignedMessage.Digest(SignatureTwin.Of(first)));
        Assert.Equal(SignedMessage.HostChallengeFor(first), SignedMessage.HostChallengeFor(SignatureTwin.Of(first)));
    }

    [Fact]
    public void Digest_IsSha256OfTheSigningInput()
    {
        var token = Jws.Sign(s_key, s_payload, Type);
        var signingInput = token[..token.LastIndexOf('.')];

        Assert.Equal(SHA256.HashData(Encoding.ASCII.GetBytes(signingInput)), SignedMessage.DigestBytes(token));
        Assert.NotEqual(SignedMessage.Digest(token), SignedMessage.Digest(Jws.Sign(s_key, "{}"u8, Type)));
    }

    [Fact]
    public void Digest_NotAJws_Throws() =>
        Assert.Throws<ArgumentException>(() => SignedMessage.Digest("no-dots"));

    [Theory]
    [InlineData("AAAA", JwsError.AlgorithmNotAllowed)]
    [InlineData("-_-_", JwsError.AlgorithmNotAllowed)]
    // RFC 7519's unsecured form: the empty signature part already makes the token malformed.
    [InlineData("", JwsError.Malformed)]
    public void TryVerify_AlgNone_Refuses(string signature, JwsError expected)
    {
        var token = Unsigned($$"""{"alg":"none","kid":"{{s_key.KeyId}}","typ":"{{Type}}"}""", signature);

        AssertRefused(token, expected);
    }

    [Fact]
    public void TryVerify_Hs256WithPublicKeyAsSecret_RefusesAlgorithm()
    {
        // The classic substitution: the attacker signs with HMAC, using the published key as the secret,
        // hoping the verifier feeds "the key" to whatever algorithm the header names.
        var header = $$"""{"alg":"HS256","kid":"{{s_key.KeyId}}","typ":"{{Type}}"}""";
        var signingInput = Base64Url.EncodeToString(Encoding.UTF8.GetBytes(header)) + "." + Base64Url.EncodeToString(s_payload);
        var secret = Encoding.UTF8.GetBytes(s_key.PublicKey.ToString());
        var mac = HMACSHA256.HashData(secret, Encoding.ASCII.GetBytes(signingInput));

        AssertRefused(signingInput + "." + Base64Url.EncodeToString(mac), JwsError.AlgorithmNotAllowed);
    }

    [Theory]
    [InlineData("ES384")]
    [InlineData("es256")]
    [InlineData("RS256")]
    public void TryVerify_OtherAlg_RefusesAlgorithm(string alg)
    {
        var token = SignHeader(s_key, $$"""{"alg":"{{alg}}","kid":"{{s_key.KeyId}}","typ":"{{Type}}"}""");

        AssertRefused(token, JwsError.AlgorithmNotAllowed);
    }

    [Fact]
    public void TryVerify_UnknownKid_RefusesKey()
    {
        using var stranger = EcdsaSigningKey.Generate("stranger");

        AssertRefused(Jws.Sign(stranger, s_payload, Type), JwsError.UnknownKey);
    }

    [Fact]
    public void TryVerify_NoKid_RefusesKey()
    {
        var token = SignHeader(s_key, $$"""{"alg":"ES256","typ":"{{Type}}"}""");

        AssertRefused(token, JwsError.UnknownKey);
    }

    [Fact]
    public void TryVerify_OtherType_RefusesType()
    {
        // A valid signature over another kind of message must not pass as this kind.
        AssertRefused(Jws.Sign(s_key, s_payload, "openpurse-receipt+jwt"), JwsError.WrongType);
    }

    [Fact]
    public void TryVerify_NoType_RefusesType()
    {
        var token = SignHeader(s_key, $$"""{"alg":"ES256","kid":"{{s_key.KeyId}}"}""");

        AssertRefused(token, JwsError.WrongType);
    }

    [Fact]
    public void TryVerify_Critical_RefusesCritical()
    {
        var token = SignHeader(s_key, $$"""{"alg":"ES256","kid":"{{s_key.KeyId}}","typ":"{{Type}}","crit":["exp"],"exp":1}""");

        AssertRefused(token, JwsError.UnsupportedCritical);
    }

    [Theory]
    [InlineData("""{"alg":"ES256","alg":"ES256","kid":"KID","typ":"TYP"}""")]
    [InlineData("""{"alg":"ES256","kid":"KID","typ":"TYP","alg":"none"}""")]
    [InlineData("""{"alg":"ES256","kid":"KID","kid":"KID","typ":"TYP"}""")]
    [InlineData("""{"alg":"ES256","kid":"KID","typ":"TYP","typ":"TYP"}""")]
    public void TryVerify_DuplicateHeaderMember_RefusesMalformed(string header)
    {
        var token = SignHeader(s_key, header.Replace("KID", s_key.KeyId, StringComparison.Ordinal).Replace("TYP", Type, StringComparison.Ordinal));

        AssertRefused(token, JwsError.Malformed);
    }

    [Theory]
    [InlineData("""["ES256"]""")]
    [InlineData("""{"alg":256,"kid":"KID","typ":"TYP"}""")]
    [InlineData("""{"alg":"ES256","kid":"KID","typ":"TYP",""")]
    [InlineData("not json")]
    public void TryVerify_HeaderNotAnObject_RefusesMalformed(string header)
    {
        var token = SignHeader(s_key, header.Replace("KID", s_key.KeyId, StringComparison.Ordinal).Replace("TYP", Type, StringComparison.Ordinal));

        AssertRefused(token, JwsError.Malformed);
    }

    [Fact]
    public void TryVerify_HeaderNotUtf8_RefusesMalformed()
    {
        // RFC 7515 §4: the header is UTF-8 JSON. A lone A1 byte inside the kid string is not UTF-8,
        // and a one-character change to a token can make one; it must be refused, not thrown.
        var header = Encoding.UTF8.GetBytes($$"""{"alg":"ES256","kid":"?","typ":"{{Type}}"}""");
        header[Array.IndexOf(header, (byte)'?')] = 0xA1;
        var token = SignHeader(s_key, header);

        AssertRefused(token, JwsError.Malformed);
        Assert.Null(Jws.PeekKeyId(token));
    }

    [Theory]
    [InlineData("""{"alg":"ES256","kid":"\uD800","typ":"TYP"}""")]
    [InlineData("""{"alg":"ES256","kid":"KID","typ":"TYP","\uDC00":1}""")]
    public void TryVerify_HeaderWithLoneSurrogate_RefusesMalformed(string header)
    {
        // Valid UTF-8 and valid JSON syntax, but an escaped lone surrogate is no string at all.
        var token = SignHeader(s_key, header.Replace("KID", s_key.KeyId, StringComparison.Ordinal).Replace("TYP", Type, StringComparison.Ordinal));

        AssertRefused(token, JwsError.Malformed);
        Assert.Null(Jws.PeekKeyId(token));
    }

    [Fact]
    public void TryVerify_AnyCharacterChanged_Refuses()
    {
        var token = Jws.Sign(s_key, s_payload, Type);
        var accepted = new List<string>();

        // Every position, every other base64url character: the dots too, and the last character of
        // each part, where a change may only touch the unused bits (refused as non-canonical).
        for (var i = 0; i < token.Length; i++)
        {
            foreach (var replacement in Base64UrlAlphabet.Where(c => c != token[i]))
            {
                var changed = string.Concat(token.AsSpan(0, i), [replacement], token.AsSpan(i + 1));
                if (Jws.TryVerify(changed, s_keys, Type, out _, out _))
                {
                    accepted.Add(changed);
                }
            }
        }

        Assert.Empty(accepted);
    }

    [Fact]
    public void TryVerify_SignatureLastCharacterNonCanonical_RefusesMalformed()
    {
        // 64 bytes take 86 characters; the last one carries 2 bits and 4 unused ones, so
        // flipping an unused bit decodes to the very same signature.
        var token = Jws.Sign(s_key, s_payload, Type);
        var last = Base64UrlAlphabet.IndexOf(token[^1], StringComparison.Ordinal);
        var nonCanonical = token[..^1] + Base64UrlAlphabet[last ^ 1];

        AssertRefused(nonCanonical, JwsError.Malformed);
    }

    [Fact]
    public void TryVerify_OtherKeySameKid_RefusesSignature()
    {
        using var impostor = EcdsaSigningKey.Generate(s_key.KeyId);

        AssertRefused(Jws.Sign(impostor, s_payload, Type), JwsError.BadSignature);
    }

    [Fact]
    public void TryVerify_PayloadOfAnotherToken_RefusesSignature()
    {
        var token = Jws.Sign(s_key, s_payload, Type).Split('.');
        var other = Jws.Sign(s_key, "{}"u8, Type).Split('.');

        AssertRefused($"{token[0]}.{other[1]}.{token[2]}", JwsError.BadSignature);
    }

    [Theory]
    [InlineData(".x")] // Four parts.
    [InlineData(".")] // Four parts, the last empty.
    [InlineData("=")] // Padding.
    [InlineData("==")]
    [InlineData(" ")]
    public void TryVerify_SuffixAppended_RefusesMalformed(string suffix) =>
        AssertRefused(Jws.Sign(s_key, s_payload, Type) + suffix, JwsError.Malformed);

    [Fact]
    public void TryVerify_TwoParts_RefusesMalformed()
    {
        var token = Jws.Sign(s_key, s_payload, Type);

        AssertRefused(token[..token.LastIndexOf('.')], JwsError.Malformed);
    }

    [Fact]
    public void TryVerify_PaddedPayload_RefusesMalformed()
    {
        var parts = Jws.Sign(s_key, s_payload, Type).Split('.');
        var padded = Convert.ToBase64String(s_payload).Replace('+', '-').Replace('/', '_');
        Assert.EndsWith("=", padded, StringComparison.Ordinal);

        AssertRefused($"{parts[0]}.{padded}.{parts[2]}", JwsError.Malformed);
    }

    [Theory]
    [InlineData(null)]
    [InlineData("")]
    [InlineData("..")]
    [InlineData("a.b.c")]
    public void TryVerify_NotAToken_RefusesMalformed(string? token) =>
        AssertRefused(token, JwsError.Malformed);

    [Fact]
    public void TryVerify_EmptySignature_RefusesMalformed()
    {
        var token = Jws.Sign(s_key, s_payload, Type);

        AssertRefused(token[..(token.LastIndexOf('.') + 1)], JwsError.Malformed);
    }

    [Fact]
    public void TryVerify_ShortSignature_RefusesMalformed()
    {
        var token = Jws.Sign(s_key, s_payload, Type);
        var shortSignature = Base64Url.EncodeToString(new byte[63]);

        AssertRefused(token[..(token.LastIndexOf('.') + 1)] + shortSignature, JwsError.Malformed);
    }

    [Fact]
    public void TryVerify_AtLengthLimit_AcceptsAndOnePastRefuses()
    {
        // Base64url of n bytes has ceil(4n/3) characters; take the largest payload that fits.
        var overhead = Jws.Sign(s_key, [], Type).Length;
        var payloadLength = (Jws.CompactLengthMax - overhead) * 3 / 4;
        var fitting = Jws.Sign(s_key, new byte[payloadLength], Type);
        var tooLong = Jws.Sign(s_key, new byte[payloadLength + 1], Type);

        Assert.InRange(fitting.Length, Jws.CompactLengthMax - 1, Jws.CompactLengthMax);
        Assert.True(Jws.TryVerify(fitting, s_keys, Type, out _, out _));
        Assert.True(tooLong.Length > Jws.CompactLengthMax);
        AssertRefused(tooLong, JwsError.Malformed);
    }

    [Fact]
    public void TryVerify_KeyBoundToOtherAlg_RefusesAlgorithm()
    {
        var keys = new JsonWebKeySet([s_key.PublicKey with { Alg = "RS256" }]);

        Assert.False(Jws.TryVerify(Jws.Sign(s_key, s_payload, Type), keys, Type, out var payload, out var error));
        Assert.Equal(JwsError.AlgorithmNotAllowed, error);
        Assert.Empty(payload);
    }

    [Fact]
    public void TryVerify_KeyNotEc_RefusesAlgorithm()
    {
        var keys = new JsonWebKeySet([new JsonWebKey { Kty = "RSA", Kid = s_key.KeyId, N = "AQAB", E = "AQAB" }]);

        Assert.False(Jws.TryVerify(Jws.Sign(s_key, s_payload, Type), keys, Type, out _, out var error));
        Assert.Equal(JwsError.AlgorithmNotAllowed, error);
    }

    [Fact]
    public void PeekKeyId_SignedToken_ReturnsKid()
    {
        using var key = EcdsaSigningKey.Generate("operator-2025");

        Assert.Equal("operator-2025", Jws.PeekKeyId(Jws.Sign(key, s_payload, Type)));
    }

    [Theory]
    [InlineData(null)]
    [InlineData("")]
    [InlineData("a.b")]
    public void PeekKeyId_NotAToken_ReturnsNull(string? token) =>
        Assert.Null(Jws.PeekKeyId(token));

    [Fact]
    public void FromECDsa_P256_IsThumbprintedEcKey()
    {
        var jwk = s_key.PublicKey;

        Assert.Equal("EC", jwk.Kty);
        Assert.Equal("P-256", jwk.Crv);
        Assert.Equal(Jws.Es256, jwk.Alg);
        Assert.Equal(43, jwk.X!.Length);
        Assert.Equal(43, jwk.Y!.Length);
        Assert.Equal(jwk.Thumbprint(), jwk.Kid);
        Assert.Equal(jwk.Kid, s_key.KeyId);
    }

    [Fact]
    public void FromECDsa_P384_Throws()
    {
        using var p384 = ECDsa.Create(ECCurve.NamedCurves.nistP384);

        Assert.Throws<ArgumentException>(() => JsonWebKey.FromECDsa(p384));
    }

    [Fact]
    public void ToECDsa_PublishedKey_VerifiesSignature()
    {
        var signature = s_key.SignEs256(s_payload);

        using var verifier = s_key.PublicKey.ToECDsa();

        Assert.NotNull(verifier);
        Assert.True(verifier.VerifyData(s_payload, signature, HashAlgorithmName.SHA256, DSASignatureFormat.IeeeP1363FixedFieldConcatenation));
    }

    [Fact]
    public void ToECDsa_PointNotOnCurve_ReturnsNull()
    {
        var y = Base64Url.DecodeFromChars(s_key.PublicKey.Y!);
        y[^1] ^= 1;

        using var verifier = (s_key.PublicKey with { Y = Base64Url.EncodeToString(y) }).ToECDsa();

        Assert.Null(verifier);
    }

    [Fact]
    public void ToECDsa_ShortCoordinate_ReturnsNull()
    {
        // A coordinate with a leading zero byte trimmed, which RFC 7518 §6.2.1.2 forbids.
        var x = Base64Url.DecodeFromChars(s_key.PublicKey.X!);

        using var verifier = (s_key.PublicKey with { X = Base64Url.EncodeToString(x.AsSpan(1)) }).ToECDsa();

        Assert.Null(verifier);
    }

    [Theory]
    [InlineData("RSA", "P-256")]
    [InlineData("OKP", "P-256")]
    [InlineData("EC", "P-384")]
    public void ToECDsa_OtherKeyType_ReturnsNull(string kty, string crv)
    {
        using var verifier = (s_key.PublicKey with { Kty = kty, Crv = crv }).ToECDsa();

        Assert.Null(verifier);
    }

    [Fact]
    public void ToECDsa_NotBase64Url_ReturnsNull()
    {
        using var verifier = (s_key.PublicKey with { X = "!" + s_key.PublicKey.X![1..] }).ToECDsa();

        Assert.Null(verifier);
    }

    [Fact]
    public void Parse_ToJson_RoundTrips()
    {
        using var second = EcdsaSigningKey.Generate("second");
        var keys = new JsonWebKeySet([s_key.PublicKey, second.PublicKey]);

        var parsed = JsonWebKeySet.Parse(keys.ToJson());

        Assert.Equal(keys.Keys, parsed.Keys);
        Assert.Same(parsed.Keys[1], parsed.Find("second"));
        Assert.Null(parsed.Find("third"));
        Assert.Null(parsed.Find(null));
    }

    [Theory]
    [InlineData("")]
    [InlineData("garbage")]
    [InlineData("[]")]
    [InlineData("null")]
    [InlineData("{}")]
    [InlineData("""{"keys":{}}""")]
    [InlineData("""{"keys":[null]}""")]
    [InlineData("""{"keys":[{"kid":"no-kty"}]}""")]
    [InlineData("""{"keys":[{"kty":"EC"}]}""")] // No kid.
    [InlineData("""{"keys":[{"kty":"EC","kid":"a"},{"kty":"EC","kid":"a"}]}""")]
    public void Parse_NotAKeySet_ThrowsFormatException(string json) =>
        Assert.Throws<FormatException>(() => JsonWebKeySet.Parse(json));

    [Fact]
    public void Constructor_DuplicateKid_Throws() =>
        Assert.Throws<ArgumentException>(() => new JsonWebKeySet([s_key.PublicKey, s_key.PublicKey with { Use = null }]));

    [Fact]
    public void Constructor_KeyWithoutKid_Throws() =>
        Assert.Throws<ArgumentException>(() => new JsonWebKeySet([s_key.PublicKey with { Kid = null }]));

    [Fact]
    public void Constructor_KeysAtLimit_Accepts() =>
        Assert.Equal(JsonWebKeySet.KeysMax, new JsonWebKeySet(NumberedKeys(JsonWebKeySet.KeysMax)).Keys.Count);

    [Fact]
    public void Constructor_KeysOnePastLimit_Throws() =>
        Assert.Throws<ArgumentException>(() => new JsonWebKeySet(NumberedKeys(JsonWebKeySet.KeysMax + 1)));

    private static IEnumerable<JsonWebKey> NumberedKeys(int count) =>
        Enumerable.Range(0, count).Select(i => s_key.PublicKey with { Kid = $"key-{i}" });

    private static void AssertRefused(string? token, JwsError expected)
    {
        Assert.False(Jws.TryVerify(token, s_keys, Type, out var payload, out var error));
        Assert.Equal(expected, error);
        Assert.Empty(payload);
    }

    // A token with this header and the test payload, signed with ES256 whatever the header says.
    private static string SignHeader(EcdsaSigningKey key, string headerJson) => SignHeader(key, Encoding.UTF8.GetBytes(headerJson));

    private static string SignHeader(EcdsaSigningKey key, byte[] header)
    {
        var signingInput = Base64Url.EncodeToString(header) + "." + Base64Url.EncodeToString(s_payload);
        return signingInput + "." + Base64Url.EncodeToString(key.SignEs256(Encoding.ASCII.GetBytes(signingInput)));
    }

    private sealed class HighSKey(ISigningKey inner) : ISigningKey
    {
        public string KeyId => inner.KeyId;

        public JsonWebKey PublicKey => inner.PublicKey;

        public byte[] SignEs256(ReadOnlySpan<byte> signingInput)
        {
            var raw = Base64Url.EncodeToString(inner.SignEs256(signingInput));
            var signature = Base64Url.DecodeFromChars(SignatureTwin.IsHighS("." + raw) ? raw : SignatureTwin.Of("." + raw)[1..]);
            return signature;
        }
    }

    private static string Unsigned(string headerJson, string signature) =>
        Base64Url.EncodeToString(Encoding.UTF8.GetBytes(headerJson)) + "." + Base64Url.EncodeToString(s_payload) + "." + signature;
}
