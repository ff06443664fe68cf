using System.Text.Json;
using Microsoft.Extensions.Configuration;
using OpenPurse.Protocol.Jose;
using OpenPurse.Protocol.Messages;
using OpenPurse.Store.Keys;
using OpenPurse.Store.Operator;

namespace OpenPurse.Store.Tests;

/// <summary>
/// <c>openpurse-store registration</c>: what the operator's administrator registers, one entry per
/// member with that member's own public key only, and where completion notices are to go.
/// </summary>
public sealed class RegistrationTest : IDisposable
{
    private static readonly Uri s_publicUrl = new("https://mall.example:8443/");

    private readonly TempDirectory _directory = new();

    [Fact]
    public void Registrations_MallOfTwo_OneEntryPerMemberWithOnlyItsOwnKey()
    {
        var options = Options() with { PublicUrl = s_publicUrl };

        var json = StoreHost.Registrations(options);

        var registrations = Parse(json);
        Assert.Equal([TestStore.Books, TestStore.Tunes], registrations.Select(r => r.StoreId));
        Assert.Equal(["Test Books", "Test Tunes"], registrations.Select(r => r.Name));
        Assert.All(registrations, r => Assert.Equal(TestStore.MallId, r.MallId));
        Assert.All(registrations, r => Assert.Equal("https://mall.example:8443/v1/operator/completions", r.NotifyUrl));
        // The keys the store will sign with: the ones it made for this registration.
        using var keys = MemberKeys.LoadOrCreate(_directory.Path, [TestStore.Books, TestStore.Tunes]);
        Assert.Empty(keys.Generated);
        foreach (var registration in registrations)
        {
            var key = Assert.Single(JsonWebKeySet.Parse(registration.Jwks.GetRawText()).Keys);
            Assert.Equal(keys.For(registration.StoreId).KeyId, key.Kid);
        }

        Assert.NotEqual(registrations[0].Jwks.GetRawText(), registrations[1].Jwks.GetRawText());
        // Public keys only: no private part ("d") of any key.
        Assert.DoesNotContain("\"d\"", json, StringComparison.Ordinal);
    }

    [Fact]
    public void Registrations_CalledAgain_SameKeys()
    {
        var options = Options() with { PublicUrl = s_publicUrl };

        var first = StoreHost.Registrations(options);
        var second = StoreHost.Registrations(options);

        Assert.Equal(first, second);
    }

    [Fact]
    public void Registrations_SingleStore_NoMall()
    {
        var options = Options() with { MallId = null, Members = [TestStore.Members[0]], PublicUrl = s_publicUrl };

        var registration = Assert.Single(Parse(StoreHost.Registrations(options)));

        Assert.Equal(TestStore.Books, registration.StoreId);
        Assert.Null(registration.MallId);
    }

    [Fact]
    public void Registrations_NoPublicUrl_FirstOfUrls()
    {
        var options = Options() with { Urls = "http://127.0.0.1:5090;http://127.0.0.1:5091" };

        var registrations = Parse(StoreHost.Registrations(options));

        Assert.All(registrations, r => Assert.Equal("http://127.0.0.1:5090/v1/operator/completions", r.NotifyUrl));
    }

    [Fact]
    public void Registrations_NoPublicUrlAndFreePort_RefusedBeforeAnyKeyIsMade()
    {
        // Port 0 is a port picked at start: nobody can tell the operator where that will be.
        var options = Options() with { Urls = "http://127.0.0.1:0" };

        var refusal = Assert.Throws<ArgumentException>(() => StoreHost.Registrations(options));

        Assert.Contains("PublicUrl", refusal.Message, StringComparison.Ordinal);
        Assert.False(Directory.Exists(Path.Combine(_directory.Path, MemberKeys.DirectoryName)));
    }

    [Fact]
    public void Registrations_PublicUrlAndFreePort_PublicUrlWins()
    {
        var options = Options() with { Urls = "http://127.0.0.1:0", PublicUrl = s_publicUrl };

        var registrations = Parse(StoreHost.Registrations(options));

        Assert.All(registrations, r => Assert.Equal(new Uri(s_publicUrl, OperatorRegistration.CompletionsPath).ToString(), r.NotifyUrl));
    }

    [Fact]
    public void Configuration_PublicUrl_IsRead()
    {
        var options = StoreConfiguration.Read(Configuration(publicUrl: "https://mall.example:8443"));

        Assert.Equal(new Uri("https://mall.example:8443"), options.PublicUrl);
    }

    [Fact]
    public void Configuration_NoPublicUrl_Null() =>
        Assert.Null(StoreConfiguration.Read(Configuration(publicUrl: null)).PublicUrl);

    [Theory]
    [InlineData("not a url")]
    [InlineData("/v1/relative")]
    [InlineData("ftp://mall.example/")]
    public void Configuration_PublicUrlNotAnHttpUrl_IsRefusedByName(string publicUrl)
    {
        var refusal = Assert.Throws<FormatException>(() => StoreConfiguration.Read(Configuration(publicUrl)));

        Assert.Contains("PublicUrl", refusal.Message, StringComparison.Ordinal);
    }

    public void Dispose() => _directory.Dispose();

    // A mall of two members in the test's directory; no operator is called.
    private StoreOptions Options() => new()
    {
        DataDirectory = _directory.Path,
        MallId = TestStore.MallId,
        Members = [TestStore.Members[0], TestStore.Members[1]],
        OperatorUrl = new Uri("http://127.0.0.1:5080"),
    };

    private static List<StoreRegistration> Parse(string json) =>
        JsonSerializer.Deserialize<List<StoreRegistration>>(json, ProtocolJson.Options)!;

    private static IConfigurationSection Configuration(string? publicUrl) => new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
    {
        ["Store:OperatorUrl"] = "http://127.0.0.1:5080",
        ["Store:PublicUrl"] = publicUrl,
        ["Store:Members:0:StoreId"] = "s",
        ["Store:Members:0:Name"] = "S",
        ["Store:Members:0:Catalog:0:Sku"] = "k",
        ["Store:Members:0:Catalog:0:Title"] = "K",
        ["Store:Members:0:Catalog:0:Price"] = "4.99 EUR",
        ["Store:Members:0:Catalog:0:Content"] = "c",
    }).Build().GetSection(StoreConfiguration.SectionName);
}
