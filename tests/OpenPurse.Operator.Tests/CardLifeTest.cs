using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Dapper;
using Microsoft.Extensions.Time.Testing;
using OpenPurse.Card;
using OpenPurse.Operator.Issuance;
using OpenPurse.Operator.Registry;
using OpenPurse.Protocol;
using OpenPurse.Protocol.Messages;
using OpenPurse.Testing;

namespace OpenPurse.Operator.Tests;

/// <summary>
/// A card's life at the operator: registered to its holder, found by the holder, lost, blocked and
/// replaced by a new card that takes the old one's value at its first sync, exactly once; late
/// news of the old card carried on, or kept from paying the holder twice; a holder erased. The
/// books reconcile after each step. Every test runs on each registry engine (the subclasses at the end).
/// </summary>
public abstract class CardLifeTest
{
    private const long Loaded = 1_000;

    private static readonly TimeSpan s_settlementTimeout = TimeSpan.FromMinutes(1);

    private static Money Eur(long minor) => new(minor, Currency.Eur);

    /// <summary>A new PostgreSQL database for one kit, or null for SQLite.</summary>
    private protected abstract Task<PostgresDatabase?> CreateDatabaseAsync();

    [SuiteFact]
    public async Task Registered_FoundByHolder_Replaced_NewCardTakesTheBalanceOnceAndPays_ReplacingTwiceMovesNothing()
    {
        await using var kit = await StartKitAsync();
        var old = kit.Card.CardId;
        using (var registered = await PostAsync(kit, $"v1/admin/cards/{old.Digits}/holder", new { name = "Ada Lovelace", contact = "Ada@Example.org" }))
        {
            Assert.Equal(HttpStatusCode.OK, registered.StatusCode);
        }

        var holder = Assert.Single(await FindAsync(kit, "lovelace", OperatorKit.AdminToken)).GetProperty("holder");
        Assert.Equal(("Ada Lovelace", "ada@example.org"), (holder.GetProperty("name").GetString(), holder.GetProperty("contact").GetString()));
        var holderId = holder.GetProperty("holderId").GetString()!;
        // An auditor finds the card by its holder too, and sees the holder's id only.
        var byAuditor = Assert.Single(await FindAsync(kit, "ADA@example.org", OperatorKit.AuditorToken)).GetProperty("holder");
        Assert.Equal((holderId, JsonValueKind.Null, JsonValueKind.Null), (byAuditor.GetProperty("holderId").GetString(), byAuditor.GetProperty("name").ValueKind, byAuditor.GetProperty("contact").ValueKind));
        Assert.Empty(await FindAsync(kit, "babbage", OperatorKit.AdminToken));

        await PayAsync(kit, 300, kit.Reader);
        var (outcome, newReader) = await ReplaceAsync(kit, old);
        Assert.Null(outcome.Code);
        Assert.Equal([Eur(700)], outcome.Carried);
        Assert.Empty(outcome.HeldBack);
        Assert.Equal(Guid.Parse(holderId), outcome.HolderId);
        await AssertCleanAsync(kit);

        // The old card: blocked, refused at once; the holder finds both cards, the new one registered to them.
        using (var refused = await kit.StartAsync(kit.Bill(Eur(100))))
        {
            Assert.Equal("card.blocked", await OperatorKit.CodeOf(refused));
        }

        // Issued in the same instant on the test's clock: the order of the two is by number.
        var cards = (await FindAsync(kit, "Lovelace", OperatorKit.AdminToken)).ToDictionary(c => c.GetProperty("masked").GetString()!);
        Assert.Equal(2, cards.Count);
        Assert.Equal(newReader.CardId.Masked, cards[old.Masked].GetProperty("replacedBy").GetString());
        Assert.Equal(old.Masked, cards[newReader.CardId.Masked].GetProperty("replaces").GetString());
        Assert.Equal("blocked", cards[old.Masked].GetProperty("state").GetString());
        Assert.All(cards.Values, c => Assert.Equal(holderId, c.GetProperty("holder").GetProperty("holderId").GetString()));

        // The new card takes the old one's value at its first sync, once, and pays with it.
        Assert.Equal([(ValueUpdatePurposes.Replacement, Eur(700))], await TakeAllAsync(kit, newReader));
        Assert.Equal(Eur(700), kit.Balance(newReader));
        await AssertCleanAsync(kit);
        await PayAsync(kit, 200, newReader);
        Assert.Equal(Eur(500), kit.Balance(newReader));
        Assert.Empty(await TakeAllAsync(kit, newReader));

        // Replacing the old card again is refused and moves nothing; so is unblocking it.
        var (again, none) = await ReplaceAsync(kit, old);
        Assert.Equal(ProblemCode.CardReplaced.Code, again.Code);
        Assert.Null(none as object);
        using (var unblock = await PostAsync(kit, $"v1/admin/cards/{old.Digits}/unblock", new { reason = "found it" }))
        {
            Assert.Equal(HttpStatusCode.Conflict, unblock.StatusCode);
            Assert.Equal("card.replaced", await OperatorKit.CodeOf(unblock));
        }

        Assert.Empty(await TakeAllAsync(kit, newReader));
        Assert.Equal(Eur(500), kit.Balance(newReader));
        Assert.Equal(0, await AccountAsync(kit, old));
        await AssertCleanAsync(kit);

        // The audit trail has the card masked and the holder by id, never the name or the contact.
        var rows = await kit.Service<AuditTrail>().ReadAsync(AuditTrail.ReadMax, CancellationToken.None);
        Assert.Contains(rows, r => r.Action == "card.register" && r.Target == $"{old.Masked} holder {holderId}" && r.Status == 200);
        Assert.Contains(rows, r => r.Action == "card.find" && r.Target == "holder");
        Assert.DoesNotContain(rows, r => $"{r.Target} {r.Reason}".Contains("Lovelace", StringComparison.OrdinalIgnoreCase) || $"{r.Target} {r.Reason}".Contains("example.org", StringComparison.Ordinal));
    }

    [SuiteFact]
    public async Task PurchaseAuthorizedBeforeTheBlock_RefusedAfterTheReplacement_StoreNotPaid_DebitCarriedToTheNewCardOnce()
    {
        await using var kit = await StartKitAsync();
        var old = kit.Card.CardId;
        var bill = kit.Bill(Eur(300));
        var started = await kit.StartOkAsync(bill);
        var answer = kit.RunCard(started, bill);

        // Blocked and replaced between the purchase's two round trips: what it may still take is held back.
        var (outcome, newReader) = await ReplaceAsync(kit, old);
        Assert.Equal([Eur(700)], outcome.Carried);
        Assert.Equal([Eur(300)], outcome.HeldBack);
        await AssertCleanAsync(kit);

        // The card ran the DEBIT, but its answer comes after the block: no settlement of a blocked card
        // completes. The store is not paid; the debit is owed back, and the new card takes it with the rest.
        using (var refused = await kit.CompleteAsync(started.SettlementId, answer))
        {
            Assert.Equal(HttpStatusCode.Forbidden, refused.StatusCode);
            Assert.Equal("card.blocked", await OperatorKit.CodeOf(refused));
        }

        Assert.Equal("reversing", await kit.StateOfAsync(started.SettlementId));
        var taken = await TakeAllAsync(kit, newReader);
        Assert.Equal([Eur(300), Eur(700)], taken.Select(t => t.Amount).OrderBy(m => m.MinorUnits));
        Assert.All(taken, t => Assert.Equal(ValueUpdatePurposes.Replacement, t.Purpose));
        Assert.Empty(await TakeAllAsync(kit, newReader));
        Assert.Equal(Eur(1_000), kit.Balance(newReader));
        Assert.Equal(0, await AccountAsync(kit, old));
        await AssertCleanAsync(kit);
    }

    [SuiteFact]
    public async Task PurchaseNeverRun_ExpiresAfterTheReplacement_OldCardsGreetingVoidsIt_CarriedOnce()
    {
        await using var kit = await StartKitAsync();
        var old = kit.Card.CardId;
        var started = await kit.StartOkAsync(kit.Bill(Eur(300)));
        var (outcome, newReader) = await ReplaceAsync(kit, old);
        Assert.Equal([Eur(700)], outcome.Carried);
        Assert.Equal([Eur(300)], outcome.HeldBack);

        // Expired: the store is not paid, and the held back 300 waits for word from the old card.
        await PassDeadlineAndSweepAsync(kit);
        Assert.Equal("expired", await kit.StateOfAsync(started.SettlementId));
        Assert.Equal([(ValueUpdatePurposes.Replacement, Eur(700))], await TakeAllAsync(kit, newReader));
        await AssertCleanAsync(kit);

        // The old card turns up and syncs (it is blocked: it gets nothing): its greeting proves it never ran the DEBIT.
        Assert.Null((await kit.SyncOkAsync()).Credit);
        Assert.Equal("voided", await kit.StateOfAsync(started.SettlementId));
        Assert.Equal([(ValueUpdatePurposes.Replacement, Eur(300))], await TakeAllAsync(kit, newReader));
        Assert.Null((await kit.SyncOkAsync()).Credit);
        Assert.Empty(await TakeAllAsync(kit, newReader));
        Assert.Equal(Eur(1_000), kit.Balance(newReader));
        await AssertCleanAsync(kit);
    }

    [SuiteFact]
    public async Task LateReversalOfTheOldCard_CarriedToTheNewCardExactlyOnce()
    {
        await using var kit = await StartKitAsync();
        var old = kit.Card.CardId;
        var bill = kit.Bill(Eur(300));
        var started = await kit.StartOkAsync(bill);
        kit.RunCard(started, bill); // the card paid; its answer never reaches the operator
        var (outcome, newReader) = await ReplaceAsync(kit, old);
        Assert.Equal([Eur(300)], outcome.HeldBack);
        await PassDeadlineAndSweepAsync(kit);

        // The old card's greeting proves the DEBIT ran for a purchase that expired: its amount is owed back to it,
        // and the new card takes it instead (the old one, blocked, takes no CREDIT).
        Assert.Null((await kit.SyncOkAsync()).Credit);
        Assert.Equal("reversing", await kit.StateOfAsync(started.SettlementId));
        var taken = await TakeAllAsync(kit, newReader);
        Assert.Equal([Eur(300), Eur(700)], taken.Select(t => t.Amount).OrderBy(m => m.MinorUnits));
        Assert.All(taken, t => Assert.Equal(ValueUpdatePurposes.Replacement, t.Purpose));
        await AssertCleanAsync(kit);

        // Exactly once: more syncs of either card carry nothing more.
        Assert.Null((await kit.SyncOkAsync()).Credit);
        Assert.Empty(await TakeAllAsync(kit, newReader));
        Assert.Equal(Eur(1_000), kit.Balance(newReader));
        await AssertCleanAsync(kit);
    }

    [SuiteFact]
    public async Task ValueOwedToTheOldCard_TakenByTheNewCard_Once_AnUnregisteredCardToo()
    {
        await using var kit = await StartKitAsync();
        var old = kit.Card.CardId;
        var source = Guid.NewGuid();
        await using (var write = await kit.Service<Database>().BeginWriteAsync(CancellationToken.None))
        {
            Assert.True(await Credits.CardCredits.OweAsync(write.Connection, write.Inner, old.Digits, Eur(50), ValueUpdatePurposes.Points, source, Account.Store("shop"), kit.Time.GetUtcNow()));
            await write.CommitAsync(CancellationToken.None);
        }

        var (outcome, newReader) = await ReplaceAsync(kit, old);
        Assert.Null(outcome.HolderId);
        Assert.Equal([Eur(1_050)], outcome.Carried);
        var taken = await TakeAllAsync(kit, newReader);
        Assert.Equal([(ValueUpdatePurposes.Points, Eur(50)), (ValueUpdatePurposes.Replacement, Eur(1_000))], taken.OrderBy(t => t.Amount.MinorUnits));
        Assert.Empty(await TakeAllAsync(kit, newReader));
        Assert.Equal(Eur(1_050), kit.Balance(newReader));
        await AssertCleanAsync(kit);
    }

    [SuiteFact]
    public async Task CarryWithoutItsCredit_ReconcileSaysSo()
    {
        await using var kit = await StartKitAsync();
        await ReplaceAsync(kit, kit.Card.CardId);
        kit.BooksTamperedWith();
        await using (var connection = await kit.Service<Database>().OpenAsync())
        {
            // The carry's card credit made out to another amount: not what was carried.
            Assert.Equal(1, await connection.ExecuteAsync("UPDATE card_credits SET amount_minor = amount_minor + 1 WHERE purpose = 'replacement'"));
        }

        var report = await kit.ReconcileAsync();
        Assert.Contains(report.Differences, d => d.Kind == LedgerDifference.ReplacementPostingMismatch);
    }

    [SuiteFact]
    public async Task HolderErased_NameAndContactGone_CardsAndLedgerStay_NotFoundByName()
    {
        await using var kit = await StartKitAsync();
        using (var registered = await PostAsync(kit, $"v1/admin/cards/{kit.Card.CardId.Digits}/holder", new { name = "Grace Hopper", contact = "+15550100200" }))
        {
            Assert.Equal(HttpStatusCode.OK, registered.StatusCode);
        }

        var second = await kit.IssueCardAsync(0);
        var holderId = Assert.Single(await FindAsync(kit, "+15550100200", OperatorKit.AdminToken)).GetProperty("holder").GetProperty("holderId").GetString()!;
        using (var linked = await PostAsync(kit, $"v1/admin/cards/{second.CardId.Digits}/holder", new { holderId }))
        {
            Assert.Equal(HttpStatusCode.OK, linked.StatusCode);
        }

        Assert.Equal(2, (await FindAsync(kit, "hopper", OperatorKit.AuditorToken)).Count);

        using (var erased = await PostAsync(kit, $"v1/admin/holders/{holderId}/erase", null))
        {
            Assert.Equal(HttpStatusCode.NoContent, erased.StatusCode);
        }

        Assert.Empty(await FindAsync(kit, "hopper", OperatorKit.AdminToken));
        Assert.Empty(await FindAsync(kit, "+15550100200", OperatorKit.AdminToken));
        await using (var connection = await kit.Service<Database>().OpenAsync())
        {
            var row = await connection.QuerySingleAsync<(string? Name, string? Folded, string? Contact, string? ErasedAt)>(
                "SELECT name, name_folded, contact, erased_at FROM card_holders WHERE holder_id = @holderId", new { holderId });
            Assert.Equal((null, null, null), (row.Name, row.Folded, row.Contact));
            Assert.NotNull(row.ErasedAt);
            Assert.Equal(2, await connection.ExecuteScalarAsync<long>("SELECT COUNT(*) FROM cards WHERE holder_id = @holderId", new { holderId }));
        }

        // The cards are found by their digits still, with their balance, their holder erased.
        var card = Assert.Single(await FindLastAsync(kit, kit.Card.CardId.Digits[^8..]));
        Assert.Equal(Loaded, card.GetProperty("balances")[0].GetProperty("minorUnits").GetInt64());
        Assert.NotEqual(JsonValueKind.Null, card.GetProperty("holder").GetProperty("erasedAt").ValueKind);
        // An erased holder takes no more cards; erasing again is no failure; an unknown holder is refused.
        using (var refused = await PostAsync(kit, $"v1/admin/cards/{second.CardId.Digits}/holder", new { holderId }))
        {
            Assert.Equal("card.holder_unknown", await OperatorKit.CodeOf(refused));
        }

        using (var again = await PostAsync(kit, $"v1/admin/holders/{holderId}/erase", null))
        {
            Assert.Equal(HttpStatusCode.NoContent, again.StatusCode);
        }

        using (var unknown = await PostAsync(kit, $"v1/admin/holders/{Guid.NewGuid()}/erase", null))
        {
            Assert.Equal(HttpStatusCode.NotFound, unknown.StatusCode);
            Assert.Equal("card.holder_unknown", await OperatorKit.CodeOf(unknown));
        }

        var rows = await kit.Service<AuditTrail>().ReadAsync(AuditTrail.ReadMax, CancellationToken.None);
        Assert.Contains(rows, r => r.Action == "holder.erase" && r.Target == "holder " + holderId && r.Status == 204);
        await AssertCleanAsync(kit);
    }

    [SuiteFact]
    public async Task Register_HostileHolder_RefusedInvalid_NothingKept()
    {
        await using var kit = await StartKitAsync();
        object[] bodies =
        [
            new { name = "Ada", contact = "" }, new { name = "", contact = "a@example.org" }, new { name = "Ada\nLovelace", contact = "a@example.org" },
            new { name = "Ada\u202Eecalevol", contact = "a@example.org" }, new { name = "Ada\u0000", contact = "a@example.org" }, new { name = new string('a', 101), contact = "a@example.org" },
            new { name = "Ada", contact = "a@example" }, new { name = "Ada", contact = "a@@example.org" }, new { name = "Ada", contact = "a@example.org\r\nBcc: b@example.org" },
            new { name = "Ada", contact = "+44 20 7946 0000" }, new { name = "Ada", contact = "0044207946000" }, new { name = "Ada", contact = "+12345" },
            new { name = "Ada", contact = "a@example.org", holderId = Guid.NewGuid().ToString() }, new { },
        ];
        foreach (var body in bodies)
        {
            using var refused = await PostAsync(kit, $"v1/admin/cards/{kit.Card.CardId.Digits}/holder", body);

            Assert.Equal(HttpStatusCode.BadRequest, refused.StatusCode);
            Assert.Equal("card.holder_invalid", await OperatorKit.CodeOf(refused));
        }

        using (var unknownCard = await PostAsync(kit, $"v1/admin/cards/{CardId.FromSerial(999_999_999_999_999).Digits}/holder", new { name = "Ada", contact = "a@example.org" }))
        {
            Assert.Equal("card.unknown", await OperatorKit.CodeOf(unknownCard));
        }

        foreach (var query in new[] { "?holder=ab", "?holder=a%0Ab", "?holder=%E2%80%AEabc", "?holder=abc&last=1234", "?holder=" + new string('a', 101) })
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, "v1/admin/cards" + query);
            request.Headers.Authorization = new("Bearer", OperatorKit.AuditorToken);
            using var response = await kit.Admin.SendAsync(request);

            Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
            Assert.Equal("card.query_invalid", await OperatorKit.CodeOf(response));
        }

        // LIKE's wildcards are searched for as themselves.
        Assert.Empty(await FindAsync(kit, "%%%", OperatorKit.AdminToken));
        Assert.Empty(await FindAsync(kit, "___", OperatorKit.AdminToken));
        await using var connection = await kit.Service<Database>().OpenAsync();
        Assert.Equal(0, await connection.ExecuteScalarAsync<long>("SELECT COUNT(*) FROM card_holders"));
    }

    [SuiteFact]
    public async Task Register_ByAuditor_Forbidden()
    {
        await using var kit = await StartKitAsync();
        using var request = new HttpRequestMessage(HttpMethod.Post, $"v1/admin/cards/{kit.Card.CardId.Digits}/holder") { Content = JsonContent.Create(new { name = "Ada", contact = "a@example.org" }) };
        request.Headers.Authorization = new("Bearer", OperatorKit.AuditorToken);

        using var response = await kit.Admin.SendAsync(request);

        Assert.Equal(HttpStatusCode.Forbidden, response.StatusCode);
    }

    [SuiteFact]
    public async Task BlockedInTheRegistry_RefusedAtOnce_NoCacheBetween()
    {
        // What a station command or another node does: one write to the registry, in its own
        // transaction. The node reads the status at each start, so the very next one is refused.
        await using var kit = await StartKitAsync();
        Assert.Equal(CardChange.Done, await CardStates.RunAsync(kit.Service<Database>(), kit.Card.CardId, CardStates.Block, kit.Time.GetUtcNow(), CancellationToken.None));
        using var refused = await kit.StartAsync(kit.Bill(Eur(100)));
        Assert.Equal("card.blocked", await OperatorKit.CodeOf(refused));
        // A blocked card still syncs (what it left open is resolved) but is given nothing.
        Assert.Null((await kit.SyncOkAsync()).Credit);
    }

    private async Task<OperatorKit> StartKitAsync() =>
        await OperatorKit.StartAsync(Loaded, postgres: await CreateDatabaseAsync(), settlementTimeout: s_settlementTimeout, sweepInterval: TimeSpan.Zero,
            time: new FakeTimeProvider(DateTimeOffset.UtcNow));

    private static async Task<(ReplacementOutcome Outcome, OperatorKit.CardReader Reader)> ReplaceAsync(OperatorKit kit, CardId old)
    {
        var path = Path.Combine(kit.Directory, $"replacement-{Guid.NewGuid():N}.card");
        var (outcome, _, newCard) = await kit.Service<CardReplacements>().ReplaceAsync(old, path, "lost on the train", CancellationToken.None);
        if (newCard is null)
        {
            Assert.False(File.Exists(path));
            return (outcome, null!);
        }

        return (outcome, kit.Adopt(EmulatedCard.Open(path)));
    }

    private static async Task PayAsync(OperatorKit kit, long minor, OperatorKit.CardReader reader)
    {
        var bill = kit.Bill(Eur(minor));
        var started = await kit.StartOkAsync(bill, reader: reader);
        using var completed = await kit.CompleteAsync(started.SettlementId, kit.RunCard(started, bill, reader: reader));
        Assert.True(completed.IsSuccessStatusCode, await completed.Content.ReadAsStringAsync());
    }

    // Syncs the card, running each CREDIT and reporting it, until it is owed nothing more: what it took.
    private static async Task<List<(string Purpose, Money Amount)>> TakeAllAsync(OperatorKit kit, OperatorKit.CardReader reader)
    {
        List<(string, Money)> taken = [];
        while ((await kit.SyncOkAsync(kit.SyncGreeting(reader))).Credit is { } credit)
        {
            var update = kit.ValueUpdateOf(credit);
            taken.Add((update.Purpose, update.Amount));
            var (authenticated, answer) = kit.TryRunCard(credit.ExternalAuthenticate, credit.Credit, kit.ApprovalOf(credit), reader);
            Assert.True(authenticated.IsOk && answer.IsOk);
            Assert.Equal("credited", (await kit.CompleteCreditOkAsync(credit.ValueUpdateId, answer)).State);
            Assert.True(taken.Count < 10, "The sync keeps making credits.");
        }

        return taken;
    }

    private static Task<(int Expired, int Told)> PassDeadlineAndSweepAsync(OperatorKit kit)
    {
        ((FakeTimeProvider)kit.Time).Advance(s_settlementTimeout + TimeSpan.FromSeconds(1));
        return kit.SweepAsync();
    }

    private static async Task AssertCleanAsync(OperatorKit kit)
    {
        var report = await kit.ReconcileAsync();
        Assert.True(report.IsClean, report.ToText());
    }

    private static async Task<long> AccountAsync(OperatorKit kit, CardId card)
    {
        await using var connection = await kit.Service<Database>().OpenAsync();
        return await connection.ExecuteScalarAsync<long>(
            "SELECT CAST(COALESCE(SUM(amount_minor), 0) AS BIGINT) FROM journal WHERE account = @account", new { account = "card:" + card.Digits });
    }

    private static async Task<List<JsonElement>> FindAsync(OperatorKit kit, string holder, string token) =>
        await FindByAsync(kit, "holder=" + Uri.EscapeDataString(holder), token);

    private static async Task<List<JsonElement>> FindLastAsync(OperatorKit kit, string last) => await FindByAsync(kit, "last=" + last, OperatorKit.AdminToken);

    private static async Task<List<JsonElement>> FindByAsync(OperatorKit kit, string query, string token)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, "v1/admin/cards?" + query);
        request.Headers.Authorization = new("Bearer", token);
        using var response = await kit.Admin.SendAsync(request);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var body = await response.Content.ReadFromJsonAsync<JsonElement>();
        return [.. body.GetProperty("cards").EnumerateArray()];
    }

    private static async Task<HttpResponseMessage> PostAsync(OperatorKit kit, string path, object? body)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, path) { Content = body is null ? null : JsonContent.Create(body) };
        request.Headers.Authorization = new("Bearer", OperatorKit.AdminToken);
        return await kit.Admin.SendAsync(request);
    }
}

/// <summary>A card's life on the embedded default registry, SQLite.</summary>
public sealed class CardLifeOnSqliteTest : CardLifeTest
{
    private protected override Task<PostgresDatabase?> CreateDatabaseAsync() => Task.FromResult<PostgresDatabase?>(null);
}

/// <summary>A card's life on PostgreSQL: one private cluster for the class, a fresh database per test.</summary>
[UsesComponents(Components.PostgreSql)]
public sealed class CardLifeOnPostgreSqlTest(SharedPostgresCluster postgres) : CardLifeTest, IClassFixture<SharedPostgresCluster>
{
    private protected override async Task<PostgresDatabase?> CreateDatabaseAsync() => await postgres.CreateDatabaseAsync();
}
