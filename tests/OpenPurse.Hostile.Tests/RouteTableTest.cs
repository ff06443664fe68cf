using System.Text.Json;

namespace OpenPurse.Hostile.Tests;

/// <summary>
/// The suite attacks every endpoint the servers' route tables hold, and knows no endpoint they do not;
/// the OpenAPI documents, open to anyone on their listener, describe every endpoint but the pages
/// (HTML, scripts, the stylesheet), which are not API and which they leave out.
/// </summary>
public sealed class RouteTableTest(HostileSystem system) : IClassFixture<HostileSystem>
{
    [Fact]
    public void OperatorRouteTable_EveryEndpointHasProbes() =>
        Assert.Equal(system.Endpoints(Party.Operator), EndpointProbes.Operator(system).Keys.Order(StringComparer.Ordinal));

    [Fact]
    public void StoreRouteTable_EveryEndpointHasProbes() =>
        Assert.Equal(system.Endpoints(Party.Store), EndpointProbes.Store(system).Keys.Order(StringComparer.Ordinal));

    [Fact]
    public void AuthorizerRouteTable_EveryEndpointHasProbes() =>
        Assert.Equal(system.Endpoints(Party.Authorizer), EndpointProbes.Authorizer(system).Keys.Order(StringComparer.Ordinal));

    [Fact]
    public void AgentRouteTable_EveryEndpointHasProbes() =>
        Assert.Equal(system.Endpoints(Party.Agent), EndpointProbes.Agent(system).Keys.Order(StringComparer.Ordinal));

    // The agent has no OpenAPI document: its few endpoints on loopback are documented in the wallet's README.
    [Theory]
    [InlineData(Party.Operator)]
    [InlineData(Party.Store)]
    [InlineData(Party.Authorizer)]
    public async Task RouteTable_EveryEndpointIsInAnOpenApiDocument(Party party)
    {
        var documents = await system.DocumentsAsync(party);
        Assert.All(system.Endpoints(party).Where(e => !system.IsPage(party, e)), endpoint => Assert.Contains(documents, d => d.Document.Describes(endpoint)));
    }

    [Theory]
    [InlineData(Party.Operator)]
    [InlineData(Party.Store)]
    public async Task Pages_AreServed_ButInNoOpenApiDocument(Party party)
    {
        var pages = system.PagePaths(party);
        Assert.Contains("/", pages);
        Assert.Contains("/openpurse.css", pages);
        Assert.Contains("/openpurse.js", pages);
        Assert.Contains(party == Party.Store ? "/shop.js" : "/topup.js", pages);
        var documents = await system.DocumentsAsync(party);
        Assert.All(pages, path => Assert.DoesNotContain(documents, d => d.Document.Describes("GET " + path)));
    }

    [Fact]
    public void AuthorizerRouteTable_HasNoPages() => Assert.Empty(system.PagePaths(Party.Authorizer));

    [Fact]
    public async Task OperatorDocuments_EachOnItsListenerOnly_AndAdminEndpointsOnlyInTheAdminDocument()
    {
        using var adminOnPublic = await system.Operator.GetAsync("/openapi/admin.json");
        using var publicOnAdmin = await system.OperatorAdmin.GetAsync("/openapi/v1.json");
        Assert.Equal(System.Net.HttpStatusCode.NotFound, adminOnPublic.StatusCode);
        Assert.Equal(System.Net.HttpStatusCode.NotFound, publicOnAdmin.StatusCode);
        var documents = await system.DocumentsAsync(Party.Operator);
        foreach (var endpoint in system.Endpoints(Party.Operator).Where(e => !system.IsPage(Party.Operator, e)))
        {
            Assert.Equal(system.IsAdmin(Party.Operator, endpoint), documents.Single(d => d.Document.Describes(endpoint)).Admin);
        }
    }

    [Fact]
    public async Task AdminDocument_DeclaresTheBearerToken_OnEveryAdminOperationAndNoOther()
    {
        using var admin = JsonDocument.Parse(await system.OperatorAdmin.GetStringAsync("/openapi/admin.json"));
        var scheme = admin.RootElement.GetProperty("components").GetProperty("securitySchemes").GetProperty("AdminToken");
        Assert.Equal("http", scheme.GetProperty("type").GetString());
        Assert.Equal("bearer", scheme.GetProperty("scheme").GetString());
        var operations = admin.RootElement.GetProperty("paths").EnumerateObject()
            .SelectMany(path => path.Value.EnumerateObject().Select(operation => (Path: path.Name, Operation: operation.Value)))
            .ToList();
        Assert.Contains(operations, o => o.Path.StartsWith("/v1/admin/", StringComparison.Ordinal));
        foreach (var (path, operation) in operations)
        {
            var needs = operation.TryGetProperty("security", out var security)
                && security.EnumerateArray().Any(requirement => requirement.TryGetProperty("AdminToken", out _));
            Assert.True(needs == path.StartsWith("/v1/admin/", StringComparison.Ordinal), $"{path}: security {(needs ? "declared" : "missing")}");
        }

        using var open = JsonDocument.Parse(await system.Operator.GetStringAsync("/openapi/v1.json"));
        Assert.False(open.RootElement.TryGetProperty("components", out var components) && components.TryGetProperty("securitySchemes", out _));
    }
}
