using OpenPurse.Protocol.Channel;

namespace OpenPurse.Protocol.Tests;

/// <summary>AES-128 key diversification against NXP AN10922 §2.2.1 and AN10957.</summary>
public sealed class KeyDiversificationVectorTest
{
    [Fact]
    public void An10922Aes128_An10922Example_MatchesDiversifiedKey()
    {
        var vector = VectorFile.Read("an10922.txt").Single(r => r.Sections.Contains("AN10922 AES128"));
        using var master = new AesCmac(vector.Hex("master_key"));
        Assert.Equal(vector.Hex("cmac_k1"), master.K1.ToArray());
        Assert.Equal(vector.Hex("cmac_k2"), master.K2.ToArray());
        var key = new byte[16];

        KeyDiversification.An10922Aes128(master, vector.Hex("diversification_input"), key);

        Assert.Equal(vector.Hex("diversified_key"), key);
    }

    // The short input pads to 32 bytes, not 16: a plain CMAC gives the "issue 91" value instead.
    [Fact]
    public void An10922Aes128_ShortInputOfAn10957_PadsToTwoBlocks()
    {
        var vector = VectorFile.Read("an10922.txt").Single(r => r.Sections.Contains("AN10957 AES128"));
        using var master = new AesCmac(vector.Hex("master_key"));
        var key = new byte[16];

        KeyDiversification.An10922Aes128(master, vector.Hex("diversification_input"), key);

        Assert.Equal(vector.Hex("diversified_key"), key);
        Assert.Equal(vector.Hex("issue91_diversified_key"), master.Compute(vector.Hex("m")));
    }

    // OpenPurse's input is 31 bytes so that an HSM's plain CMAC of 01 ‖ M gives the same card key.
    [Fact]
    public void CardKeyInput_Is31Bytes_SoAn10922EqualsPlainCmac()
    {
        var input = KeyDiversification.CardKeyInput(CardKeyUsage.Mac, CardId.FromSerial(940_000_000_000_001));
        using var master = new AesCmac(Convert.FromHexString("00112233445566778899AABBCCDDEEFF"));
        var diversified = new byte[16];

        KeyDiversification.An10922Aes128(master, input, diversified);

        Assert.Equal(31, input.Length);
        Assert.Equal(master.Compute([0x01, .. input]), diversified);
    }

    [Fact]
    public void CardKeyInput_DiffersPerCardAndPerUsage()
    {
        var a = CardId.FromSerial(940_000_000_000_001);
        var b = CardId.FromSerial(940_000_000_000_002);
        Assert.NotEqual(KeyDiversification.CardKeyInput(CardKeyUsage.Mac, a), KeyDiversification.CardKeyInput(CardKeyUsage.Mac, b));
        Assert.NotEqual(KeyDiversification.CardKeyInput(CardKeyUsage.Mac, a), KeyDiversification.CardKeyInput(CardKeyUsage.Encryption, a));
    }

    [Theory]
    [InlineData(0)]
    [InlineData(32)]
    public void An10922Aes128_InputLengthOutOfRange_Throws(int length)
    {
        using var master = new AesCmac(new byte[16]);
        Assert.Throws<ArgumentException>(() => KeyDiversification.An10922Aes128(master, new byte[length], new byte[16]));
    }
}
