using System.Diagnostics;
using OpenPurse.Demo;
using OpenPurse.Protocol;
using OpenPurse.Protocol.Messages;
using OpenPurse.Store;
using OpenPurse.Testing;
using OpenPurse.Wallet.Purchase;
using Xunit.Abstractions;

namespace OpenPurse.EndToEnd.Tests;

/// <summary>
/// The real set (<see cref="RealDeployment"/>): PostgreSQL, SoftHSM2, two operator nodes as
/// processes behind HAProxy over TLS, the mall on HTTPS, a card in pcscd's virtual reader. A
/// purchase completes in both profiles through the balancer, and completes when a node dies
/// before or between its round trips: no settlement state lives in a node's memory.
/// </summary>
[Collection(SoftHsmInProcess.Name)]
public sealed class RealDeploymentTest(RealInfrastructure infrastructure, ITestOutputHelper output) : IAsyncLifetime
{
    private static readonly Money s_load = Money.Parse("50.00 EUR");

    private RealDeployment? _deployment;

    private static CatalogItem Book => DemoSystem.Members[0].Catalog[1];

    private static CatalogItem Song => DemoSystem.Members[1].Catalog[0];

    [IntegrationFact(Components.PostgreSql, Components.SoftHsm, Components.Pcscd, Components.Vpcd, Components.HaProxy)]
    public async Task Purchases_ThroughTheBalancer_InBothProfiles_AndWhenANodeDiesBetweenRoundTrips()
    {
        var deployment = await StartAsync();

        var signed = await deployment.BuyAsync(Book.Sku, "books", SettlementProfile.Signed);
        var lean = await deployment.BuyAsync(Song.Sku, "tunes", SettlementProfile.Lean);

        AssertPaid(signed, Book, SettlementProfile.Signed, s_load);
        AssertPaid(lean, Song, SettlementProfile.Lean, s_load - Book.Price);
        Assert.Equal("completed", await deployment.SettlementStateAsync(signed.SettlementId));
        Assert.Equal("completed", await deployment.SettlementStateAsync(lean.SettlementId));

        // Each request on a new connection; node 1 is killed as soon as round trip 1 has its answer:
        // round trip 2 reaches the survivor, which rebuilds the card session from PostgreSQL.
        var before = s_load - Book.Price - Song.Price;
        using var killer = new KillAfter(HttpMethod.Post, "/v1/settlements", deployment.Nodes[0]);
        using var operatorApi = deployment.OperatorClient(killer, reuseConnections: false);
        var survived = await deployment.BuyAsync(Book.Sku, "books", SettlementProfile.Signed, operatorApi);

        Assert.True(killer.Fired);
        Assert.True(deployment.Nodes[0].HasExited);
        Assert.False(deployment.Nodes[1].HasExited);
        AssertPaid(survived, Book, SettlementProfile.Signed, before);
        Assert.Equal("completed", await deployment.SettlementStateAsync(survived.SettlementId));
        Assert.Equal(before - Book.Price, RealDeployment.Balance());
    }

    public Task InitializeAsync() => Task.CompletedTask;

    // xunit 2 disposes test classes through IAsyncLifetime: the deployment's processes must not outlive the test.
    public async Task DisposeAsync()
    {
        if (_deployment is not null)
        {
            await _deployment.DisposeAsync();
        }
    }

    private static void AssertPaid(PurchaseResult result, CatalogItem item, SettlementProfile profile, Money before)
    {
        Assert.Equal(profile, result.Profile);
        Assert.Equal(item.Content, result.Content);
        Assert.Equal(item.Price, result.Amount);
        Assert.Equal(before - item.Price, result.BalanceAfter);
        // ACN (SIG3) and receipt (SIG4), verified by the wallet, name this settlement and amount.
        Assert.Equal(result.SettlementId, result.CompletionNotice.SettlementId);
        Assert.Equal(item.Price, result.CompletionNotice.Amount);
        Assert.Equal(result.OrderNo, result.Receipt.OrderNo);
        Assert.False(string.IsNullOrEmpty(result.CompletionNoticeJws));
        Assert.False(string.IsNullOrEmpty(result.ReceiptJws));
        Assert.Equal(2, result.OperatorRoundTrips);
        Assert.Equal(4, result.CardCommands);
    }

    private async Task<RealDeployment> StartAsync()
    {
        var clock = Stopwatch.StartNew();
        _deployment = await RealDeployment.StartAsync(infrastructure, new DeploymentOptions(Mall: true, s_load, TimeSpan.FromMinutes(15)));
        output.WriteLine($"Deployment with card {_deployment.Card.CardId} started in {clock.ElapsedMilliseconds} ms: {string.Join(", ", _deployment.StartTimes.Select(p => $"{p.Key} {p.Value.TotalMilliseconds:F0} ms"))}");
        return _deployment;
    }

    /// <summary>Kills a node as soon as the answer to the first matching request has arrived, before the wallet sees it.</summary>
    private sealed class KillAfter(HttpMethod method, string path, OperatorNode node) : DelegatingHandler
    {
        public bool Fired { get; private set; }

        protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            var response = await base.SendAsync(request, cancellationToken);
            if (!Fired && request.Method == method && request.RequestUri!.AbsolutePath == path && response.IsSuccessStatusCode)
            {
                await response.Content.LoadIntoBufferAsync(cancellationToken);
                node.Kill();
                Fired = true;
            }

            return response;
        }
    }
}
