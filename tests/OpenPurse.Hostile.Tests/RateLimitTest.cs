namespace OpenPurse.Hostile.Tests;

/// <summary>
/// The per-client rate limits themselves, which the rest of the suite raises out of its way: a
/// client beyond them is refused 429 request.rate_limited as problem details,
/// at the operator's public API and at the store's order creation, and nothing moves.
/// </summary>
public sealed class RateLimitTest(RateLimitedSystem system) : IClassFixture<RateLimitedSystem>
{
    [Theory]
    [InlineData(Party.Operator, "/v1/settlements", """{"bill":"x","profile":"signed","cardGreeting":"AA=="}""")]
    [InlineData(Party.Store, "/v1/orders", """{"storeId":"books","items":[{"sku":"book-999","quantity":1}]}""")]
    public async Task ManyRequestsAtOnce_BeyondTheClientLimit_RateLimitedProblem(Party party, string path, string body)
    {
        var before = await system.BooksAsync();
        var answers = await Task.WhenAll(Enumerable.Range(0, 60).Select(_ => Probe.Json("over the limit", HttpMethod.Post, path, body).SendAsync(system.Client(party))));

        var documented = party == Party.Operator ? DocumentedCodes.Operator : DocumentedCodes.Store;
        Assert.All(answers, answer => Assert.Null(answer.Fault(documented)));
        var limited = answers.Where(a => a.Status == 429).ToArray();
        Assert.NotEmpty(limited);
        Assert.All(limited, answer => Assert.Contains("\"code\":\"request.rate_limited\"", answer.Body, StringComparison.Ordinal));
        (await system.BooksAsync()).AssertUnchangedSince(before);
    }
}
