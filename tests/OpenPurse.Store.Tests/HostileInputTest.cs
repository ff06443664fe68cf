using System.Net;
using System.Text;
using OpenPurse.Hosting;
using OpenPurse.Store.Api;
using OpenPurse.Testing;

namespace OpenPurse.Store.Tests;

/// <summary>
/// What an attacker on the store's address sends: more orders than a client needs, bodies far over
/// any message, requests Kestrel would refuse on its own, control characters meant for the log.
/// Each is answered with problem details and a documented code, never a 500 or an empty body.
/// </summary>
public sealed class HostileInputTest : StoreTest
{
    [Fact]
    public async Task Orders_ClientOverItsRate_IsRateLimited_WithRetryAfter()
    {
        await using var store = await TestStore.StartAsync(
            TestStore.OptionsFor(Operator, Directory.CreateTempSubdirectory("openpurse-store-").FullName) with { ClientOrdersPerSecond = 1, ClientOrderBurst = 2 },
            Operator,
            ownsDirectory: true);
        HttpResponseMessage? refused = null;
        var created = 0;
        // Until the client's bucket is empty: it refills each second, so no fixed count.
        for (var i = 0; i < 1_000 && refused is null; i++)
        {
            var response = await store.PostOrderAsync(TestStore.Books, ("book-1", 1));
            if (response.StatusCode == HttpStatusCode.Created)
            {
                created++;
                response.Dispose();
            }
            else
            {
                refused = response;
            }
        }

        Assert.NotNull(refused);
        using (refused)
        {
            await TestStore.AssertProblemAsync(refused, HttpStatusCode.TooManyRequests, "request.rate_limited");
            Assert.NotNull(refused.Headers.RetryAfter?.Delta);
        }

        Assert.InRange(created, 2, 999);
        // Estimates make nothing and stay answered.
        using var estimate = await store.Http.PostAsync(new Uri("/v1/estimates", UriKind.Relative),
            new StringContent("""{"storeId":"books","items":[{"sku":"book-1","quantity":1}]}""", Encoding.UTF8, "application/json"));
        Assert.Equal(HttpStatusCode.OK, estimate.StatusCode);
    }

    [Theory]
    [InlineData("/v1/operator/completions", StoreApi.SignedBodyLengthMax + 1)]
    [InlineData("/v1/operator/voids", StoreApi.SignedBodyLengthMax + 1)]
    [InlineData("/v1/estimates", StoreApi.OrderBodyLengthMax + 1)]
    public async Task Body_OverItsEndpointsLimit_IsTooLarge(string path, long length)
    {
        using var content = new StringContent(new string(' ', (int)length), Encoding.UTF8, "application/json");

        using var response = await Store.Http.PostAsync(new Uri(path, UriKind.Relative), content);

        await TestStore.AssertProblemAsync(response, HttpStatusCode.RequestEntityTooLarge, "request.too_large");
    }

    [Theory]
    [InlineData(10L * 1024 * 1024)]
    [InlineData(31L * 1024 * 1024)]
    public async Task Body_AnnouncedHuge_IsTooLarge_Unread(long length)
    {
        var answer = await RawHttp.SendAsync(Store.Address, "POST", "/v1/orders", [("Content-Type", "application/json")], "{", declaredLength: length);

        Assert.Equal((413, "application/problem+json"), (answer.Status, answer.ContentType));
        Assert.Contains("\"code\":\"request.too_large\"", answer.Body, StringComparison.Ordinal);
    }

    [Fact]
    public async Task WrongMethod_IsMethodNotAllowed()
    {
        using var response = await Store.Http.DeleteAsync(new Uri("/v1/catalog", UriKind.Relative));

        await TestStore.AssertProblemAsync(response, HttpStatusCode.MethodNotAllowed, "request.method_not_allowed");
    }

    [Theory]
    [MemberData(nameof(RawRequests))]
    public async Task RawRequest_RefusedBeforeTheEndpoints_IsProblemDetails(string target, int headerBytes, int status, string code)
    {
        var answer = await RawHttp.SendAsync(Store.Address, "GET", target, headerBytes == 0 ? null : Padding(headerBytes));

        Assert.Equal((status, "application/problem+json"), (answer.Status, answer.ContentType));
        Assert.Contains($"\"code\":\"{code}\"", answer.Body, StringComparison.Ordinal);
    }

    public static TheoryData<string, int, int, string> RawRequests => new()
    {
        { "/v1/orders/" + new string('a', RequestLimits.TargetLengthMax), 0, 414, "request.target_too_long" },
        { "/v1/orders/" + new string('a', 20 * 1024), 0, 414, "request.target_too_long" },
        { "/v1/catalog", RequestLimits.HeadersLengthMax + 1, 431, "request.headers_too_large" },
        { "/v1/catalog", 40 * 1024, 431, "request.headers_too_large" },
        { "/v1/orders/x%0D%0Ay/download", 0, 400, "request.malformed" },
    };

    [Fact]
    public async Task Log_PathWithCrLf_WritesNoForgedLine()
    {
        const string forged = "crit: OpenPurse.Store.Forged[0]";
        var directory = Directory.CreateTempSubdirectory("openpurse-store-log-").FullName;
        var port = HaProxy.FreePort();
        var environment = new Dictionary<string, string>
        {
            ["Store__DataDirectory"] = directory,
            ["Store__Urls"] = $"http://127.0.0.1:{port}",
            ["Store__OperatorUrl"] = Operator.Url.ToString(),
            ["Store__Members__0__StoreId"] = "books",
            ["Store__Members__0__Name"] = "Books",
            ["Store__Members__0__Catalog__0__Sku"] = "book-1",
            ["Store__Members__0__Catalog__0__Title"] = "Book One",
            ["Store__Members__0__Catalog__0__Price"] = "4.99 EUR",
            ["Store__Members__0__Catalog__0__Content"] = "The text.",
            // The host's own line for each request carries the path as it was decoded.
            ["Logging__LogLevel__Default"] = "Information",
            ["Logging__LogLevel__Microsoft.AspNetCore"] = "Information",
        };
        try
        {
            using var store = PartyProcess.Start("openpurse-store", ["serve"], environment);
            var url = new Uri($"http://127.0.0.1:{port}/");
            await store.WaitReadyAsync(new Uri(url, "v1/catalog"), "the store");

            var answer = await RawHttp.SendAsync(url, "GET", "/v1/orders/x%0D%0A" + Uri.EscapeDataString(forged) + "/download");
            Assert.Equal(400, answer.Status);
            for (var i = 0; i < 200 && !store.Output.Contains("Forged", StringComparison.Ordinal); i++)
            {
                await Task.Delay(50);
            }

            Assert.Contains("Forged", store.Output, StringComparison.Ordinal);
            Assert.DoesNotContain(store.Output.Split('\n', '\r'), line => line.TrimStart().StartsWith(forged, StringComparison.Ordinal));
        }
        finally
        {
            TestStore.DeleteDirectory(directory);
        }
    }

    private static IEnumerable<(string Name, string Value)> Padding(int bytes)
    {
        for (var i = 0; bytes > 0; i++)
        {
            var length = Math.Min(bytes, 4096);
            yield return ($"X-Padding-{i}", new string('p', length));
            bytes -= length + 12;
        }
    }
}
