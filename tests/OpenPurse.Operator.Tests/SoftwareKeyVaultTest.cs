using System.Security.Cryptography;
using OpenPurse.Operator.Security;
using OpenPurse.Protocol;

namespace OpenPurse.Operator.Tests;

public sealed class SoftwareKeyVaultTest : IDisposable
{
    private readonly string _directory = Directory.CreateTempSubdirectory("openpurse-vault-").FullName;

    [Fact]
    public void Open_Reopened_KeepsTheSameKeys()
    {
        string kid;
        byte[] cardKey;
        var cardId = CardId.FromSerial(940_000_000_000_001);
        using (var vault = SoftwareKeyVault.Open(_directory, createIfMissing: true))
        {
            kid = vault.OperatorKey.KeyId;
            cardKey = vault.IssueCardKeys(cardId).MacKey;
        }

        using var reopened = SoftwareKeyVault.Open(_directory, createIfMissing: false);

        Assert.Equal(kid, reopened.OperatorKey.KeyId);
        Assert.Equal(cardKey, reopened.IssueCardKeys(cardId).MacKey);
    }

    [Fact]
    public void Open_Missing_WithoutCreate_Refused() =>
        Assert.Throws<KeyVaultException>(() => SoftwareKeyVault.Open(_directory, createIfMissing: false));

    // A node started without its keys refuses before it makes a registry in the data directory.
    [Fact]
    public async Task Node_WithoutItsVault_RefusesAndLeavesNoDatabase()
    {
        await Assert.ThrowsAsync<KeyVaultException>(() => OperatorHost.BuildAsync(new OperatorOptions { DataDirectory = _directory }));

        Assert.Empty(Directory.EnumerateFiles(_directory, "operator.db*"));
    }

    [Theory]
    [InlineData("vault.keys")]
    [InlineData("vault.kek")]
    [System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
    public void Open_KeyFileReadableByOthers_Refused(string file)
    {
        SoftwareKeyVault.Open(_directory, createIfMissing: true).Dispose();
        File.SetUnixFileMode(Path.Combine(_directory, file), UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead);

        var refused = Assert.Throws<KeyVaultException>(() => SoftwareKeyVault.Open(_directory, createIfMissing: false));
        Assert.Contains("0600", refused.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Open_WrongKek_Refused()
    {
        SoftwareKeyVault.Open(_directory, createIfMissing: true).Dispose();
        var kek = Path.Combine(_directory, "vault.kek");
        File.WriteAllBytes(kek, RandomNumberGenerator.GetBytes(32));

        Assert.Throws<KeyVaultException>(() => SoftwareKeyVault.Open(_directory, createIfMissing: false));
    }

    [Fact]
    public void IssueCardKeys_DiffersPerCard()
    {
        using var vault = SoftwareKeyVault.Open(_directory, createIfMissing: true);

        var a = vault.IssueCardKeys(CardId.FromSerial(940_000_000_000_001));
        var b = vault.IssueCardKeys(CardId.FromSerial(940_000_000_000_002));

        Assert.NotEqual(a.MacKey, b.MacKey);
        Assert.NotEqual(a.EncKey, a.MacKey);
    }

    public void Dispose() => Directory.Delete(_directory, recursive: true);
}
