using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using OpenPurse.Operator.Registry;
using OpenPurse.Protocol;
using OpenPurse.Testing;

namespace OpenPurse.Operator.Tests;

/// <summary>
/// A lost card at the operator's desk over the admin API: found by its last digits, blocked,
/// refused at once, unblocked, paying again; every step in the audit trail with its reason. Every
/// test runs on each registry engine (the subclasses at the end of this file).
/// </summary>
public abstract class CardDeskTest
{
    private static Money Eur(long minor) => new(minor, Currency.Eur);

    /// <summary>An operator kit on this class's engine.</summary>
    private protected abstract Task<OperatorKit> StartKitAsync();

    [SuiteFact]
    public async Task TwoCards_EachFoundByItsLastDigits_MaskedWithStateDatesAndBalances_ReferenceForAdministratorsOnly()
    {
        await using var kit = await StartKitAsync();
        var second = await kit.IssueCardAsync(500);
        var first = kit.Card.CardId;

        foreach (var (card, balance) in new[] { (first, 1_000L), (second.CardId, 500L) })
        {
            var byAdministrator = Assert.Single(await FindAsync(kit, card.Digits[^8..], OperatorKit.AdminToken));
            var byAuditor = Assert.Single(await FindAsync(kit, card.Digits[^8..], OperatorKit.AuditorToken));

            Assert.Equal(card.Digits, byAdministrator.GetProperty("reference").GetString());
            Assert.Equal(JsonValueKind.Null, byAuditor.GetProperty("reference").ValueKind);
            Assert.Equal(card.Masked, byAuditor.GetProperty("masked").GetString());
            Assert.Equal("active", byAuditor.GetProperty("state").GetString());
            Assert.False(string.IsNullOrEmpty(byAuditor.GetProperty("issuedAt").GetString()));
            Assert.Equal(JsonValueKind.Null, byAuditor.GetProperty("blockedAt").ValueKind);
            var held = Assert.Single(byAuditor.GetProperty("balances").EnumerateArray());
            Assert.Equal((balance, "EUR"), (held.GetProperty("minorUnits").GetInt64(), held.GetProperty("currency").GetString()));
            Assert.Contains(await FindAsync(kit, card.Digits[^4..], OperatorKit.AuditorToken), c => c.GetProperty("masked").GetString() == card.Masked);
        }

        // Both by the digits their numbers end in alike, when they are enough for a search.
        var common = CommonSuffix(first.Digits, second.CardId.Digits);
        if (common.Length >= 4)
        {
            var both = await FindAsync(kit, common[^Math.Min(8, common.Length)..], OperatorKit.AuditorToken);
            Assert.Equal(2, both.Count);
        }

        // What is searched for and found stays off the audit trail: the search's last four only.
        var rows = await AuditAsync(kit);
        Assert.Contains(rows, r => r.Action == "card.find" && r.Target == "last •••• " + first.Digits[^4..] && r.Status == 200);
        Assert.DoesNotContain(rows, r => r.Target?.Contains(first.Digits[^8..], StringComparison.Ordinal) == true);
    }

    [SuiteFact]
    public async Task BlockedThroughTheApi_RefusedAtOnce_Unblocked_PaysAgain_BothInTheAuditTrailWithTheirReasons()
    {
        await using var kit = await StartKitAsync();
        var reference = Assert.Single(await FindAsync(kit, kit.Card.CardId.Digits[^8..], OperatorKit.AdminToken)).GetProperty("reference").GetString()!;

        using var blocked = await SendAsync(kit, $"v1/admin/cards/{reference}/block", new { reason = "holder reported it lost" });
        Assert.Equal(HttpStatusCode.NoContent, blocked.StatusCode);
        var found = Assert.Single(await FindAsync(kit, kit.Card.CardId.Digits[^8..], OperatorKit.AuditorToken));
        Assert.Equal("blocked", found.GetProperty("state").GetString());
        Assert.False(string.IsNullOrEmpty(found.GetProperty("blockedAt").GetString()));
        using (var refused = await kit.StartAsync(kit.Bill(Eur(100))))
        {
            Assert.Equal(HttpStatusCode.Forbidden, refused.StatusCode);
            Assert.Equal("card.blocked", await OperatorKit.CodeOf(refused));
        }

        using var unblocked = await SendAsync(kit, $"v1/admin/cards/{reference}/unblock", new { reason = "found in the holder's coat" });
        Assert.Equal(HttpStatusCode.NoContent, unblocked.StatusCode);
        found = Assert.Single(await FindAsync(kit, kit.Card.CardId.Digits[^8..], OperatorKit.AuditorToken));
        Assert.Equal(("active", JsonValueKind.Null), (found.GetProperty("state").GetString(), found.GetProperty("blockedAt").ValueKind));
        var bill = kit.Bill(Eur(300));
        var started = await kit.StartOkAsync(bill);
        using (var completed = await kit.CompleteAsync(started.SettlementId, kit.RunCard(started, bill)))
        {
            Assert.Equal(HttpStatusCode.OK, completed.StatusCode);
        }

        Assert.Equal(Eur(700), kit.Balance());
        var rows = await AuditAsync(kit);
        var changes = rows.Where(r => r.Action is "card.block" or "card.unblock").Select(r => (r.Action, r.Target, r.Status, r.Reason));
        Assert.Equal(
            [("card.unblock", kit.Card.CardId.Masked, 204L, "found in the holder's coat"), ("card.block", kit.Card.CardId.Masked, 204L, "holder reported it lost")],
            changes);
        Assert.DoesNotContain(rows, r => r.Target?.Contains(kit.Card.CardId.Digits, StringComparison.Ordinal) == true);
        Assert.True((await kit.ReconcileAsync()).IsClean);
    }

    [SuiteFact]
    public async Task Unblock_ActiveCard_RefusedNotBlocked_Audited_CardStaysActive()
    {
        await using var kit = await StartKitAsync();

        using var refused = await SendAsync(kit, $"v1/admin/cards/{kit.Card.CardId.Digits}/unblock", new { reason = "by mistake" });

        Assert.Equal(HttpStatusCode.Conflict, refused.StatusCode);
        Assert.Equal("card.not_blocked", await OperatorKit.CodeOf(refused));
        var row = (await AuditAsync(kit))[0];
        Assert.Equal(("card.unblock", kit.Card.CardId.Masked, 409L, "card.not_blocked", "by mistake"), (row.Action, row.Target, row.Status, row.Code, row.Reason));
        using var started = await kit.StartAsync(kit.Bill(Eur(100)));
        Assert.Equal(HttpStatusCode.Created, started.StatusCode);
    }

    [SuiteFact]
    public async Task Unblock_WithoutReason_RefusedMalformed_CardStaysBlocked()
    {
        await using var kit = await StartKitAsync();
        using var blocked = await SendAsync(kit, $"v1/admin/cards/{kit.Card.CardId.Digits}/block", body: null);
        Assert.Equal(HttpStatusCode.NoContent, blocked.StatusCode);

        foreach (var body in new object?[] { null, new { }, new { reason = "   " }, new { reason = "line\nbreak" }, new { reason = new string('x', 201) } })
        {
            using var refused = await SendAsync(kit, $"v1/admin/cards/{kit.Card.CardId.Digits}/unblock", body);

            Assert.Equal(HttpStatusCode.BadRequest, refused.StatusCode);
            Assert.Equal("request.malformed", await OperatorKit.CodeOf(refused));
        }

        Assert.Equal("blocked", Assert.Single(await FindAsync(kit, kit.Card.CardId.Digits[^8..], OperatorKit.AuditorToken)).GetProperty("state").GetString());
    }

    [SuiteFact]
    public async Task Unblock_ByAuditor_Forbidden()
    {
        await using var kit = await StartKitAsync();
        using var request = new HttpRequestMessage(HttpMethod.Post, $"v1/admin/cards/{kit.Card.CardId.Digits}/unblock") { Content = JsonContent.Create(new { reason = "mine" }) };
        request.Headers.Authorization = new("Bearer", OperatorKit.AuditorToken);

        using var response = await kit.Admin.SendAsync(request);

        Assert.Equal(HttpStatusCode.Forbidden, response.StatusCode);
        Assert.Equal("admin.forbidden", await OperatorKit.CodeOf(response));
    }

    [SuiteFact]
    public async Task Find_NotFourToEightDigits_RefusedQueryInvalid()
    {
        await using var kit = await StartKitAsync();

        foreach (var query in new[] { "", "?last=", "?last=123", "?last=123456789", "?last=12a4", "?last=%EF%BC%91234", "?last=1234&last=5678", "?last=-1234" })
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, "v1/admin/cards" + query);
            request.Headers.Authorization = new("Bearer", OperatorKit.AuditorToken);
            using var response = await kit.Admin.SendAsync(request);

            Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
            Assert.Equal("card.query_invalid", await OperatorKit.CodeOf(response));
        }
    }

    [SuiteFact]
    public async Task Find_NoCardEndsSo_EmptyNotMore()
    {
        await using var kit = await StartKitAsync();
        // Eight digits the kit's only card does not end in.
        var other = kit.Card.CardId.Digits[^8..] == "00000000" ? "11111111" : "00000000";

        using var request = new HttpRequestMessage(HttpMethod.Get, $"v1/admin/cards?last={other}");
        request.Headers.Authorization = new("Bearer", OperatorKit.AuditorToken);
        using var response = await kit.Admin.SendAsync(request);

        var body = await response.Content.ReadFromJsonAsync<JsonElement>();
        Assert.Empty(body.GetProperty("cards").EnumerateArray());
        Assert.False(body.GetProperty("more").GetBoolean());
    }

    private static string CommonSuffix(string a, string b)
    {
        var n = 0;
        while (n < a.Length && n < b.Length && a[^(n + 1)] == b[^(n + 1)])
        {
            n++;
        }

        return a[^n..];
    }

    [SuiteFact]
    public async Task BlockedBetweenThePurchasesRoundTrips_NotCompleted_StoreNotPaid_AmountBackToTheCardOnceUnblocked()
    {
        await using var kit = await StartKitAsync();
        var reference = kit.Card.CardId.Digits;
        var bill = kit.Bill(Eur(300));
        var started = await kit.StartOkAsync(bill);
        var answer = kit.RunCard(started, bill); // the card paid
        using (var blocked = await SendAsync(kit, $"v1/admin/cards/{reference}/block", new { reason = "stolen while paying" }))
        {
            Assert.Equal(HttpStatusCode.NoContent, blocked.StatusCode);
        }

        // The card's answer arrives after the block: no ACN, the store is not paid, the holder is owed the amount.
        using (var refused = await kit.CompleteAsync(started.SettlementId, answer))
        {
            Assert.Equal(HttpStatusCode.Forbidden, refused.StatusCode);
            Assert.Equal("card.blocked", await OperatorKit.CodeOf(refused));
        }

        var view = await kit.ViewAsync(started.SettlementId);
        Assert.Equal(("reversing", null), (view.State, view.CompletionNotice));
        // The card's account holds what the card holds; the 300 it ran are owed back to it (reversals).
        Assert.Equal(Eur(700), await kit.CardAccountAsync());
        Assert.Equal(Eur(700), kit.Balance());
        Assert.True((await kit.ReconcileAsync()).IsClean);

        // The same answer again changes nothing; a blocked card's sync is given no CREDIT.
        using (var again = await kit.CompleteAsync(started.SettlementId, answer))
        {
            Assert.False(again.IsSuccessStatusCode);
        }

        Assert.Null((await kit.SyncOkAsync()).Credit);

        // Unblocked (the card was found), its next sync takes the amount back, once.
        using (var unblocked = await SendAsync(kit, $"v1/admin/cards/{reference}/unblock", new { reason = "found; the theft was a mistake" }))
        {
            Assert.Equal(HttpStatusCode.NoContent, unblocked.StatusCode);
        }

        var credit = (await kit.SyncOkAsync()).Credit;
        Assert.NotNull(credit);
        await kit.CompleteCreditOkAsync(credit.ValueUpdateId, kit.RunCredit(credit));
        Assert.Equal("reversed", await kit.StateOfAsync(started.SettlementId));
        Assert.Null((await kit.SyncOkAsync()).Credit);
        Assert.Equal(Eur(1_000), kit.Balance());
        Assert.Equal(Eur(1_000), await kit.CardAccountAsync());
    }

    private static async Task<List<JsonElement>> FindAsync(OperatorKit kit, string last, string token)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, $"v1/admin/cards?last={last}");
        request.Headers.Authorization = new("Bearer", token);
        using var response = await kit.Admin.SendAsync(request);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var body = await response.Content.ReadFromJsonAsync<JsonElement>();
        Assert.False(body.GetProperty("more").GetBoolean());
        return [.. body.GetProperty("cards").EnumerateArray()];
    }

    private static async Task<HttpResponseMessage> SendAsync(OperatorKit kit, string path, object? body)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, path) { Content = body is null ? null : JsonContent.Create(body) };
        request.Headers.Authorization = new("Bearer", OperatorKit.AdminToken);
        return await kit.Admin.SendAsync(request);
    }

    private static Task<IReadOnlyList<AuditEvent>> AuditAsync(OperatorKit kit) => kit.Service<AuditTrail>().ReadAsync(AuditTrail.ReadMax, CancellationToken.None);
}

/// <summary>The card desk on the embedded default registry, SQLite.</summary>
public sealed class CardDeskOnSqliteTest : CardDeskTest
{
    private protected override Task<OperatorKit> StartKitAsync() => OperatorKit.StartAsync(loadMinor: 1_000);
}

/// <summary>The card desk on PostgreSQL: one private cluster for the class, a fresh database per test.</summary>
[UsesComponents(Components.PostgreSql)]
public sealed class CardDeskOnPostgreSqlTest(SharedPostgresCluster postgres) : CardDeskTest, IClassFixture<SharedPostgresCluster>
{
    private protected override async Task<OperatorKit> StartKitAsync() =>
        await OperatorKit.StartAsync(loadMinor: 1_000, postgres: await postgres.CreateDatabaseAsync());
}
