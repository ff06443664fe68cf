using BenchmarkDotNet.Attributes;
using OpenPurse.Protocol;
using OpenPurse.Protocol.Jose;
using OpenPurse.Protocol.Messages;

namespace OpenPurse.Benchmarks;

/// <summary>
/// One full page of a store's statement (<see cref="StoreStatement.PageLinesMax"/> lines): the
/// store serializing and signing it, the operator verifying and reading it. A reconciliation reads
/// a store's whole history a page at a time, so these bound its cost per paid order.
/// </summary>
[MemoryDiagnoser]
public class StatementBenchmarks
{
    private EcdsaSigningKey? _key;
    private JsonWebKeySet? _keySet;
    private StoreStatement? _page;
    private string _signed = "";

    [GlobalSetup]
    public void Setup()
    {
        _key = EcdsaSigningKey.Generate();
        _keySet = new JsonWebKeySet([_key.PublicKey]);
        // Order numbers as a store makes them (its id, a sequence), amounts of a few euros.
        _page = new StoreStatement(
            "store-7f3a9c2e", DateTimeOffset.UnixEpoch, [.. Enumerable.Range(1, StoreStatement.PageLinesMax)
                .Select(i => new StatementLine(Guid.NewGuid(), $"store-7f3a9c2e-{i:D6}", new Money(100 + i, Currency.Eur)))],
            Guid.NewGuid(), More: true);
        _signed = SignPage();
        Check.That(_signed.Length <= Jws.CompactLengthMax, $"a page of {_signed.Length} characters fits a JWS");
        Check.That(_page.Paid.SequenceEqual(VerifyPage().Paid), "the verified page holds the lines signed");
    }

    [GlobalCleanup]
    public void Cleanup() => _key?.Dispose();

    /// <summary>JSON, base64url, one ECDSA P-256 signature over some 30 KiB.</summary>
    [Benchmark]
    public string SignPage() => SignedMessage.Sign(_key!, _page!, MessageTypes.Statement);

    /// <summary>Parse, one ECDSA P-256 verification, the JSON read back into lines.</summary>
    [Benchmark]
    public StoreStatement VerifyPage() =>
        SignedMessage.Verify<StoreStatement>(_signed, _keySet!, MessageTypes.Statement, out var error)
            ?? throw new InvalidOperationException($"The page was refused: {error}.");
}
