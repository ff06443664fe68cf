using System.Net;
using System.Net.Http.Json;
using System.Net.Sockets;
using System.Text;
using Dapper;
using Microsoft.AspNetCore.Authorization;
using Microsoft.AspNetCore.Routing;
using Microsoft.AspNetCore.Routing.Patterns;
using OpenPurse.Operator.Api;
using OpenPurse.Operator.Registry;
using OpenPurse.Protocol;
using OpenPurse.Protocol.Jose;
using OpenPurse.Testing;

namespace OpenPurse.Operator.Tests;

/// <summary>
/// The admin API on its own listener: who may call it, under any spelling of its paths, on either
/// listener. Every test runs on each registry engine (the subclasses at the end of this file).
/// </summary>
public abstract class AdminApiTest
{
    private static Money Eur(long minor) => new(minor, Currency.Eur);

    /// <summary>An operator kit on this class's engine.</summary>
    private protected abstract Task<OperatorKit> StartKitAsync();

    [SuiteFact]
    public async Task BlockCard_PathCaseChangedWithoutToken_RefusedOnBothListeners_CardStaysActive()
    {
        await using var kit = await StartKitAsync();

        foreach (var listener in new[] { kit.Http, kit.Admin })
        {
            using var response = await listener.PostAsync(new Uri($"v1/ADMIN/cards/{kit.Card.CardId.Digits}/block", UriKind.Relative), null);

            Assert.Contains(response.StatusCode, new[] { HttpStatusCode.Unauthorized, HttpStatusCode.NotFound });
        }

        Assert.Equal("active", await CardStatusAsync(kit));
        var bill = kit.Bill(Eur(100));
        using var started = await kit.StartAsync(bill);
        Assert.Equal(HttpStatusCode.Created, started.StatusCode);
    }

    [SuiteFact]
    public async Task RegisterStore_PathCaseChangedWithoutToken_RefusedOnBothListeners_NewKeyNotTaken()
    {
        await using var kit = await StartKitAsync();
        using var attackerKey = EcdsaSigningKey.Generate();

        foreach (var listener in new[] { kit.Http, kit.Admin })
        {
            using var response = await listener.PostAsJsonAsync(new Uri("V1/admin/stores", UriKind.Relative), Registration("shop", attackerKey));

            Assert.Contains(response.StatusCode, new[] { HttpStatusCode.Unauthorized, HttpStatusCode.NotFound });
        }

        using var forged = await kit.StartAsync(kit.Bill(Eur(100), key: attackerKey));
        Assert.Equal(HttpStatusCode.UnprocessableEntity, forged.StatusCode);
        Assert.Equal("bill.unknown_store", await OperatorKit.CodeOf(forged));
    }

    [SuiteFact]
    public async Task AdminEndpoints_WithAdministratorToken_OnPublicListener_NotFound()
    {
        await using var kit = await StartKitAsync();
        using var key = EcdsaSigningKey.Generate();
        using var request = new HttpRequestMessage(HttpMethod.Post, "v1/admin/stores") { Content = JsonContent.Create(Registration("other", key)) };
        request.Headers.Authorization = new("Bearer", OperatorKit.AdminToken);

        using var response = await kit.Http.SendAsync(request);

        Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
        Assert.Equal("request.not_found", await OperatorKit.CodeOf(response));
    }

    [SuiteFact]
    public async Task PublicEndpoints_OnAdminListener_NotFound()
    {
        await using var kit = await StartKitAsync();

        using var jwks = await kit.Admin.GetAsync(new Uri(".well-known/jwks.json", UriKind.Relative));
        using var start = await kit.Admin.PostAsJsonAsync(new Uri("v1/settlements", UriKind.Relative), new { });

        Assert.Equal(HttpStatusCode.NotFound, jwks.StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, start.StatusCode);
        Assert.Equal("request.not_found", await OperatorKit.CodeOf(start));
    }

    [SuiteFact]
    public async Task Auditor_AdministratorAction_Forbidden_CardStaysActive()
    {
        await using var kit = await StartKitAsync();
        using var request = new HttpRequestMessage(HttpMethod.Post, $"v1/admin/cards/{kit.Card.CardId.Digits}/block");
        request.Headers.Authorization = new("Bearer", OperatorKit.AuditorToken);

        using var response = await kit.Admin.SendAsync(request);

        Assert.Equal(HttpStatusCode.Forbidden, response.StatusCode);
        Assert.Equal("admin.forbidden", await OperatorKit.CodeOf(response));
        Assert.Equal("active", await CardStatusAsync(kit));
        var row = (await AuditAsync(kit))[0];
        Assert.Equal(("auditor-1", "auditor", "card.block", 403L, "admin.forbidden"), (row.Actor, row.Role, row.Action, row.Status, row.Code));
    }

    [SuiteFact]
    public async Task EveryAdminRequest_LeavesOneAuditRow_WhoWhatOutcomeFromWhere()
    {
        await using var kit = await StartKitAsync();
        using var key = EcdsaSigningKey.Generate();
        var before = (await AuditAsync(kit)).Count;

        using var answer1 = await SendAsync(kit, HttpMethod.Post, "v1/admin/stores", OperatorKit.AdminToken, Registration("books", key));
        using var answer2 = await SendAsync(kit, HttpMethod.Post, $"v1/admin/cards/{kit.Card.CardId.Digits}/block", OperatorKit.AdminToken);
        using var answer3 = await SendAsync(kit, HttpMethod.Post, "v1/admin/stores", token: null, Registration("books", key));
        using var answer4 = await SendAsync(kit, HttpMethod.Get, "v1/admin/stores", OperatorKit.AuditorToken);
        using var answer5 = await SendAsync(kit, HttpMethod.Get, "v1/admin/nothing-here", OperatorKit.AuditorToken);
        var rows = await AuditAsync(kit);

        Assert.Equal(before + 5, rows.Count);
        var expected = new[]
        {
            ("auditor-1", "auditor", "none", "GET /v1/admin/nothing-here", 404L, "request.not_found"),
            ("auditor-1", "auditor", "store.list", (string?)null, 200L, (string?)null),
            ("anonymous", (string?)null, "store.register", null, 401L, "admin.unauthorized"),
            ("admin", "administrator", "card.block", kit.Card.CardId.Masked, 204L, null),
            ("admin", "administrator", "store.register", "books", 200L, null),
        };
        Assert.Equal(expected, rows.Take(5).Select(r => (r.Actor, r.Role, r.Action, r.Target, r.Status, r.Code)));
        Assert.All(rows.Take(5), r => Assert.Equal("127.0.0.1", r.RemoteAddress));
        Assert.DoesNotContain(rows, r => r.Target?.Contains(kit.Card.CardId.Digits, StringComparison.Ordinal) == true);
    }

    [SuiteFact]
    public async Task Auditor_ReadsStoresAndTheAuditTrail_OverHttp()
    {
        await using var kit = await StartKitAsync();

        using var stores = await SendAsync(kit, HttpMethod.Get, "v1/admin/stores", OperatorKit.AuditorToken);
        using var audit = await SendAsync(kit, HttpMethod.Get, "v1/admin/audit?limit=1", OperatorKit.AuditorToken);
        using var tooMany = await SendAsync(kit, HttpMethod.Get, "v1/admin/audit?limit=100000", OperatorKit.AuditorToken);

        Assert.Equal(HttpStatusCode.OK, stores.StatusCode);
        var shop = Assert.Single((await stores.Content.ReadFromJsonAsync<System.Text.Json.JsonElement>()).EnumerateArray());
        Assert.Equal("shop", shop.GetProperty("storeId").GetString());
        Assert.Equal(kit.StoreKey.KeyId, Assert.Single(shop.GetProperty("keyIds").EnumerateArray()).GetString());
        Assert.Equal(HttpStatusCode.OK, audit.StatusCode);
        var last = Assert.Single((await audit.Content.ReadFromJsonAsync<System.Text.Json.JsonElement>()).EnumerateArray());
        Assert.Equal("store.list", last.GetProperty("action").GetString());
        Assert.Equal(HttpStatusCode.BadRequest, tooMany.StatusCode);
        Assert.Equal("request.malformed", await OperatorKit.CodeOf(tooMany));
    }

    [SuiteFact]
    public async Task Administrator_BlocksCard_NoContent()
    {
        await using var kit = await StartKitAsync();
        using var request = new HttpRequestMessage(HttpMethod.Post, $"v1/admin/cards/{kit.Card.CardId.Digits}/block");
        request.Headers.Authorization = new("Bearer", OperatorKit.AdminToken);

        using var response = await kit.Admin.SendAsync(request);

        Assert.Equal(HttpStatusCode.NoContent, response.StatusCode);
        Assert.Equal("blocked", await CardStatusAsync(kit));
    }

    [SuiteFact]
    public async Task WrongToken_Unauthorized_WithProblemDetails()
    {
        await using var kit = await StartKitAsync();
        using var request = new HttpRequestMessage(HttpMethod.Post, $"v1/admin/cards/{kit.Card.CardId.Digits}/block");
        request.Headers.Authorization = new("Bearer", OperatorKit.AdminToken + "x");

        using var response = await kit.Admin.SendAsync(request);

        Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
        Assert.Equal("Bearer", Assert.Single(response.Headers.WwwAuthenticate).Scheme);
        Assert.Equal("admin.unauthorized", await OperatorKit.CodeOf(response));
        Assert.Equal("active", await CardStatusAsync(kit));
    }

    [SuiteFact]
    public async Task RouteTable_EveryEndpoint_DeclaresAPolicyOrIsAnonymous_AndAdminOnesAreOnTheAdminSurface()
    {
        await using var kit = await StartKitAsync();

        var endpoints = RouteEndpoints(kit);

        Assert.NotEmpty(endpoints);
        Assert.All(endpoints, endpoint =>
        {
            var anonymous = endpoint.Metadata.GetMetadata<IAllowAnonymous>() is not null;
            var policy = endpoint.Metadata.GetOrderedMetadata<IAuthorizeData>().Any(a => a.Policy is not null);
            Assert.True(anonymous != policy, $"{endpoint.DisplayName}: either a policy or AllowAnonymous, exactly one");
            var admin = endpoint.Metadata.GetMetadata<AdminSurface>() is not null;
            if (IsScrape(endpoint))
            {
                // Declared exception: counts only, on the admin listener, anonymous and not audited.
                Assert.Equal("/metrics", endpoint.RoutePattern.RawText);
                Assert.True(admin && anonymous);
                return;
            }

            if (endpoint.RoutePattern.RawText == "/openapi/admin.json")
            {
                // The admin API's OpenAPI document: on the admin listener, open to anyone there, changing nothing.
                Assert.True(admin && anonymous, $"{endpoint.DisplayName}: on the admin surface and anonymous");
                return;
            }

            Assert.Equal(admin, endpoint.RoutePattern.RawText!.StartsWith(AdminApi.Prefix, StringComparison.Ordinal));
            Assert.Equal(admin, policy);
            Assert.Equal(admin, endpoint.Metadata.GetMetadata<AdminAction>() is not null);
        });
    }

    [SuiteFact]
    public async Task RouteTable_EveryAdminEndpoint_RefusesAnUnauthenticatedRequest_UnderAnySpelling_OnBothListeners()
    {
        await using var kit = await StartKitAsync();
        var admin = RouteEndpoints(kit).Where(e => e.Metadata.GetMetadata<AdminAction>() is not null).ToList();
        Assert.NotEmpty(admin);

        foreach (var endpoint in admin)
        {
            var method = Assert.Single(endpoint.Metadata.GetMetadata<HttpMethodMetadata>()!.HttpMethods);
            var declared = SamplePath(endpoint.RoutePattern, kit);
            Assert.Equal(401, await RawStatusAsync(kit.Admin.BaseAddress!, method, declared));
            foreach (var path in Spellings(declared))
            {
                var onPublic = await RawStatusAsync(kit.Http.BaseAddress!, method, path);
                var onAdmin = await RawStatusAsync(kit.Admin.BaseAddress!, method, path);

                Assert.True(onPublic == 404, $"{method} {path} on the public listener answered {onPublic}");
                Assert.True(onAdmin is 401 or 404, $"{method} {path} on the admin listener answered {onAdmin}");
            }
        }

        Assert.Equal("active", await CardStatusAsync(kit));
    }

    /// <summary>The Prometheus scrape endpoint: on the admin listener, anonymous, not audited.</summary>
    private static bool IsScrape(RouteEndpoint endpoint) => endpoint.Metadata.GetMetadata<AdminAudit.Unaudited>() is not null;

    private static async Task<HttpResponseMessage> SendAsync(OperatorKit kit, HttpMethod method, string path, string? token, object? body = null)
    {
        using var request = new HttpRequestMessage(method, path) { Content = body is null ? null : JsonContent.Create(body) };
        if (token is not null)
        {
            request.Headers.Authorization = new("Bearer", token);
        }

        return await kit.Admin.SendAsync(request);
    }

    private static Task<IReadOnlyList<AuditEvent>> AuditAsync(OperatorKit kit) => kit.Service<AuditTrail>().ReadAsync(AuditTrail.ReadMax, CancellationToken.None);

    private static List<RouteEndpoint> RouteEndpoints(OperatorKit kit) =>
        [.. kit.Service<EndpointDataSource>().Endpoints.OfType<RouteEndpoint>()];

    // The route with each parameter given a value its constraints take: the kit's card for a card number.
    private static string SamplePath(RoutePattern pattern, OperatorKit kit) => "/" + string.Join('/', pattern.PathSegments.Select(segment => string.Concat(segment.Parts.Select(part => part switch
    {
        RoutePatternLiteralPart literal => literal.Content,
        RoutePatternParameterPart { Name: "cardNumber" } => kit.Card.CardId.Digits,
        RoutePatternParameterPart { ParameterPolicies.Count: > 0 } => Guid.NewGuid().ToString(),
        RoutePatternParameterPart => "sample",
        RoutePatternSeparatorPart separator => separator.Content,
        _ => throw new InvalidOperationException($"Unexpected route part {part}"),
    }))));

    // As declared, upper, lower, mixed case, with a trailing slash, doubled slashes, letters percent-encoded.
    private static IEnumerable<string> Spellings(string path)
    {
        yield return path;
        yield return path.ToUpperInvariant();
        yield return path.ToLowerInvariant();
        yield return string.Concat(path.Select((c, i) => i % 2 == 0 ? char.ToUpperInvariant(c) : char.ToLowerInvariant(c)));
        yield return path + "/";
        yield return path.Replace("/", "//", StringComparison.Ordinal);
        yield return "/" + path;
        yield return string.Concat(path.Select(c => char.IsAsciiLetter(c) ? $"%{(int)c:X2}" : c.ToString()));
        yield return path.Replace("admin", "%41dmin", StringComparison.Ordinal);
        yield return path.Replace("/v1/", "/v1/./", StringComparison.Ordinal);
        yield return path.Replace("/v1/", "/v1/x/../", StringComparison.Ordinal);
    }

    // Raw HTTP/1.1, so that no client library normalizes the path on its way out.
    private static async Task<int> RawStatusAsync(Uri listener, string method, string path)
    {
        using var client = new TcpClient();
        await client.ConnectAsync(listener.Host, listener.Port);
        await using var stream = client.GetStream();
        var request = $"{method} {path} HTTP/1.1\r\nHost: {listener.Authority}\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{{}}";
        await stream.WriteAsync(Encoding.ASCII.GetBytes(request));
        using var reader = new StreamReader(stream, Encoding.ASCII);
        var statusLine = await reader.ReadLineAsync() ?? "";
        return int.Parse(statusLine.Split(' ')[1], System.Globalization.CultureInfo.InvariantCulture);
    }

    private static object Registration(string storeId, EcdsaSigningKey key) => new
    {
        storeId,
        name = storeId,
        mallId = (string?)null,
        notifyUrl = (string?)null,
        jwks = System.Text.Json.JsonDocument.Parse(new JsonWebKeySet([key.PublicKey]).ToJson()).RootElement,
    };

    private static async Task<string> CardStatusAsync(OperatorKit kit)
    {
        await using var connection = await kit.Service<Database>().OpenAsync();
        return await connection.QuerySingleAsync<string>("SELECT status FROM cards WHERE card_id = @id", new { id = kit.Card.CardId.Digits });
    }
}

/// <summary>The admin API on the embedded default registry, SQLite.</summary>
public sealed class AdminApiOnSqliteTest : AdminApiTest
{
    private protected override Task<OperatorKit> StartKitAsync() => OperatorKit.StartAsync(loadMinor: 1_000);
}

/// <summary>The admin API on PostgreSQL: one private cluster for the class, a fresh database per test.</summary>
[UsesComponents(Components.PostgreSql)]
public sealed class AdminApiOnPostgreSqlTest(SharedPostgresCluster postgres) : AdminApiTest, IClassFixture<SharedPostgresCluster>
{
    private protected override async Task<OperatorKit> StartKitAsync() =>
        await OperatorKit.StartAsync(loadMinor: 1_000, postgres: await postgres.CreateDatabaseAsync());
}
