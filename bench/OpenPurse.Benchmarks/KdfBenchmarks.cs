using BenchmarkDotNet.Attributes;
using OpenPurse.Protocol;
using OpenPurse.Protocol.Channel;

namespace OpenPurse.Benchmarks;

/// <summary>
/// The key derivations of one card session: the SCP03 session keys (three KDF runs), a bare
/// SP 800-108 counter-mode KDF of 32 bytes (two CMACs), and the AN10922 diversification the
/// security module runs to find one card's static key.
/// </summary>
[MemoryDiagnoser]
public class KdfBenchmarks
{
    private const int KbkdfOutputLength = 32;

    // NXP AN10922 §2.2.1 (tests/OpenPurse.Protocol.Tests/Vectors/an10922.txt): master key, input, diversified key.
    private static readonly byte[] s_an10922MasterKey = Convert.FromHexString("00112233445566778899AABBCCDDEEFF");
    private static readonly byte[] s_an10922Input = Convert.FromHexString("04782E21801D803042F54E585020416275");
    private static readonly byte[] s_an10922Key = Convert.FromHexString("A8DD63A3B89D54B37CA802473FDA9175");

    private readonly byte[] _hostChallenge = Convert.FromHexString("0102030405060708");
    private readonly byte[] _cardChallenge = Convert.FromHexString("F1E2D3C4B5A69788");
    private readonly byte[] _kbkdfOutput = new byte[KbkdfOutputLength];
    private readonly byte[] _cardKey = new byte[AesCmac.BlockSize];
    private AesCmac? _staticEnc;
    private AesCmac? _staticMac;
    private AesCmac? _master;
    private byte[] _kbkdfBefore = [];
    private byte[] _kbkdfAfter = [];
    private byte[] _cardKeyInput = [];

    [GlobalSetup]
    public void Setup()
    {
        _staticEnc = new AesCmac(Convert.FromHexString("404142434445464748494A4B4C4D4E4F"));
        _staticMac = new AesCmac(Convert.FromHexString("505152535455565758595A5B5C5D5E5F"));
        _master = new AesCmac(s_an10922MasterKey);

        // The SCP03 layout (Amendment D §6.2.2) for a 256-bit output: 11×00 ‖ 04 ‖ 00 ‖ L = 0100,
        // then the one-byte counter, then the context host challenge ‖ card challenge.
        _kbkdfBefore = Convert.FromHexString("0000000000000000000000" + "04" + "00" + "0100");
        _kbkdfAfter = [.. _hostChallenge, .. _cardChallenge];

        // One card's K-MAC input: usage ‖ card id ‖ AID ‖ system identifier (31 bytes).
        _cardKeyInput = KeyDiversification.CardKeyInput(CardKeyUsage.Mac, CardId.FromSerial(123_456_789_012_345));

        // The same KDF with L = 0080 must give S-ENC: Kbkdf and Scp03 agree on the layout.
        using (var keys = Scp03.DeriveSessionKeys(_staticEnc, _staticMac, _hostChallenge, _cardChallenge))
        {
            var enc = new byte[AesCmac.BlockSize];
            Kbkdf.DeriveCounterMode(_staticEnc, Convert.FromHexString("0000000000000000000000" + "04" + "00" + "0080"), _kbkdfAfter, counterBytes: 1, enc);
            Check.Equal(keys.Enc, enc, "SP 800-108 in the SCP03 layout against Scp03's S-ENC");
        }

        KeyDiversification.An10922Aes128(_master, s_an10922Input, _cardKey);
        Check.Equal(s_an10922Key, _cardKey, "AN10922 §2.2.1 example");

        // A 31-byte input pads to exactly 32 bytes, so AN10922 equals plain CMAC of 01 ‖ M (see KeyDiversification).
        KeyDiversification.An10922Aes128(_master, _cardKeyInput, _cardKey);
        Check.Equal(_master.Compute([0x01, .. _cardKeyInput]), _cardKey, "AN10922 of the card key input against plain CMAC");
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _staticEnc?.Dispose();
        _staticMac?.Dispose();
        _master?.Dispose();
    }

    /// <summary>S-ENC, S-MAC and S-RMAC from the two static keys and both challenges, then zeroed.</summary>
    [Benchmark]
    public byte Scp03SessionKeys()
    {
        using var keys = Scp03.DeriveSessionKeys(_staticEnc!, _staticMac!, _hostChallenge, _cardChallenge);
        return keys.Rmac[0];
    }

    /// <summary>32 bytes of SP 800-108 counter-mode output: two AES-CMAC blocks.</summary>
    [Benchmark]
    public void Kbkdf32Bytes() => Kbkdf.DeriveCounterMode(_staticMac!, _kbkdfBefore, _kbkdfAfter, counterBytes: 1, _kbkdfOutput);

    /// <summary>One card's static key from the master key (AN10922, 31-byte input).</summary>
    [Benchmark]
    public void An10922CardKey() => KeyDiversification.An10922Aes128(_master!, _cardKeyInput, _cardKey);
}
