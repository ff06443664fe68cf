using System.Text;
using BenchmarkDotNet.Attributes;
using OpenPurse.Protocol.Jose;

namespace OpenPurse.Benchmarks;

/// <summary>
/// ES256 compact JWS over a bill-sized payload: signing (the store's SIG1, the operator's SIG2–SIG5)
/// and verifying against the signer's published key set, as the operator checks every message.
/// </summary>
[MemoryDiagnoser]
public class JwsBenchmarks
{
    // A header typ for these measurements only; Jws binds the typ, so sign and verify must agree.
    private const string MessageType = "openpurse-bill+jws";

    private const int PayloadLengthMin = 250;
    private const int PayloadLengthMax = 350;

    // A bill as a store would send it (~300 bytes of compact JSON); the content is illustrative.
    private static readonly byte[] s_payload = Encoding.UTF8.GetBytes(
        """{"order":"ORD-2026-000123456","store":"store-7f3a9c2e","amount":{"minor":12345,"currency":"EUR"},"items":[{"sku":"BK-0042","qty":1,"minor":9900},{"sku":"PEN-0007","qty":3,"minor":815}],"itemsDigest":"n4bQgYhMfWWaL-qgxVrQFaO_TxsrC4Is0V1sFbDwCgg","expiresAt":"2026-11-25T12:00:00Z"}""");

    private EcdsaSigningKey? _key;
    private JsonWebKeySet? _keySet;
    private string _token = "";

    [GlobalSetup]
    public void Setup()
    {
        Check.That(s_payload.Length is >= PayloadLengthMin and <= PayloadLengthMax, $"the payload is {s_payload.Length} bytes, not ~300");

        // A set of three, as during a key rotation, so that verifying includes finding the kid.
        _key = EcdsaSigningKey.Generate();
        using var older = EcdsaSigningKey.Generate();
        using var newer = EcdsaSigningKey.Generate();
        _keySet = new JsonWebKeySet([older.PublicKey, _key.PublicKey, newer.PublicKey]);
        _token = Jws.Sign(_key, s_payload, MessageType);

        Check.That(Jws.TryVerify(_token, _keySet, MessageType, out var payload, out var error), $"the token verifies ({error})");
        Check.Equal(s_payload, payload, "verified payload");
    }

    [GlobalCleanup]
    public void Cleanup() => _key?.Dispose();

    /// <summary>Header, base64url, one ECDSA P-256 signature.</summary>
    [Benchmark]
    public string Sign() => Jws.Sign(_key!, s_payload, MessageType);

    /// <summary>Parse, find the key by kid, import it, one ECDSA P-256 verification.</summary>
    [Benchmark]
    public byte[] Verify()
    {
        // A refusal here would time the wrong path; checking costs one branch.
        if (!Jws.TryVerify(_token, _keySet!, MessageType, out var payload, out var error))
        {
            throw new InvalidOperationException($"The token was refused: {error}.");
        }

        return payload;
    }
}
