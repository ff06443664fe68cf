using CsCheck;
using OpenPurse.Protocol.Channel;
using Org.BouncyCastle.Crypto.Engines;
using Org.BouncyCastle.Crypto.Macs;
using Org.BouncyCastle.Crypto.Parameters;

namespace OpenPurse.Protocol.Tests;

/// <summary>AES-CMAC against RFC 4493 §4 (all four examples and both subkeys), and against BouncyCastle.</summary>
public sealed class CmacVectorTest
{
    public static TheoryData<int> Rfc4493Examples => [0, 1, 2, 3];

    [Fact]
    public void Subkeys_Rfc4493_MatchK1AndK2()
    {
        var vector = VectorFile.Read("rfc4493.txt")[0];
        using var cmac = new AesCmac(vector.Hex("KEY"));

        Assert.Equal(vector.Hex("K1"), cmac.K1.ToArray());
        Assert.Equal(vector.Hex("K2"), cmac.K2.ToArray());
    }

    [Theory]
    [MemberData(nameof(Rfc4493Examples))]
    public void Compute_Rfc4493Example_MatchesOutput(int count)
    {
        var records = VectorFile.Read("rfc4493.txt");
        var key = records[0].Hex("KEY");
        var example = records.Single(r => r.Has("COUNT") && r["COUNT"] == count.ToString(System.Globalization.CultureInfo.InvariantCulture));
        using var cmac = new AesCmac(key);

        Assert.Equal(example.Hex("OUTPUT"), cmac.Compute(example.Hex("MESSAGE")));
    }

    [Fact]
    public void Compute_RandomKeysAndMessages_AgreesWithBouncyCastle()
    {
        Gen.Select(Gen.Byte.Array[16], Gen.Byte.Array[0, 600]).Sample((key, message) =>
        {
            using var ours = new AesCmac(key);
            var theirs = new CMac(new AesEngine(), 128);
            theirs.Init(new KeyParameter(key));
            theirs.BlockUpdate(message, 0, message.Length);
            var expected = new byte[16];
            theirs.DoFinal(expected, 0);
            return ours.Compute(message).AsSpan().SequenceEqual(expected);
        }, iter: 500);
    }

    [Theory]
    [InlineData(15)]
    [InlineData(17)]
    [InlineData(0)]
    public void Constructor_KeyNotAesLength_Throws(int length) =>
        Assert.Throws<ArgumentException>(() => new AesCmac(new byte[length]));

    [Fact]
    public void Compute_MacBufferTooShort_Throws()
    {
        using var cmac = new AesCmac(new byte[16]);
        Assert.Throws<ArgumentException>(() => cmac.Compute([1, 2, 3], new byte[15]));
    }
}
