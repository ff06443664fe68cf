using System.Globalization;
using OpenPurse.Protocol.Channel;

namespace OpenPurse.Protocol.Tests;

/// <summary>
/// SP 800-108 counter-mode KDF with AES-CMAC against NIST CAVP KBKDF vectors
/// (PRF=CMAC_AES128; counter before, after and in the middle of the fixed input; 8- and 32-bit counters).
/// </summary>
public sealed class KbkdfVectorTest
{
    public static TheoryData<int> VectorIndexes()
    {
        var data = new TheoryData<int>();
        for (var i = 0; i < VectorFile.Read("kbkdf-ctr-cmac-aes128.txt").Count; i++)
        {
            data.Add(i);
        }

        return data;
    }

    [Theory]
    [MemberData(nameof(VectorIndexes))]
    public void DeriveCounterMode_CavpVector_MatchesKo(int index)
    {
        var vector = VectorFile.Read("kbkdf-ctr-cmac-aes128.txt")[index];
        Assert.Equal("PRF=CMAC_AES128", vector.Section("PRF="));
        var location = vector.Section("CTRLOCATION=")["CTRLOCATION=".Length..];
        var counterBytes = int.Parse(vector.Section("RLEN=")["RLEN=".Length..].Split('_')[0], CultureInfo.InvariantCulture) / 8;
        var (before, after) = location switch
        {
            "BEFORE_FIXED" => (Array.Empty<byte>(), vector.Hex("FixedInputData")),
            "AFTER_FIXED" => (vector.Hex("FixedInputData"), Array.Empty<byte>()),
            "MIDDLE_FIXED" => (vector.Hex("DataBeforeCtrData"), vector.Hex("DataAfterCtrData")),
            _ => throw new InvalidDataException(location),
        };
        var output = new byte[int.Parse(vector["L"], CultureInfo.InvariantCulture) / 8];
        using var prf = new AesCmac(vector.Hex("KI"));

        Kbkdf.DeriveCounterMode(prf, before, after, counterBytes, output);

        Assert.Equal(vector.Hex("KO"), output);
    }

    [Fact]
    public void VectorFile_CoversAllThreeCounterLocations() =>
        Assert.Equal(
            ["AFTER_FIXED", "BEFORE_FIXED", "MIDDLE_FIXED"],
            VectorFile.Read("kbkdf-ctr-cmac-aes128.txt").Select(v => v.Section("CTRLOCATION=")["CTRLOCATION=".Length..]).Distinct().Order());

    [Theory]
    [InlineData(0)]
    [InlineData(5)]
    public void DeriveCounterMode_CounterWidthOutOfRange_Throws(int counterBytes)
    {
        using var prf = new AesCmac(new byte[16]);
        Assert.Throws<ArgumentException>(() => Kbkdf.DeriveCounterMode(prf, [1], [2], counterBytes, new byte[16]));
    }

    [Fact]
    public void DeriveCounterMode_MoreBlocksThanAnEightBitCounterCounts_Throws()
    {
        using var prf = new AesCmac(new byte[16]);
        Kbkdf.DeriveCounterMode(prf, [1], [2], 1, new byte[255 * 16]);
        Assert.Throws<ArgumentException>(() => Kbkdf.DeriveCounterMode(prf, [1], [2], 1, new byte[(255 * 16) + 1]));
    }
}
