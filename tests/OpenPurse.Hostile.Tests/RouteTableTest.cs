namespace OpenPurse.Hostile.Tests;

/// <summary>The suite attacks every endpoint the servers' route tables hold, and knows no endpoint they do not.</summary>
public sealed class RouteTableTest(HostileSystem system) : IClassFixture<HostileSystem>
{
    [Fact]
    public void OperatorRouteTable_EveryEndpointHasProbes() =>
        Assert.Equal(system.Endpoints(Party.Operator), EndpointProbes.Operator(system).Keys.Order(StringComparer.Ordinal));

    [Fact]
    public void StoreRouteTable_EveryEndpointHasProbes() =>
        Assert.Equal(system.Endpoints(Party.Store), EndpointProbes.Store(system).Keys.Order(StringComparer.Ordinal));
}
