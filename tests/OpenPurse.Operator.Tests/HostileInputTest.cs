using System.Net;
using System.Net.Http.Json;
using System.Text;
using Dapper;
using OpenPurse.Hosting;
using OpenPurse.Operator.Api;
using OpenPurse.Operator.Registry;
using OpenPurse.Protocol;
using OpenPurse.Protocol.Messages;
using OpenPurse.Testing;

namespace OpenPurse.Operator.Tests;

/// <summary>
/// What an attacker on the operator's address sends: bills whose lines overflow or go negative,
/// bodies far over any message, requests Kestrel would refuse on its own, more requests than a
/// client needs, control characters meant for the log. Each is answered with problem details and
/// a documented code, never a 500 or an empty body, and changes nothing.
/// </summary>
public sealed class HostileInputTest
{
    private static Money Eur(long minor) => new(minor, Currency.Eur);

    [Fact]
    public async Task Start_BillWhoseLinesOverflow_IsMalformed_NotAFault()
    {
        await using var kit = await OperatorKit.StartAsync();
        // Each line is a valid amount; their sum is beyond what Money holds.
        var bill = BillWith(kit, Eur(1_000), [Eur(Money.MaxMinorUnits), Eur(Money.MaxMinorUnits)]);

        using var response = await kit.StartAsync(bill);

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Equal("bill.malformed", await OperatorKit.CodeOf(response));
    }

    [Fact]
    public async Task Start_BillWithANegativeLine_IsMalformed_AndDebitsNothing()
    {
        await using var kit = await OperatorKit.StartAsync();
        // 20.00 - 10.00 = 10.00: the total is positive and the lines add up to it.
        var bill = BillWith(kit, Eur(1_000), [Eur(2_000), Eur(-1_000)]);

        using var response = await kit.StartAsync(bill);

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Equal("bill.malformed", await OperatorKit.CodeOf(response));
        Assert.Equal(Eur(10_000), kit.Balance());
    }

    [Fact]
    public async Task Start_BillWithAZeroLine_IsMalformed()
    {
        await using var kit = await OperatorKit.StartAsync();
        var bill = BillWith(kit, Eur(1_000), [Eur(1_000), Eur(0)]);

        using var response = await kit.StartAsync(bill);

        Assert.Equal("bill.malformed", await OperatorKit.CodeOf(response));
    }

    [Theory]
    [InlineData("/v1/settlements", OperatorApi.SignedBodyLengthMax + 1)]
    [InlineData("/v1/cards/sync", OperatorApi.CardBodyLengthMax + 1)]
    [InlineData("/v1/settlements/0190a5b2-0000-7000-8000-000000000000/completion", OperatorApi.CardBodyLengthMax + 1)]
    public async Task Body_OverItsEndpointsLimit_IsTooLarge(string path, long length)
    {
        await using var kit = await OperatorKit.StartAsync();
        using var content = new StringContent(new string(' ', (int)length), Encoding.UTF8, "application/json");

        using var response = await kit.Http.PostAsync(new Uri(path, UriKind.Relative), content);

        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, response.StatusCode);
        Assert.Equal("request.too_large", await OperatorKit.CodeOf(response));
    }

    /// <summary>A huge body is refused on its announced length, before any of it is read.</summary>
    [Theory]
    [InlineData(10L * 1024 * 1024)]
    [InlineData(31L * 1024 * 1024)]
    public async Task Body_AnnouncedHuge_IsTooLarge_UnRead(long length)
    {
        await using var kit = await OperatorKit.StartAsync();

        var answer = await RawHttp.SendAsync(kit.Http.BaseAddress!, "POST", "/v1/settlements", [("Content-Type", "application/json")], "{", declaredLength: length);

        Assert.Equal((413, "application/problem+json"), (answer.Status, answer.ContentType));
        Assert.Contains("\"code\":\"request.too_large\"", answer.Body, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Start_BodyJustUnderTheLimit_IsRead()
    {
        await using var kit = await OperatorKit.StartAsync();
        var bill = kit.Bill(Eur(100));
        var json = JsonContent.Create(new StartSettlementRequest(bill, SettlementProfile.Signed, kit.Greeting(bill)), options: ProtocolJson.Options);
        var body = await json.ReadAsStringAsync();
        // Padded with whitespace to the limit: still a body this endpoint reads.
        using var content = new StringContent(body + new string(' ', (int)OperatorApi.SignedBodyLengthMax - Encoding.UTF8.GetByteCount(body)), Encoding.UTF8, "application/json");

        using var response = await kit.Http.PostAsync(new Uri("/v1/settlements", UriKind.Relative), content);

        Assert.Equal(HttpStatusCode.Created, response.StatusCode);
    }

    [Theory]
    [InlineData("GET", "/v1/settlements", "request.method_not_allowed", 405)]
    [InlineData("GET", "/v1/nothing", "request.not_found", 404)]
    public async Task FrameworkRefusal_IsProblemDetails(string method, string path, string code, int status)
    {
        await using var kit = await OperatorKit.StartAsync();
        using var request = new HttpRequestMessage(new HttpMethod(method), path);

        using var response = await kit.Http.SendAsync(request);

        Assert.Equal(status, (int)response.StatusCode);
        Assert.Equal(code, await OperatorKit.CodeOf(response));
    }

    [Fact]
    public async Task Start_NotJson_IsUnsupportedMediaType()
    {
        await using var kit = await OperatorKit.StartAsync();
        using var content = new StringContent("{}", Encoding.UTF8, "text/plain");

        using var response = await kit.Http.PostAsync(new Uri("/v1/settlements", UriKind.Relative), content);

        Assert.Equal(HttpStatusCode.UnsupportedMediaType, response.StatusCode);
        Assert.Equal("request.unsupported_media_type", await OperatorKit.CodeOf(response));
    }

    /// <summary>Requests refused before any endpoint: each answered with problem details, sent as raw bytes.</summary>
    [Theory]
    [MemberData(nameof(RawRequests))]
    public async Task RawRequest_RefusedBeforeTheEndpoints_IsProblemDetails(string target, int headerBytes, int status, string code)
    {
        await using var kit = await OperatorKit.StartAsync();

        var answer = await RawHttp.SendAsync(kit.Http.BaseAddress!, "GET", target, headerBytes == 0 ? null : Padding(headerBytes));

        Assert.Equal((status, "application/problem+json"), (answer.Status, answer.ContentType));
        Assert.Contains($"\"code\":\"{code}\"", answer.Body, StringComparison.Ordinal);
    }

    public static TheoryData<string, int, int, string> RawRequests => new()
    {
        { "/v1/stores/" + new string('a', RequestLimits.TargetLengthMax) + "/jwks", 0, 414, "request.target_too_long" },
        { "/v1/stores/" + new string('a', 20 * 1024) + "/jwks", 0, 414, "request.target_too_long" },
        { "/v1/stores/shop/jwks", RequestLimits.HeadersLengthMax + 1, 431, "request.headers_too_large" },
        { "/v1/stores/shop/jwks", 40 * 1024, 431, "request.headers_too_large" },
        { "/v1/stores/a%0D%0Ab/jwks", 0, 400, "request.malformed" },
        { "/v1/stores/a%1Bb/jwks", 0, 400, "request.malformed" },
    };

    /// <summary>
    /// What is left to Kestrel (docs/errors.md): a target it cannot decode (%00) is refused before
    /// the application sees it, 400 with an empty body, and the connection closed.
    /// </summary>
    [Fact]
    public async Task RawRequest_NullInThePath_IsKestrelsBare400()
    {
        await using var kit = await OperatorKit.StartAsync();

        var answer = await RawHttp.SendAsync(kit.Http.BaseAddress!, "GET", "/v1/stores/a%00b/jwks");

        Assert.Equal((400, "", "close"), (answer.Status, answer.Body, answer.Headers.GetValueOrDefault("Connection")));
    }

    [Fact]
    public async Task Client_OverItsRate_IsRateLimited_WithRetryAfter()
    {
        await using var kit = await OperatorKit.StartAsync(clientRate: (1, 3));

        using var refused = await UntilRefusedAsync(kit);

        Assert.Equal(HttpStatusCode.TooManyRequests, refused.StatusCode);
        Assert.Equal("request.rate_limited", await OperatorKit.CodeOf(refused));
        Assert.NotNull(refused.Headers.RetryAfter?.Delta);
        // The health check, for balancers, is not limited.
        using var health = await kit.Http.GetAsync(new Uri("/health", UriKind.Relative));
        Assert.Equal(HttpStatusCode.OK, health.StatusCode);
    }

    [Fact]
    public async Task Client_OverItsRate_StartsNoSettlement()
    {
        await using var kit = await OperatorKit.StartAsync(clientRate: (1, 1));
        var bill = kit.Bill(Eur(500));
        var greeting = kit.Greeting(bill);
        (await UntilRefusedAsync(kit)).Dispose();

        using var refused = await kit.StartAsync(bill, greeting: greeting);

        Assert.Equal(HttpStatusCode.TooManyRequests, refused.StatusCode);
        Assert.Equal("request.rate_limited", await OperatorKit.CodeOf(refused));
        await using var connection = await kit.Service<Database>().OpenAsync();
        Assert.Equal(0L, await connection.ExecuteScalarAsync<long>("SELECT COUNT(*) FROM settlements"));
    }

    /// <summary>Asks for a key set until the client's bucket is empty: the first refusal (a bucket refills by the second, so no fixed count).</summary>
    private static async Task<HttpResponseMessage> UntilRefusedAsync(OperatorKit kit)
    {
        for (var i = 0; i < 1_000; i++)
        {
            var response = await kit.Http.GetAsync(new Uri("/v1/stores/shop/jwks", UriKind.Relative));
            if (response.StatusCode != HttpStatusCode.OK)
            {
                return response;
            }

            response.Dispose();
        }

        throw new InvalidOperationException("A thousand requests were all answered: no rate limit.");
    }

    [Fact]
    public async Task Log_PathWithCrLf_WritesNoForgedLine()
    {
        const string forged = "crit: OpenPurse.Operator.Forged[0]";
        var directory = System.IO.Directory.CreateTempSubdirectory("openpurse-operator-log-").FullName;
        try
        {
            using var node = await OperatorNode.StartAsync(
                new Dictionary<string, string> { ["DataDirectory"] = directory, ["CreateVaultIfMissing"] = "true" },
                // The host's per-request lines are Warning by default; the documented override brings them back.
                new Dictionary<string, string> { ["Logging__LogLevel__Default"] = "Information", ["Logging__LogLevel__Microsoft.AspNetCore"] = "Information" });

            // The request line's target is logged by the host ("Request starting …") before anything refuses it.
            var answer = await RawHttp.SendAsync(node.Url, "GET", "/v1/stores/x%0D%0A" + Uri.EscapeDataString(forged) + "/jwks");
            Assert.Equal(400, answer.Status);
            var output = await WaitForAsync(() => node.Output, text => text.Contains("Forged", StringComparison.Ordinal));

            Assert.Contains("Forged", output, StringComparison.Ordinal);
            Assert.DoesNotContain(output.Split('\n', '\r'), line => line.TrimStart().StartsWith(forged, StringComparison.Ordinal));
        }
        finally
        {
            System.IO.Directory.Delete(directory, recursive: true);
        }
    }

    /// <summary>The text once it satisfies the condition, or as it is after 10 s (the process writes its log on its own thread).</summary>
    internal static async Task<string> WaitForAsync(Func<string> read, Func<string, bool> condition)
    {
        for (var i = 0; i < 200 && !condition(read()); i++)
        {
            await Task.Delay(50);
        }

        return read();
    }

    private static IEnumerable<(string Name, string Value)> Padding(int bytes)
    {
        // Several fields of at most 4 KiB: one field alone may meet a per-field limit first.
        for (var i = 0; bytes > 0; i++)
        {
            var length = Math.Min(bytes, 4096);
            yield return ($"X-Padding-{i}", new string('p', length));
            bytes -= length + 12;
        }
    }

    private static string BillWith(OperatorKit kit, Money amount, IReadOnlyList<Money> lines)
    {
        var now = kit.Time.GetUtcNow();
        var bill = new Bill(
            $"shop-hostile-{Guid.NewGuid():N}",
            "shop",
            null,
            amount,
            [.. lines.Select((line, i) => new BillItem($"item-{i}", "An item", 1, line))],
            now,
            now.AddMinutes(15));
        return SignedMessage.Sign(kit.StoreKey, bill, MessageTypes.Bill);
    }
}
