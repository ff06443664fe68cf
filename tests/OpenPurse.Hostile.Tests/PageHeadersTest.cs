namespace OpenPurse.Hostile.Tests;

/// <summary>
/// The pages the servers serve to browsers keep their protective headers whatever the request
/// carries (a hostile query, Accept, Origin, Referer): a page without its content security policy
/// or with a sniffable type is one an attacker's input could turn into script.
/// </summary>
public sealed class PageHeadersTest(HostileSystem system) : IClassFixture<HostileSystem>
{
    private static readonly (string Name, string Value)[][] s_hostileHeaders =
    [
        [],
        [("Accept", "\u00ff/\u00ff")],
        [("Origin", "http://evil.example"), ("Referer", "http://evil.example/\"><script>alert(1)</script>")],
        [("X-Forwarded-Host", "evil.example"), ("X-Forwarded-Proto", "javascript")],
    ];

    [Theory]
    [InlineData(Party.Operator)]
    [InlineData(Party.Store)]
    public async Task EveryPage_HostileRequests_AnsweredWithTheProtectiveHeaders(Party party)
    {
        foreach (var path in system.PagePaths(party))
        {
            foreach (var query in new[] { "", "?a=%00&b=%0D%0A", "?%22%3E%3Cscript%3Ealert(1)%3C/script%3E=1" })
            {
                foreach (var headers in s_hostileHeaders)
                {
                    using var request = new HttpRequestMessage(HttpMethod.Get, path + query);
                    foreach (var (name, value) in headers)
                    {
                        request.Headers.TryAddWithoutValidation(name, value);
                    }

                    using var answer = await system.Client(party).SendAsync(request);
                    var what = $"{party} GET {path}{query} with {headers.Length} hostile headers";
                    Assert.True(answer.StatusCode == System.Net.HttpStatusCode.OK, $"{what}: {(int)answer.StatusCode}");
                    Assert.Equal("utf-8", answer.Content.Headers.ContentType?.CharSet);
                    Assert.Contains(answer.Content.Headers.ContentType?.MediaType, new[] { "text/html", "text/javascript", "text/css" });
                    Assert.Equal("nosniff", Single(answer, "X-Content-Type-Options"));
                    Assert.Equal("DENY", Single(answer, "X-Frame-Options"));
                    Assert.Equal("no-referrer", Single(answer, "Referrer-Policy"));
                    var policy = Single(answer, "Content-Security-Policy");
                    Assert.StartsWith("default-src 'none'; script-src 'self'; style-src 'self';", policy, StringComparison.Ordinal);
                    Assert.Contains("frame-ancestors 'none'", policy, StringComparison.Ordinal);
                    Assert.DoesNotContain("evil", policy, StringComparison.Ordinal);
                    var body = await answer.Content.ReadAsStringAsync();
                    Assert.DoesNotContain("evil", body, StringComparison.Ordinal);
                    Assert.DoesNotContain("<script>alert", body, StringComparison.Ordinal);
                }
            }
        }
    }

    [Fact]
    public async Task OperatorAdminListener_ServesNoPage()
    {
        foreach (var path in system.PagePaths(Party.Operator))
        {
            using var answer = await system.OperatorAdmin.GetAsync(path);
            Assert.Equal(System.Net.HttpStatusCode.NotFound, answer.StatusCode);
            Assert.Equal("application/problem+json", answer.Content.Headers.ContentType?.MediaType);
        }
    }

    private static string Single(HttpResponseMessage answer, string header) =>
        Assert.Single(answer.Headers.TryGetValues(header, out var values) ? values : []);
}
