using System.Net;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using OpenPurse.Protocol.Messages;
using OpenPurse.Protocol.Purse;
using OpenPurse.Wallet.Agent;

namespace OpenPurse.Wallet.Tests;

/// <summary>
/// The agent's guards: its Host, the allowed origins, its header, CORS, and the approval form that
/// only its own page can post; and what it will not do (a tampered bill, another origin's payment,
/// an endpoint lower than a whole payment).
/// </summary>
public sealed class AgentGuardTest : IAsyncLifetime
{
    private AgentKit _kit = null!;

    public async Task InitializeAsync() => _kit = await AgentKit.StartAsync();

    public async Task DisposeAsync() => await _kit.DisposeAsync();

    [Theory]
    [InlineData("evil.example")]
    [InlineData("evil.example:{port}")]
    [InlineData("127.0.0.1")]
    [InlineData("127.0.0.1:1")]
    [InlineData("localhost.:{port}")]
    [InlineData("127.0.0.2:{port}")]
    public async Task WrongHost_Refused400_BeforeAnything(string host)
    {
        foreach (var path in new[] { "/", "/v1/card", $"/approve/{Guid.NewGuid():D}", "/nowhere" })
        {
            var request = AgentKit.Api(HttpMethod.Get, path);
            request.Headers.Host = host.Replace("{port}", _kit.Agent.Address.Port.ToString(System.Globalization.CultureInfo.InvariantCulture), StringComparison.Ordinal);
            var (status, body) = await _kit.SendAsync(request);

            Assert.Equal(HttpStatusCode.BadRequest, status);
            Assert.Equal("agent.host_refused", body.GetProperty("code").GetString());
        }
    }

    [Theory]
    [InlineData("localhost")]
    [InlineData("[::1]")]
    [InlineData("127.0.0.1")]
    public async Task OwnHostNames_Answered(string name)
    {
        var request = AgentKit.Api(HttpMethod.Get, "/v1/card");
        request.Headers.Host = $"{name}:{_kit.Agent.Address.Port}";
        var (status, body) = await _kit.SendAsync(request);

        Assert.Equal(HttpStatusCode.OK, status);
        Assert.True(body.GetProperty("present").GetBoolean());
    }

    [Theory]
    [InlineData(null)]
    [InlineData(AgentKit.ForeignOrigin)]
    [InlineData("null")]
    [InlineData("http://store.test.evil.example")]
    [InlineData("https://store.test")]
    [InlineData("http://store.test:8080")]
    [InlineData("http://store.test/")]
    public async Task OriginNotAllowed_Refused403_WithoutCorsHeaders(string? origin)
    {
        using var request = AgentKit.Api(HttpMethod.Post, "/v1/payments", origin, new { bill = "x", profile = "signed" });
        using var response = await _kit.Http.SendAsync(request);

        Assert.Equal(HttpStatusCode.Forbidden, response.StatusCode);
        Assert.Equal("agent.origin_refused", JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.GetProperty("code").GetString());
        Assert.False(response.Headers.Contains("Access-Control-Allow-Origin"));
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
    }

    [Fact]
    public async Task AllowedOrigin_CaseInsensitive_AnsweredWithItsCorsHeaders()
    {
        using var request = AgentKit.Api(HttpMethod.Get, "/v1/card", "HTTP://STORE.TEST");
        using var response = await _kit.Http.SendAsync(request);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(AgentKit.StoreOrigin, Assert.Single(response.Headers.GetValues("Access-Control-Allow-Origin")));
        Assert.Contains("Origin", response.Headers.Vary);
        Assert.False(response.Headers.Contains("Access-Control-Allow-Credentials"));
    }

    [Fact]
    public async Task MissingAgentHeader_Refused403()
    {
        foreach (var (method, path) in new[] { (HttpMethod.Get, "/v1/card"), (HttpMethod.Post, "/v1/payments"), (HttpMethod.Get, $"/v1/payments/{Guid.NewGuid():D}") })
        {
            var (status, body) = await _kit.SendAsync(AgentKit.Api(method, path, json: method == HttpMethod.Post ? new { bill = "x" } : null, header: false));

            Assert.Equal(HttpStatusCode.Forbidden, status);
            Assert.Equal("agent.header_required", body.GetProperty("code").GetString());
        }
    }

    [Fact]
    public async Task Preflight_FromAnAllowedOrigin_Answered204_WithPrivateNetworkAccessWhenAsked()
    {
        using var plain = await _kit.Http.SendAsync(Preflight(AgentKit.StoreOrigin, privateNetwork: false));
        using var pna = await _kit.Http.SendAsync(Preflight(AgentKit.StoreOrigin, privateNetwork: true));

        Assert.Equal(HttpStatusCode.NoContent, plain.StatusCode);
        Assert.Equal(AgentKit.StoreOrigin, Assert.Single(plain.Headers.GetValues("Access-Control-Allow-Origin")));
        Assert.Equal("GET, POST", Assert.Single(plain.Headers.GetValues("Access-Control-Allow-Methods")));
        Assert.Equal("Content-Type, X-OpenPurse-Agent", Assert.Single(plain.Headers.GetValues("Access-Control-Allow-Headers")));
        Assert.Equal("600", Assert.Single(plain.Headers.GetValues("Access-Control-Max-Age")));
        Assert.Contains("Origin", plain.Headers.Vary);
        Assert.False(plain.Headers.Contains("Access-Control-Allow-Private-Network"));
        Assert.Equal(HttpStatusCode.NoContent, pna.StatusCode);
        Assert.Equal("true", Assert.Single(pna.Headers.GetValues("Access-Control-Allow-Private-Network")));
    }

    [Fact]
    public async Task Preflight_FromAnotherOrigin_Refused403_WithoutCorsHeaders()
    {
        using var response = await _kit.Http.SendAsync(Preflight(AgentKit.ForeignOrigin, privateNetwork: true));

        Assert.Equal(HttpStatusCode.Forbidden, response.StatusCode);
        Assert.False(response.Headers.Contains("Access-Control-Allow-Origin"));
        Assert.False(response.Headers.Contains("Access-Control-Allow-Private-Network"));
    }

    [Fact]
    public async Task Pages_CarryTheirHeaders_AndNoCors()
    {
        foreach (var path in new[] { "/", "/agent.css" })
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, path);
            request.Headers.Add("Origin", AgentKit.StoreOrigin);
            using var response = await _kit.Http.SendAsync(request);

            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            Assert.Equal(AgentGuard.PagePolicy, Assert.Single(response.Headers.GetValues("Content-Security-Policy")));
            Assert.Equal("DENY", Assert.Single(response.Headers.GetValues("X-Frame-Options")));
            Assert.Equal("same-origin", Assert.Single(response.Headers.GetValues("Cross-Origin-Opener-Policy")));
            Assert.Equal("same-origin", Assert.Single(response.Headers.GetValues("Cross-Origin-Resource-Policy")));
            Assert.Equal("no-referrer", Assert.Single(response.Headers.GetValues("Referrer-Policy")));
            Assert.Equal("no-store", response.Headers.CacheControl?.ToString());
            Assert.False(response.Headers.Contains("Access-Control-Allow-Origin"));
        }

        var home = await _kit.Http.GetStringAsync("/");
        Assert.Contains("OpenPurse agent", home, StringComparison.Ordinal);
        Assert.Contains(AgentKit.StoreOrigin, home, StringComparison.Ordinal);
        Assert.DoesNotContain("<script", home, StringComparison.OrdinalIgnoreCase);
    }

    [Theory]
    [InlineData("no token")]
    [InlineData("wrong token")]
    [InlineData("foreign origin")]
    [InlineData("no origin")]
    [InlineData("null origin, cross-site")]
    public async Task ApprovalPost_NotFromTheAgentsOwnPage_Refused403_PaymentStillWaiting(string attempt)
    {
        var id = await _kit.PayAsync(await _kit.BillAsync());
        await _kit.WaitForAsync("payments", id, "awaiting-approval");
        var token = await _kit.TokenAsync(id);

        using var response = attempt switch
        {
            "no token" => await PostFormAsync(id, [new("decision", "approve")], _kit.Agent.Address.GetLeftPart(UriPartial.Authority)),
            "wrong token" => await _kit.DecideAsync(id, "approve", token: token[..^1] + (token[^1] == 'A' ? 'B' : 'A')),
            "foreign origin" => await _kit.DecideAsync(id, "approve", token: token, origin: AgentKit.StoreOrigin),
            "no origin" => await _kit.DecideAsync(id, "approve", token: token, origin: null),
            _ => await PostFormAsync(id, [new("token", token), new("decision", "approve")], "null", ("Sec-Fetch-Site", "cross-site")),
        };

        Assert.Equal(HttpStatusCode.Forbidden, response.StatusCode);
        Assert.Equal("agent.approval_refused", JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.GetProperty("code").GetString());
        await _kit.WaitForAsync("payments", id, "awaiting-approval");
        Assert.DoesNotContain(PurseInstruction.Debit, _kit.Wallet.Reader.Instructions);
    }

    [Fact]
    public async Task ApprovalPost_NullOriginFromTheAgentsOwnPage_Taken()
    {
        // A page sent with Referrer-Policy: no-referrer posts its form with Origin: null; the browser says it is its own.
        var id = await _kit.PayAsync(await _kit.BillAsync());
        await _kit.WaitForAsync("payments", id, "awaiting-approval");

        using var response = await PostFormAsync(id, [new("token", await _kit.TokenAsync(id)), new("decision", "decline")], "null", ("Sec-Fetch-Site", "same-origin"));

        Assert.Equal(HttpStatusCode.SeeOther, response.StatusCode);
        await _kit.WaitForAsync("payments", id, "declined");
    }

    [Fact]
    public async Task SecondApproval_Refused409()
    {
        var id = await _kit.PayAsync(await _kit.BillAsync());
        await _kit.WaitForAsync("payments", id, "awaiting-approval");
        var token = await _kit.TokenAsync(id);

        using var first = await _kit.DecideAsync(id, "approve", token: token);
        using var second = await _kit.DecideAsync(id, "decline", token: token);

        Assert.Equal(HttpStatusCode.SeeOther, first.StatusCode);
        Assert.Equal(HttpStatusCode.Conflict, second.StatusCode);
        Assert.Equal("agent.approval_state", JsonDocument.Parse(await second.Content.ReadAsStringAsync()).RootElement.GetProperty("code").GetString());
        await _kit.WaitForAsync("payments", id, "completed");
        Assert.Equal(WalletKit.Eur(8_750), _kit.Wallet.Balance());

        // The person's browser, which asks for HTML, gets the words and the code on a page.
        using var again = new HttpRequestMessage(HttpMethod.Post, $"/approve/{id:D}")
        {
            Content = new FormUrlEncodedContent([new("token", token), new("decision", "approve")]),
        };
        again.Headers.Add("Origin", _kit.Agent.Address.GetLeftPart(UriPartial.Authority));
        again.Headers.Add("Accept", "text/html,application/xhtml+xml");
        using var page = await _kit.Http.SendAsync(again);
        Assert.Equal(HttpStatusCode.Conflict, page.StatusCode);
        Assert.Equal("text/html", page.Content.Headers.ContentType?.MediaType);
        Assert.Contains("data-code=\"agent.approval_state\"", await page.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        Assert.Equal(AgentGuard.PagePolicy, Assert.Single(page.Headers.GetValues("Content-Security-Policy")));
    }

    [Fact]
    public async Task PaymentStatus_FromAnotherAllowedOrigin_404()
    {
        var id = await _kit.PayAsync(await _kit.BillAsync());
        _kit.Agent.Allow(AgentKit.ForeignOrigin);

        var (status, body) = await _kit.SendAsync(AgentKit.Api(HttpMethod.Get, $"/v1/payments/{id:D}", AgentKit.ForeignOrigin));
        var (unknown, unknownBody) = await _kit.SendAsync(AgentKit.Api(HttpMethod.Get, $"/v1/payments/{Guid.NewGuid():D}"));

        Assert.Equal(HttpStatusCode.NotFound, status);
        Assert.Equal("agent.payment_unknown", body.GetProperty("code").GetString());
        Assert.Equal(HttpStatusCode.NotFound, unknown);
        Assert.Equal("agent.payment_unknown", unknownBody.GetProperty("code").GetString());
    }

    [Fact]
    public async Task TamperedBill_AmountChangedSignatureKept_Refused422_CardUntouched()
    {
        var bill = await _kit.BillAsync();
        var parts = bill.Split('.');
        var payload = JsonNode.Parse(System.Buffers.Text.Base64Url.DecodeFromChars(parts[1]))!;
        payload["amount"]!["minorUnits"] = 1;
        var tampered = $"{parts[0]}.{System.Buffers.Text.Base64Url.EncodeToString(Encoding.UTF8.GetBytes(payload.ToJsonString()))}.{parts[2]}";

        var (status, body) = await _kit.SendAsync(AgentKit.Api(HttpMethod.Post, "/v1/payments", json: new { bill = tampered, profile = "signed" }));

        Assert.Equal((HttpStatusCode)422, status);
        Assert.Equal("agent.bill_invalid", body.GetProperty("code").GetString());
        Assert.Empty(_kit.Wallet.Reader.Instructions);
    }

    [Theory]
    [InlineData("{}")]
    [InlineData("{\"bill\":\"\"}")]
    [InlineData("{\"bill\":\"a.b.c\",\"profile\":\"fast\"}")]
    [InlineData("{\"bill\":\"a.b.c\",\"extra\":1}")]
    [InlineData("[]")]
    public async Task MalformedPaymentRequest_Refused400(string json)
    {
        var request = AgentKit.Api(HttpMethod.Post, "/v1/payments");
        request.Content = new StringContent(json, Encoding.UTF8, "application/json");
        var (status, body) = await _kit.SendAsync(request);

        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Equal("request.malformed", body.GetProperty("code").GetString());
    }

    [Fact]
    public async Task UnreadableBill_Refused422()
    {
        var (status, body) = await _kit.SendAsync(AgentKit.Api(HttpMethod.Post, "/v1/payments", json: new { bill = "a.b.c", profile = "lean" }));

        Assert.Equal((HttpStatusCode)422, status);
        Assert.Equal("agent.bill_invalid", body.GetProperty("code").GetString());
    }

    [Fact]
    public async Task TwoPaymentsAtOnce_EachPaysItsOwnBillOnce_InOrder()
    {
        var firstBill = await _kit.BillAsync();
        var secondBill = await _kit.BillAsync(quantity: 2);
        var first = await _kit.PayAsync(firstBill);
        await _kit.WaitForAsync("payments", first, "awaiting-approval");
        var second = await _kit.PayAsync(secondBill);

        // One card, one conversation: the second waits for the reader while the first awaits its approval.
        var waiting = await _kit.WaitForAsync("payments", second, "reading-card");
        Assert.Equal("25.00 EUR", waiting.GetProperty("amount").GetString());
        using (var approved = await _kit.DecideAsync(first, "approve"))
        {
            Assert.Equal(HttpStatusCode.SeeOther, approved.StatusCode);
        }

        var firstDone = await _kit.WaitForAsync("payments", first, "completed");
        await _kit.WaitForAsync("payments", second, "awaiting-approval");
        using (var approved = await _kit.DecideAsync(second, "approve"))
        {
            Assert.Equal(HttpStatusCode.SeeOther, approved.StatusCode);
        }

        var secondDone = await _kit.WaitForAsync("payments", second, "completed");
        Assert.NotEqual(firstDone.GetProperty("orderNo").GetString(), secondDone.GetProperty("orderNo").GetString());
        Assert.Equal("12.50 EUR", firstDone.GetProperty("amount").GetString());
        Assert.Equal("25.00 EUR", secondDone.GetProperty("amount").GetString());
        Assert.Equal(2, _kit.Wallet.Reader.Instructions.Count(i => i == PurseInstruction.Debit));
        Assert.Equal(WalletKit.Eur(10_000 - 1_250 - 2_500), _kit.Wallet.Balance());
    }

    [Fact]
    public async Task NinthOpenPayment_Refused429()
    {
        for (var i = 0; i < AgentOperations.OpenMax; i++)
        {
            await _kit.PayAsync(await _kit.BillAsync());
        }

        var (status, body) = await _kit.SendAsync(AgentKit.Api(HttpMethod.Post, "/v1/payments", json: new { bill = await _kit.BillAsync(), profile = "signed" }));

        Assert.Equal(HttpStatusCode.TooManyRequests, status);
        Assert.Equal("agent.too_many", body.GetProperty("code").GetString());
    }

    [Fact]
    public void RouteTable_HoldsExactlyTheDocumentedEndpoints_EachAnonymousAndNoneLowerThanAPayment()
    {
        var endpoints = _kit.Agent.Services.GetRequiredService<EndpointDataSource>().Endpoints.OfType<RouteEndpoint>().ToList();
        var table = endpoints
            .SelectMany(e => e.Metadata.GetMetadata<IHttpMethodMetadata>()!.HttpMethods.Select(method => $"{method} {e.RoutePattern.RawText}"))
            .Order(StringComparer.Ordinal);

        Assert.Equal(
            [
                "GET /", "GET /agent.css", "GET /approve/{id:guid}", "GET /v1/card", "GET /v1/payments/{id:guid}", "GET /v1/topups/{id:guid}",
                "POST /approve/{id:guid}", "POST /v1/payments", "POST /v1/topups",
            ],
            table);
        Assert.All(endpoints, e => Assert.NotNull(e.Metadata.GetMetadata<Microsoft.AspNetCore.Authorization.IAllowAnonymous>()));
        // The guard's API/pages split is declared, never read from the path.
        Assert.All(endpoints, e => Assert.Equal(e.RoutePattern.RawText!.StartsWith("/v1/", StringComparison.Ordinal), e.Metadata.GetMetadata<AgentApi>() is not null));
    }

    [Fact]
    public void EveryAgentCode_HasATitle_AndIsDocumentedWithItsStatus()
    {
        var documented = OpenPurse.Testing.ErrorsDocument.StatusesOf("Wallet agent");
        Assert.All(ProblemCode.Agent, code =>
        {
            Assert.False(string.IsNullOrWhiteSpace(code.Title));
            Assert.Equal(code.Status, documented[code.Code]);
        });
        Assert.All(documented.Keys, code => Assert.Contains(ProblemCode.Find(code), ProblemCode.Agent));
    }

    private static HttpRequestMessage Preflight(string origin, bool privateNetwork)
    {
        var request = new HttpRequestMessage(HttpMethod.Options, "/v1/payments");
        request.Headers.Add("Origin", origin);
        request.Headers.Add("Access-Control-Request-Method", "POST");
        request.Headers.Add("Access-Control-Request-Headers", "content-type,x-openpurse-agent");
        if (privateNetwork)
        {
            request.Headers.Add("Access-Control-Request-Private-Network", "true");
        }

        return request;
    }

    private async Task<HttpResponseMessage> PostFormAsync(Guid id, KeyValuePair<string, string>[] form, string origin, params (string Name, string Value)[] headers)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, $"/approve/{id:D}") { Content = new FormUrlEncodedContent(form) };
        request.Headers.Add("Origin", origin);
        foreach (var (name, value) in headers)
        {
            request.Headers.Add(name, value);
        }

        return await _kit.Http.SendAsync(request);
    }
}
