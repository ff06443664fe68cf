using System.Net.Http.Json;
using System.Text.Json.Nodes;
using OpenPurse.Card;
using OpenPurse.Demo;
using OpenPurse.Operator.Tls;
using OpenPurse.Protocol;
using OpenPurse.Protocol.Purse;
using OpenPurse.Store;
using OpenPurse.Wallet.Purchase;
using OpenPurse.Wallet.Readers;

namespace OpenPurse.EndToEnd.Tests;

/// <summary>
/// HTTPS between all parties (docs/operations.md): the demo in TLS mode (a CA made for it, every server on
/// https://127.0.0.1, every client trusting that CA by configuration). A purchase completes with
/// every hop on TLS; a wallet that does not trust the CA, or a server whose certificate names
/// another host, is refused before anything is paid.
/// </summary>
public sealed class TlsTest : IAsyncLifetime
{
    private static readonly Money s_load = Money.Parse("50.00 EUR");

    private readonly string _directory = Directory.CreateTempSubdirectory("openpurse-e2e-tls-").FullName;
    private readonly List<IAsyncDisposable> _servers = [];
    private DemoSystem _system = null!;
    private EmulatedCard _card = null!;
    private InProcessReader _reader = null!;

    private static CatalogItem Book => DemoSystem.Members[0].Catalog[1];

    [Fact]
    public async Task Purchase_HttpsBetweenAllParties_PaysAndTheOperatorDeliversToTheStore()
    {
        await StartAsync();
        Assert.Equal(Uri.UriSchemeHttps, _system.OperatorUrl.Scheme);
        Assert.Equal(Uri.UriSchemeHttps, _system.StoreUrl.Scheme);
        using var store = _system.StoreClient();
        using var operatorApi = _system.OperatorClient();

        var result = await new PurchaseFlow(store, operatorApi, _reader, new AutoPrompt()).RunAsync(new PurchaseRequest(Book.Sku, StoreId: "books"));

        Assert.Equal(Book.Content, result.Content);
        Assert.Equal(s_load - Book.Price, Balance());
        Assert.Equal(s_load - Book.Price, result.BalanceAfter);
        // The receipt came with round trip 2: the operator reached the mall over HTTPS, and the mall
        // checked the completion notice with the operator's keys, fetched over HTTPS.
        Assert.False(result.ReceiptFromStore);
        var order = await store.GetFromJsonAsync<JsonObject>(new Uri($"v1/orders/{Uri.EscapeDataString(result.OrderNo)}", UriKind.Relative));
        Assert.Equal("paid", (string?)order!["state"]);
    }

    [Theory]
    [InlineData("store")]
    [InlineData("operator")]
    public async Task Purchase_WalletNotTrustingTheCa_RefusedOnTlsAndNothingDebited(string untrusted)
    {
        await StartAsync();
        // The system's trust only, as a wallet run without --trust has.
        using var store = untrusted == "store" ? new HttpClient(new SocketsHttpHandler()) { BaseAddress = _system.StoreUrl } : _system.StoreClient();
        using var operatorApi = untrusted == "operator" ? new HttpClient(new SocketsHttpHandler()) { BaseAddress = _system.OperatorUrl } : _system.OperatorClient();

        var refused = await Assert.ThrowsAsync<WalletException>(() => new PurchaseFlow(store, operatorApi, _reader, new AutoPrompt()).RunAsync(new PurchaseRequest(Book.Sku, StoreId: "books")));

        Assert.Equal(untrusted + ".unreachable", refused.Code);
        Assert.Contains("TLS connection failed", refused.Message, StringComparison.Ordinal);
        Assert.Contains("--trust", refused.Message, StringComparison.Ordinal);
        Assert.False(refused.CardDebited);
        Assert.Null(refused.SettlementId);
        Assert.Equal(s_load, Balance());
    }

    [Fact]
    public async Task Purchase_StoreCertificateForAnotherName_RefusedByTheWalletTrustingTheCa()
    {
        await StartAsync();
        // Same CA, same address, but the certificate names example.invalid only.
        var pki = DeploymentCertificates.Create(Path.GetDirectoryName(_system.Pki!.CaCertificatePath)!, ["impostor"], ["example.invalid"]);
        var impostor = StoreHost.Build(new StoreOptions
        {
            DataDirectory = Path.Combine(_directory, "impostor"),
            MallId = DemoSystem.MallId,
            Members = DemoSystem.Members,
            OperatorUrl = _system.OperatorUrl,
            Urls = "https://127.0.0.1:0",
            TlsCertificatePath = pki.Servers[0].CertificatePath,
            TlsKeyPath = pki.Servers[0].KeyPath,
        });
        _servers.Add(impostor);
        await impostor.StartAsync();
        var impostorUrl = new Uri(impostor.Urls.First());
        using var store = _system.StoreClient();
        store.BaseAddress = impostorUrl;
        using var operatorApi = _system.OperatorClient();

        var refused = await Assert.ThrowsAsync<WalletException>(() => new PurchaseFlow(store, operatorApi, _reader, new AutoPrompt()).RunAsync(new PurchaseRequest(Book.Sku, StoreId: "books")));

        Assert.Equal("store.unreachable", refused.Code);
        Assert.Contains("TLS connection failed", refused.Message, StringComparison.Ordinal);
        Assert.Equal(s_load, Balance());
        // The same client reaches the real mall: only the name was wrong.
        using var real = _system.StoreClient();
        using var catalog = await real.GetAsync(new Uri("v1/catalog", UriKind.Relative));
        Assert.True(catalog.IsSuccessStatusCode);
    }

    public Task InitializeAsync() => Task.CompletedTask;

    // xunit 2 disposes test classes through IAsyncLifetime, not IAsyncDisposable.
    public async Task DisposeAsync()
    {
        foreach (var server in _servers)
        {
            await server.DisposeAsync();
        }

        _reader?.Dispose();
        _card?.Dispose();
        if (_system is not null)
        {
            await _system.DisposeAsync();
        }

        Directory.Delete(_directory, recursive: true);
    }

    private async Task StartAsync()
    {
        _system = await DemoSystem.StartAsync(_directory, tls: true);
        _card = await _system.IssueCardAsync(Path.Combine(_directory, "card.bin"), s_load);
        _reader = new InProcessReader(_card);
    }

    private Money Balance()
    {
        Assert.True(_reader.Transmit(CardHostSession.Select()).IsOk);
        var answer = _reader.Transmit(CardHostSession.GetData());
        if (!answer.IsOk || !PurseStatus.TryParse(answer.Data, out var status))
        {
            throw new InvalidOperationException($"GET DATA answered {answer}.");
        }

        return status.BalanceOf(Currency.Eur) ?? Money.Zero(Currency.Eur);
    }
}
