using System.Runtime.Versioning;
using System.Security.Cryptography;
using Microsoft.Extensions.Configuration;
using OpenPurse.Protocol;
using OpenPurse.Protocol.Jose;
using OpenPurse.Store.Keys;

namespace OpenPurse.Store.Tests;

/// <summary>Start-up: key files, option checks, configuration.</summary>
// File modes are a POSIX notion: the store runs, and these tests run, on Linux.
[UnsupportedOSPlatform("windows")]
public sealed class StartupTest : IAsyncLifetime
{
    private FakeOperator _operator = null!;

    public async Task InitializeAsync() => _operator = await FakeOperator.StartAsync();

    public async Task DisposeAsync() => await _operator.DisposeAsync();

    [Fact]
    public async Task Start_NewDirectory_WritesOneOwnerOnlyKeyFilePerStore()
    {
        using var directory = new TempDirectory();
        await using var store = await TestStore.StartAsync(TestStore.OptionsFor(_operator, directory.Path), _operator);

        var keys = Path.Combine(directory.Path, MemberKeys.DirectoryName);
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute, File.GetUnixFileMode(keys));
        Assert.Equal(
            TestStore.Members.Select(m => m.StoreId + MemberKeys.FileExtension).Order(),
            Directory.GetFiles(keys).Select(Path.GetFileName).Order());
        foreach (var member in TestStore.Members)
        {
            var path = Path.Combine(keys, member.StoreId + MemberKeys.FileExtension);
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(path));

            // The file is the PKCS#8 form of the key the store publishes.
            using var ecdsa = ECDsa.Create();
            ecdsa.ImportPkcs8PrivateKey(File.ReadAllBytes(path), out _);
            Assert.Equal(store.Keys.For(member.StoreId).KeyId, JsonWebKey.FromECDsa(ecdsa).Kid);
        }
    }

    [Theory]
    [InlineData(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead)]
    [InlineData(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead)]
    [InlineData(UnixFileMode.UserRead | UnixFileMode.OtherRead)]
    [InlineData(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupWrite)]
    public async Task Start_KeyFileOpenToGroupOrOthers_IsRefused(UnixFileMode mode)
    {
        using var directory = new TempDirectory();
        var options = TestStore.OptionsFor(_operator, directory.Path);
        await (await TestStore.StartAsync(options, _operator)).DisposeAsync();
        var path = Path.Combine(directory.Path, MemberKeys.DirectoryName, TestStore.Tunes + MemberKeys.FileExtension);
        File.SetUnixFileMode(path, mode);

        var refusal = Assert.Throws<InvalidOperationException>(() => StoreHost.Build(options));

        Assert.Contains(path, refusal.Message, StringComparison.Ordinal);
        Assert.Contains("chmod 600", refusal.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Start_KeyFileMode0600_IsLoadedAgain()
    {
        using var directory = new TempDirectory();
        var options = TestStore.OptionsFor(_operator, directory.Path);
        string kid;
        await using (var first = await TestStore.StartAsync(options, _operator))
        {
            kid = first.Keys.For(TestStore.Books).KeyId;
        }

        await using var second = await TestStore.StartAsync(options, _operator);

        Assert.Equal(kid, second.Keys.For(TestStore.Books).KeyId);
        Assert.Empty(second.Keys.Generated);
    }

    [Fact]
    public void Start_KeyFileThatIsNoKey_IsRefused()
    {
        using var directory = new TempDirectory();
        var keys = Directory.CreateDirectory(Path.Combine(directory.Path, MemberKeys.DirectoryName)).FullName;
        var path = Path.Combine(keys, TestStore.Books + MemberKeys.FileExtension);
        File.WriteAllBytes(path, [0x30, 0x03, 0x02, 0x01, 0x00]);
        File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite);

        var refusal = Assert.Throws<InvalidOperationException>(() => StoreHost.Build(TestStore.OptionsFor(_operator, directory.Path)));

        Assert.Contains("not a P-256 PKCS#8 private key", refusal.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Start_KeyFileOnAnotherCurve_IsRefused()
    {
        using var directory = new TempDirectory();
        var keys = Directory.CreateDirectory(Path.Combine(directory.Path, MemberKeys.DirectoryName)).FullName;
        var path = Path.Combine(keys, TestStore.Books + MemberKeys.FileExtension);
        using var p384 = ECDsa.Create(ECCurve.NamedCurves.nistP384);
        File.WriteAllBytes(path, p384.ExportPkcs8PrivateKey());
        File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite);

        Assert.Throws<InvalidOperationException>(() => StoreHost.Build(TestStore.OptionsFor(_operator, directory.Path)));
    }

    [Theory]
    [InlineData("http://0.0.0.0:0")]
    [InlineData("http://*:0")]
    [InlineData("http://+:0")]
    [InlineData("http://192.0.2.1:0")]
    [InlineData("http://127.0.0.1:0;http://0.0.0.0:0")]
    [InlineData("")]
    public void Build_NonLoopbackUrl_IsRefused(string urls)
    {
        using var directory = new TempDirectory();

        Assert.Throws<ArgumentException>(() => StoreHost.Build(TestStore.OptionsFor(_operator, directory.Path) with { Urls = urls }));
    }

    [Theory]
    [InlineData("http://127.0.0.1:0")]
    [InlineData("http://[::1]:0")]
    [InlineData("http://localhost:8080")]
    public void LoopbackUrls_Loopback_IsAccepted(string urls)
    {
        Assert.Equal([urls], StoreHost.LoopbackUrls(urls));
    }

    public static TheoryData<string> InvalidOptions => ["../escape", "Upper", "duplicate", "mixed-currency", "zero-price", "no-items", "bad-sku", "bad-mall"];

    [Theory]
    [MemberData(nameof(InvalidOptions))]
    public void Build_InvalidOptions_AreRefused(string problem)
    {
        using var directory = new TempDirectory();
        var item = new CatalogItem("a", "A", Money.Parse("1.00 EUR"), "a");
        var options = TestStore.OptionsFor(_operator, directory.Path);
        options = problem switch
        {
            "../escape" => options with { Members = [new("../escape", "Escape", [item])] },
            "Upper" => options with { Members = [new("Upper", "Upper", [item])] },
            "duplicate" => options with { Members = [new("same", "One", [item]), new("same", "Two", [item])] },
            "mixed-currency" => options with { Members = [new("shop", "Shop", [item, new("b", "B", Money.Parse("1.00 USD"), "b")])] },
            "zero-price" => options with { Members = [new("shop", "Shop", [item with { Price = Money.Zero(Currency.Eur) }])] },
            "no-items" => options with { Members = [new("shop", "Shop", [])] },
            "bad-sku" => options with { Members = [new("shop", "Shop", [item with { Sku = "a b" }])] },
            "bad-mall" => options with { MallId = "Mall!" },
            _ => throw new ArgumentOutOfRangeException(nameof(problem)),
        };

        Assert.Throws<ArgumentException>(() => StoreHost.Build(options));
        // Nothing was written for a refused store: no key of an invalid id.
        Assert.False(Directory.Exists(Path.Combine(directory.Path, MemberKeys.DirectoryName)));
    }

    [Fact]
    public void Configuration_Store_ReadsOptions()
    {
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["Store:DataDirectory"] = "/tmp/x",
            ["Store:MallId"] = "m",
            ["Store:OperatorUrl"] = "http://127.0.0.1:5080",
            ["Store:BillLifetime"] = "00:05:00",
            ["Store:Urls"] = "http://127.0.0.1:5090",
            ["Store:Members:0:StoreId"] = "s",
            ["Store:Members:0:Name"] = "S",
            ["Store:Members:0:Catalog:0:Sku"] = "k",
            ["Store:Members:0:Catalog:0:Title"] = "K",
            ["Store:Members:0:Catalog:0:Price"] = "4.99 EUR",
            ["Store:Members:0:Catalog:0:Content"] = "c",
        }).Build();

        var options = StoreConfiguration.Read(configuration.GetSection("Store"));

        Assert.Equal("/tmp/x", options.DataDirectory);
        Assert.Equal("m", options.MallId);
        Assert.Equal(new Uri("http://127.0.0.1:5080"), options.OperatorUrl);
        Assert.Equal(TimeSpan.FromMinutes(5), options.BillLifetime);
        Assert.Equal("http://127.0.0.1:5090", options.Urls);
        var member = Assert.Single(options.Members);
        Assert.Equal(("s", "S"), (member.StoreId, member.Name));
        Assert.Equal(new CatalogItem("k", "K", new Money(499, Currency.Eur), "c"), Assert.Single(member.Catalog));
    }

    [Theory]
    [InlineData("Store:OperatorUrl", null)]
    [InlineData("Store:OperatorUrl", "not a url")]
    [InlineData("Store:Members:0:Catalog:0:Price", "4.999 EUR")]
    [InlineData("Store:Members:0:Catalog:0:Price", "4.99")]
    [InlineData("Store:BillLifetime", "soon")]
    [InlineData("Store:MetricsClients", "127.0.0.1;prometheus.internal")]
    public void Configuration_BadSetting_IsRefusedByName(string key, string? value)
    {
        var settings = new Dictionary<string, string?>
        {
            ["Store:OperatorUrl"] = "http://127.0.0.1:5080",
            ["Store:Members:0:StoreId"] = "s",
            ["Store:Members:0:Name"] = "S",
            ["Store:Members:0:Catalog:0:Sku"] = "k",
            ["Store:Members:0:Catalog:0:Title"] = "K",
            ["Store:Members:0:Catalog:0:Price"] = "4.99 EUR",
            ["Store:Members:0:Catalog:0:Content"] = "c",
        };
        settings[key] = value;
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(settings).Build();

        var refusal = Assert.Throws<FormatException>(() => StoreConfiguration.Read(configuration.GetSection("Store")));

        Assert.Contains(key.Split(':')[^1], refusal.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Configuration_ShippedAppSettings_IsAValidDemoMall()
    {
        var configuration = new ConfigurationBuilder().AddJsonFile(Path.Combine(AppContext.BaseDirectory, "appsettings.json"), optional: false).Build();

        var options = StoreConfiguration.Read(configuration.GetSection(StoreConfiguration.SectionName));

        var directory = Catalog.StoreDirectory.Create(options);
        Assert.Equal("demo-mall", directory.MallId);
        Assert.True(directory.Members.Count >= 2);
        Assert.Equal(["http://127.0.0.1:5090"], StoreHost.LoopbackUrls(options.Urls));
        Assert.Equal([System.Net.IPAddress.Loopback, System.Net.IPAddress.IPv6Loopback], options.MetricsClients);
        Assert.Equal(new Uri("http://127.0.0.1:5099"), options.AgentUrl);
    }

    [Fact]
    public void Configuration_MetricsClients_AsListOrJoined()
    {
        var settings = new Dictionary<string, string?>
        {
            ["Store:OperatorUrl"] = "http://127.0.0.1:5080",
            ["Store:MetricsClients:0"] = "10.0.0.5",
            ["Store:MetricsClients:1"] = "fd00::5",
        };
        var listed = StoreConfiguration.Read(new ConfigurationBuilder().AddInMemoryCollection(settings).Build().GetSection("Store"));
        var joined = StoreConfiguration.Read(new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["Store:OperatorUrl"] = "http://127.0.0.1:5080",
            ["Store:MetricsClients"] = "10.0.0.5; fd00::5",
        }).Build().GetSection("Store"));

        Assert.Equal([System.Net.IPAddress.Parse("10.0.0.5"), System.Net.IPAddress.Parse("fd00::5")], listed.MetricsClients);
        Assert.Equal(listed.MetricsClients, joined.MetricsClients);
    }
}
