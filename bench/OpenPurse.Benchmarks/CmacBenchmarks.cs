using BenchmarkDotNet.Attributes;
using OpenPurse.Protocol.Channel;

namespace OpenPurse.Benchmarks;

/// <summary>
/// AES-CMAC of one message under a key set up once, as the secure channel uses it: 16 bytes is one
/// block, 64 a typical C-MAC input (chain ‖ header ‖ a short command), 256 the largest short APDU.
/// </summary>
[MemoryDiagnoser]
public class CmacBenchmarks
{
    // RFC 4493 §4: the key and the 64-byte message of example 4, whose first block is example 2.
    private static readonly byte[] s_rfc4493Key = Convert.FromHexString("2b7e151628aed2a6abf7158809cf4f3c");
    private static readonly byte[] s_rfc4493Message = Convert.FromHexString(
        "6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e5130c81c46a35ce411e5fbc1191a0a52eff69f2445df4f9b17ad2b417be66c3710");

    private static readonly byte[] s_rfc4493Mac16 = Convert.FromHexString("070a16b46b4d4144f79bdd9dd04a287c");
    private static readonly byte[] s_rfc4493Mac64 = Convert.FromHexString("51f0bebf7e3b9d92fc49741779363cfe");

    private readonly byte[] _mac = new byte[AesCmac.BlockSize];
    private AesCmac? _cmac;
    private byte[] _message = [];

    /// <summary>Message length in bytes.</summary>
    [Params(16, 64, 256)]
    public int MessageBytes { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        _cmac = new AesCmac(s_rfc4493Key);

        // The RFC message repeated: lengths 16 and 64 are then RFC 4493 examples 2 and 4.
        _message = new byte[MessageBytes];
        for (var offset = 0; offset < _message.Length; offset += s_rfc4493Message.Length)
        {
            s_rfc4493Message.AsSpan(0, Math.Min(s_rfc4493Message.Length, _message.Length - offset)).CopyTo(_message.AsSpan(offset));
        }

        // Measure the right thing: the instance must reproduce the published MACs.
        Check.Equal(s_rfc4493Mac16, _cmac.Compute(s_rfc4493Message.AsSpan(0, 16)), "RFC 4493 example 2");
        Check.Equal(s_rfc4493Mac64, _cmac.Compute(s_rfc4493Message), "RFC 4493 example 4");
    }

    [GlobalCleanup]
    public void Cleanup() => _cmac?.Dispose();

    /// <summary>One CMAC into a reused buffer; expected to allocate nothing.</summary>
    [Benchmark]
    public void Compute() => _cmac!.Compute(_message, _mac);
}
