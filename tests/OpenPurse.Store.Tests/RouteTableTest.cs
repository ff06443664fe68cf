using System.Net;
using Microsoft.AspNetCore.Authorization;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;

namespace OpenPurse.Store.Tests;

/// <summary>
/// The store's route table, walked: every endpoint says who may call it, so an endpoint added
/// later cannot be open by forgetting. The store has no admin endpoints; all of its own are open
/// to anyone and protected by the signatures on their messages.
/// </summary>
public sealed class RouteTableTest : IAsyncLifetime
{
    private FakeOperator _operator = null!;

    public async Task InitializeAsync() => _operator = await FakeOperator.StartAsync();

    public async Task DisposeAsync() => await _operator.DisposeAsync();

    [Fact]
    public async Task EveryEndpoint_DeclaresAPolicyOrIsAnonymous()
    {
        await using var store = await TestStore.StartAsync(_operator);

        var endpoints = store.App.Services.GetRequiredService<EndpointDataSource>().Endpoints.OfType<RouteEndpoint>().ToList();

        Assert.NotEmpty(endpoints);
        Assert.All(endpoints, endpoint => Assert.True(
            endpoint.Metadata.GetMetadata<IAllowAnonymous>() is not null != endpoint.Metadata.GetOrderedMetadata<IAuthorizeData>().Any(a => a.Policy is not null),
            $"{endpoint.DisplayName}: either a policy or AllowAnonymous, exactly one"));
    }

    [Fact]
    public async Task UnknownPath_StillNotFound_AndOtherMethod_StillNotAllowed()
    {
        await using var store = await TestStore.StartAsync(_operator);

        using var unknown = await store.Http.GetAsync(new Uri("v1/nothing-here", UriKind.Relative));
        using var otherMethod = await store.Http.DeleteAsync(new Uri("v1/catalog", UriKind.Relative));

        Assert.Equal(HttpStatusCode.NotFound, unknown.StatusCode);
        Assert.Equal(HttpStatusCode.MethodNotAllowed, otherMethod.StatusCode);
    }
}
