using System.Net;
using System.Net.Http.Json;
using System.Security.Cryptography;
using System.Text.Json;
using Microsoft.Extensions.Time.Testing;
using OpenPurse.Card;
using OpenPurse.Operator.Issuance;
using OpenPurse.Operator.Registry;
using OpenPurse.Operator.Security;
using OpenPurse.Protocol;
using OpenPurse.Protocol.Jose;
using OpenPurse.Protocol.Messages;
using OpenPurse.Testing;

namespace OpenPurse.Operator.Tests;

/// <summary>
/// Key rotation over real HTTP (docs/operations.md, "Rotating keys"): a store's key retired and its
/// successor paying; the operator's signing key rotated, activated and retired on two nodes sharing
/// one registry and one vault, with purchases on both throughout; card master key versions side by
/// side. Every test runs on each registry engine (the subclasses at the end of this file).
/// </summary>
public abstract class KeyRotationTest
{
    private static readonly Money s_price = new(1_000, Currency.Eur);

    /// <summary>A new PostgreSQL database for one kit, or null for SQLite.</summary>
    private protected abstract Task<PostgresDatabase?> CreateDatabaseAsync();

    [SuiteFact]
    public async Task StoreKey_Retired_BillUnderItRefusedWithItsCode_NewKeyPays()
    {
        await using var kit = await OperatorKit.StartAsync(postgres: await CreateDatabaseAsync());
        using var successor = EcdsaSigningKey.Generate();
        await kit.RegisterStoreAsync("shop", successor);
        var signedBefore = kit.Bill(s_price);

        using var retired = await AdminPostAsync(kit.Admin, $"v1/admin/stores/shop/keys/{kit.StoreKey.KeyId}/retire", new { reason = "key rotation" });
        using var refused = await kit.StartAsync(kit.Bill(s_price));
        using var refusedEarlier = await kit.StartAsync(signedBefore);
        var settlementId = await PurchaseAsync(kit, kit.Bill(s_price, key: successor));
        var keys = await AdminGetAsync<StoreKeys>(kit.Admin, "v1/admin/stores/shop/keys");
        var published = JsonWebKeySet.Parse(await kit.Http.GetStringAsync("v1/stores/shop/jwks"));

        Assert.Equal(HttpStatusCode.OK, retired.StatusCode);
        Assert.Equal("store.key_retired", await OperatorKit.CodeOf(refused));
        Assert.Equal("store.key_retired", await OperatorKit.CodeOf(refusedEarlier));
        Assert.NotEqual(Guid.Empty, settlementId);
        Assert.Equal(new[] { kit.StoreKey.KeyId, successor.KeyId }.Order(StringComparer.Ordinal), keys.Keys.Select(k => k.Kid).Order(StringComparer.Ordinal));
        Assert.NotNull(keys.Keys.Single(k => k.Kid == kit.StoreKey.KeyId).RetiredAt);
        Assert.Null(keys.Keys.Single(k => k.Kid == successor.KeyId).RetiredAt);
        // Wallets verify bills with the key set the operator publishes for the store: the retired key is gone from it.
        Assert.Equal([successor.KeyId], published.Keys.Select(k => k.Kid));
        var audit = await AdminGetAsync<JsonElement>(kit.Admin, "v1/admin/audit?limit=5");
        Assert.Contains(audit.EnumerateArray(), e => e.GetProperty("action").GetString() == "store.key_retire" && e.GetProperty("reason").GetString() == "key rotation");
    }

    [SuiteFact]
    public async Task StoreKey_LastActive_RetireRefused_UnknownKidNotFound()
    {
        await using var kit = await OperatorKit.StartAsync(postgres: await CreateDatabaseAsync());

        using var last = await AdminPostAsync(kit.Admin, $"v1/admin/stores/shop/keys/{kit.StoreKey.KeyId}/retire", null);
        using var unknown = await AdminPostAsync(kit.Admin, "v1/admin/stores/shop/keys/no-such-kid/retire", null);
        using var otherStore = await AdminPostAsync(kit.Admin, $"v1/admin/stores/other/keys/{kit.StoreKey.KeyId}/retire", null);
        var settlementId = await PurchaseAsync(kit, kit.Bill(s_price));

        Assert.Equal((HttpStatusCode.Conflict, "store.key_last"), (last.StatusCode, await OperatorKit.CodeOf(last)));
        Assert.Equal((HttpStatusCode.NotFound, "store.key_not_found"), (unknown.StatusCode, await OperatorKit.CodeOf(unknown)));
        Assert.Equal("store.key_not_found", await OperatorKit.CodeOf(otherStore));
        Assert.NotEqual(Guid.Empty, settlementId);
    }

    [SuiteFact]
    public async Task StoreKey_Retired_RegisteredAgain_Refused()
    {
        await using var kit = await OperatorKit.StartAsync(postgres: await CreateDatabaseAsync());
        using var successor = EcdsaSigningKey.Generate();
        await kit.RegisterStoreAsync("shop", successor);
        using (var retired = await AdminPostAsync(kit.Admin, $"v1/admin/stores/shop/keys/{kit.StoreKey.KeyId}/retire", null))
        {
            Assert.Equal(HttpStatusCode.OK, retired.StatusCode);
        }

        using var again = await AdminPostAsync(kit.Admin, "v1/admin/stores", new { storeId = "shop", name = "Shop", mallId = (string?)null, notifyUrl = (string?)null, jwks = JsonDocument.Parse(new JsonWebKeySet([kit.StoreKey.PublicKey]).ToJson()).RootElement });
        using var elsewhere = await AdminPostAsync(kit.Admin, "v1/admin/stores", new { storeId = "thief", name = "Thief", mallId = (string?)null, notifyUrl = (string?)null, jwks = JsonDocument.Parse(new JsonWebKeySet([kit.StoreKey.PublicKey]).ToJson()).RootElement });

        Assert.Equal((HttpStatusCode.UnprocessableEntity, "store.key_retired"), (again.StatusCode, await OperatorKit.CodeOf(again)));
        Assert.Equal("store.key_retired", await OperatorKit.CodeOf(elsewhere));
        using var refused = await kit.StartAsync(kit.Bill(s_price));
        Assert.Equal("store.key_retired", await OperatorKit.CodeOf(refused));
    }

    /// <summary>
    /// The bound on other nodes: a node that found the store before the retirement answers from
    /// memory for at most <see cref="StoreRegistry.CachedFor"/>, then sees it (its clock moved by hand).
    /// </summary>
    [SuiteFact]
    public async Task StoreKey_Retired_OtherNodeSeesItWithinTheCacheTime()
    {
        await using var kit = await OperatorKit.StartAsync(postgres: await CreateDatabaseAsync());
        using var successor = EcdsaSigningKey.Generate();
        await kit.RegisterStoreAsync("shop", successor);
        var clock = new FakeTimeProvider(DateTimeOffset.UtcNow);
        var otherNode = new StoreRegistry(kit.Service<Database>(), clock);
        var before = await otherNode.FindByKeyAsync(kit.StoreKey.KeyId, CancellationToken.None);

        Assert.True((await kit.Service<StoreRegistry>().RetireKeyAsync("shop", kit.StoreKey.KeyId, CancellationToken.None)).Refusal is null);
        var cached = await otherNode.FindByKeyAsync(kit.StoreKey.KeyId, CancellationToken.None);
        clock.Advance(StoreRegistry.CachedFor);
        var after = await otherNode.FindByKeyAsync(kit.StoreKey.KeyId, CancellationToken.None);
        var onTheRetiringNode = await kit.Service<StoreRegistry>().FindByKeyAsync(kit.StoreKey.KeyId, CancellationToken.None);

        Assert.False(StoreRegistry.IsRetired(before!.Value.Keys, kit.StoreKey.KeyId));
        Assert.False(StoreRegistry.IsRetired(cached!.Value.Keys, kit.StoreKey.KeyId));
        Assert.True(StoreRegistry.IsRetired(after!.Value.Keys, kit.StoreKey.KeyId));
        Assert.True(StoreRegistry.IsRetired(onTheRetiringNode!.Value.Keys, kit.StoreKey.KeyId));
        Assert.Equal("shop", after.Value.Store.StoreId);
    }

    /// <summary>
    /// Rotate → activate → retire on two nodes sharing one registry and one software vault, with a
    /// purchase on each node at every step; a wallet's purchase that started before the activation
    /// and ends after it; and what a verifier does with a message under the retired key.
    /// </summary>
    [SuiteFact]
    public async Task OperatorKey_RotateActivateRetire_TwoNodes_PurchasesKeepWorking()
    {
        await using var kit = await OperatorKit.StartAsync(loadMinor: 20_000, postgres: await CreateDatabaseAsync());
        await using var other = await kit.StartOtherNodeAsync();
        var first = kit.OperatorKeys.Keys.Single().Kid!;
        var (_, signedByFirst) = await PurchaseOnAsync(kit, kit.Http, kit.Bill(s_price));

        // Rotate at the station: the new key is published on both nodes, neither signs with it.
        var next = await kit.Service<OperatorKeyRing>().RotateAsync(CancellationToken.None);
        var publishedAfterRotate = JsonWebKeySet.Parse(await other.Http.GetStringAsync(".well-known/jwks.json"));
        var (_, stillFirst) = await PurchaseOnAsync(kit, other.Http, kit.Bill(s_price));

        // A wallet starts a purchase on one node with the key set it fetched now, the key is activated, the purchase completes on the other node.
        var walletKeys = publishedAfterRotate;
        var bill = kit.Bill(s_price);
        var started = await StartOnAsync(kit, kit.Http, bill);
        using var activated = await AdminPostAsync(kit.Admin, $"v1/admin/keys/{next.Kid}/activate", null);
        await other.Service<OperatorKeyRing>().RefreshAsync(CancellationToken.None);
        var completed = await CompleteOnAsync(kit, other.Http, started, bill);
        var (_, signedOnOther) = await PurchaseOnAsync(kit, other.Http, kit.Bill(s_price));
        var (_, signedOnKit) = await PurchaseOnAsync(kit, kit.Http, kit.Bill(s_price));
        var publishedAfterActivate = JsonWebKeySet.Parse(await kit.Http.GetStringAsync(".well-known/jwks.json"));

        // Retire the first key on the other node's admin API: no longer published.
        using var retired = await AdminPostAsync(other.Admin, $"v1/admin/keys/{first}/retire", null);
        var publishedAfterRetire = JsonWebKeySet.Parse(await kit.Http.GetStringAsync(".well-known/jwks.json"));
        var (_, afterRetire) = await PurchaseOnAsync(kit, other.Http, kit.Bill(s_price));
        var list = await AdminGetAsync<KeyList>(other.Admin, "v1/admin/keys");

        Assert.Equal(first, Jws.PeekKeyId(signedByFirst));
        Assert.Equal(new[] { first, next.Kid }.Order(StringComparer.Ordinal), publishedAfterRotate.Keys.Select(k => k.Kid!).Order(StringComparer.Ordinal));
        Assert.Equal(first, Jws.PeekKeyId(stillFirst));
        Assert.Equal(HttpStatusCode.OK, activated.StatusCode);
        Assert.Equal(next.Kid, Jws.PeekKeyId(completed.CompletionNotice));
        Assert.NotNull(SignedMessage.Verify<CompletionNotice>(completed.CompletionNotice, walletKeys, MessageTypes.CompletionNotice, out _));
        Assert.Equal(next.Kid, Jws.PeekKeyId(signedOnOther));
        Assert.Equal(next.Kid, Jws.PeekKeyId(signedOnKit));
        Assert.Equal(2, publishedAfterActivate.Keys.Count);
        Assert.Equal(HttpStatusCode.OK, retired.StatusCode);
        Assert.Equal([next.Kid], publishedAfterRetire.Keys.Select(k => k.Kid!));
        Assert.Equal(next.Kid, Jws.PeekKeyId(afterRetire));
        Assert.Equal(
            [(next.Kid, OperatorKeyStates.Active), (first, OperatorKeyStates.Retired)],
            list.OperatorKeys.Select(k => (k.Kid, k.State)).OrderBy(k => k.State, StringComparer.Ordinal));
        // What a wallet or a store does with a message under the retired key once it fetched the key set again: refuses it as signed by an unknown key.
        Assert.Null(SignedMessage.Verify<CompletionNotice>(signedByFirst, publishedAfterRetire, MessageTypes.CompletionNotice, out var error));
        Assert.Equal("signature.unknown_key", error);
    }

    [SuiteFact]
    public async Task OperatorKey_WrongStates_Refused()
    {
        await using var kit = await OperatorKit.StartAsync(postgres: await CreateDatabaseAsync());
        var first = kit.OperatorKeys.Keys.Single().Kid!;
        var next = await kit.Service<OperatorKeyRing>().RotateAsync(CancellationToken.None);

        using var retireActive = await AdminPostAsync(kit.Admin, $"v1/admin/keys/{first}/retire", null);
        using var unknown = await AdminPostAsync(kit.Admin, "v1/admin/keys/no-such-kid/activate", null);
        using var retireNext = await AdminPostAsync(kit.Admin, $"v1/admin/keys/{next.Kid}/retire", null);
        using var activateRetired = await AdminPostAsync(kit.Admin, $"v1/admin/keys/{next.Kid}/activate", null);
        using var auditorTries = await AdminPostAsync(kit.Admin, $"v1/admin/keys/{next.Kid}/retire", null, OperatorKit.AuditorToken);
        var (_, signed) = await PurchaseOnAsync(kit, kit.Http, kit.Bill(s_price));

        Assert.Equal((HttpStatusCode.Conflict, "operator_key.wrong_state"), (retireActive.StatusCode, await OperatorKit.CodeOf(retireActive)));
        Assert.Equal((HttpStatusCode.NotFound, "operator_key.not_found"), (unknown.StatusCode, await OperatorKit.CodeOf(unknown)));
        Assert.Equal(HttpStatusCode.OK, retireNext.StatusCode);
        Assert.Equal("operator_key.wrong_state", await OperatorKit.CodeOf(activateRetired));
        Assert.Equal("admin.forbidden", await OperatorKit.CodeOf(auditorTries));
        Assert.Equal(first, Jws.PeekKeyId(signed));
    }

    /// <summary>A card of master key version 01 and one of version 02 both pay; a card of a version the operator lacks is refused, saying so.</summary>
    [SuiteFact]
    public async Task MasterKey_Rotated_OldAndNewCardsPay_UnknownVersionRefused()
    {
        await using var kit = await OperatorKit.StartAsync(postgres: await CreateDatabaseAsync());
        var security = kit.Service<ISecurityModule>();

        var version = security.CreateMasterKey();
        var newCard = await kit.IssueCardAsync(5_000);
        var keys = await kit.Service<CardIssuer>().IssueAsync(CancellationToken.None);
        var path = Path.Combine(kit.Directory, "unknown-version.bin");
        using var unknownVersion = EmulatedCard.Create(path, new CardPersonalization(keys.CardId, 0x09, keys.EncKey, keys.MacKey, 1_000_000));
        CryptographicOperations.ZeroMemory(keys.EncKey);
        CryptographicOperations.ZeroMemory(keys.MacKey);
        var oldPaid = await PurchaseAsync(kit, kit.Bill(s_price));
        var newPaid = await PurchaseAsync(kit, kit.Bill(s_price), newCard);
        var unknownBill = kit.Bill(s_price);
        using var refused = await kit.StartAsync(unknownBill, reader: new OperatorKit.CardReader(unknownVersion));
        var list = await AdminGetAsync<KeyList>(kit.Admin, "v1/admin/keys");

        Assert.Equal(0x02, version);
        Assert.Equal((byte)0x02, keys.KeyVersion);
        Assert.NotEqual(Guid.Empty, oldPaid);
        Assert.NotEqual(Guid.Empty, newPaid);
        Assert.Equal("card.authentication_failed", await OperatorKit.CodeOf(refused));
        Assert.Equal(["01", "02"], list.MasterKeyVersions);
    }

    private static async Task<Guid> PurchaseAsync(OperatorKit kit, string bill, OperatorKit.CardReader? reader = null)
    {
        var started = await kit.StartOkAsync(bill, reader: reader);
        using var completed = await kit.CompleteAsync(started.SettlementId, kit.RunCard(started, bill, reader: reader));
        Assert.True(completed.IsSuccessStatusCode, await completed.Content.ReadAsStringAsync());
        return started.SettlementId;
    }

    // A purchase through one node's public listener: the settlement and its ACN (SIG3).
    private static async Task<(Guid SettlementId, string CompletionNotice)> PurchaseOnAsync(OperatorKit kit, HttpClient node, string bill)
    {
        var started = await StartOnAsync(kit, node, bill);
        var completed = await CompleteOnAsync(kit, node, started, bill);
        return (started.SettlementId, completed.CompletionNotice);
    }

    private static async Task<StartSettlementResponse> StartOnAsync(OperatorKit kit, HttpClient node, string bill)
    {
        using var response = await node.PostAsJsonAsync("/v1/settlements", new StartSettlementRequest(bill, SettlementProfile.Signed, kit.Greeting(bill)), ProtocolJson.Options);
        Assert.True(response.IsSuccessStatusCode, await response.Content.ReadAsStringAsync());
        return (await response.Content.ReadFromJsonAsync<StartSettlementResponse>(ProtocolJson.Options))!;
    }

    private static async Task<CompleteSettlementResponse> CompleteOnAsync(OperatorKit kit, HttpClient node, StartSettlementResponse started, string bill)
    {
        var answer = kit.RunCard(started, bill);
        using var response = await node.PostAsJsonAsync($"/v1/settlements/{started.SettlementId}/completion", new CompleteSettlementRequest(Convert.ToBase64String(answer.ToBytes())), ProtocolJson.Options);
        Assert.True(response.IsSuccessStatusCode, await response.Content.ReadAsStringAsync());
        return (await response.Content.ReadFromJsonAsync<CompleteSettlementResponse>(ProtocolJson.Options))!;
    }

    private static async Task<HttpResponseMessage> AdminPostAsync(HttpClient admin, string path, object? body, string token = OperatorKit.AdminToken)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, path) { Content = body is null ? null : JsonContent.Create(body) };
        request.Headers.Authorization = new("Bearer", token);
        return await admin.SendAsync(request);
    }

    private static async Task<T> AdminGetAsync<T>(HttpClient admin, string path)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, path);
        request.Headers.Authorization = new("Bearer", OperatorKit.AdminToken);
        using var response = await admin.SendAsync(request);
        Assert.True(response.IsSuccessStatusCode, await response.Content.ReadAsStringAsync());
        return (await response.Content.ReadFromJsonAsync<T>(ProtocolJson.Options))!;
    }
}

/// <summary>Key rotation on the embedded default registry, SQLite.</summary>
public sealed class KeyRotationOnSqliteTest : KeyRotationTest
{
    private protected override Task<PostgresDatabase?> CreateDatabaseAsync() => Task.FromResult<PostgresDatabase?>(null);
}

/// <summary>Key rotation on PostgreSQL: one private cluster for the class, a fresh database per test.</summary>
[UsesComponents(Components.PostgreSql)]
public sealed class KeyRotationOnPostgreSqlTest(SharedPostgresCluster postgres) : KeyRotationTest, IClassFixture<SharedPostgresCluster>
{
    private protected override async Task<PostgresDatabase?> CreateDatabaseAsync() => await postgres.CreateDatabaseAsync();
}
