using Microsoft.AspNetCore.Authorization;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using OpenPurse.Protocol.Messages;
using OpenPurse.Testing;

namespace OpenPurse.Authorizer.Tests;

/// <summary>Every code the authorizer answers has a title and an entry in docs/errors.md; every endpoint says who may call it.</summary>
public sealed class ErrorCodesTest
{
    public static TheoryData<string> AuthorizerCodes() => [.. ProblemCode.Authorizer.Select(problem => problem.Code)];

    [Theory]
    [MemberData(nameof(AuthorizerCodes))]
    public void Code_HasATitle_AndIsDocumentedWithItsStatus(string code)
    {
        var problem = ProblemCode.Find(code)!;
        Assert.False(string.IsNullOrWhiteSpace(problem.Title));
        Assert.Equal(problem.Status, ErrorsDocument.StatusesOf("Credit authorizer")[code]);
    }

    [Fact]
    public void EveryDocumentedCode_IsInTheVocabulary() =>
        Assert.All(ErrorsDocument.CodesOf("Credit authorizer"), code => Assert.Contains(ProblemCode.Find(code), ProblemCode.Authorizer));

    [Fact]
    public async Task EveryEndpoint_DeclaresAPolicyOrIsAnonymous()
    {
        await using var authorizer = await TestAuthorizer.StartAsync();

        var endpoints = authorizer.App.Services.GetRequiredService<EndpointDataSource>().Endpoints.OfType<RouteEndpoint>().ToList();

        Assert.NotEmpty(endpoints);
        Assert.All(endpoints, endpoint => Assert.True(
            endpoint.Metadata.GetMetadata<IAllowAnonymous>() is not null != endpoint.Metadata.GetOrderedMetadata<IAuthorizeData>().Any(a => a.Policy is not null),
            $"{endpoint.DisplayName}: either a policy or AllowAnonymous, exactly one"));
    }
}
