using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Dapper;
using Microsoft.Extensions.Time.Testing;
using OpenPurse.Operator.Clearing;
using OpenPurse.Operator.Registry;
using OpenPurse.Protocol;
using OpenPurse.Protocol.Jose;
using OpenPurse.Protocol.Messages;
using OpenPurse.Testing;

namespace OpenPurse.Operator.Tests;

/// <summary>
/// Clearing over the admin API, on a real operator whose clock is a <see cref="FakeTimeProvider"/>:
/// purchases at two stores (one a mall's member) and a refund, fees, a clearing run with exact
/// totals, the same run asked again, a late sale cleared by the next run, an earlier end refused,
/// runs at once clearing once, payouts marked paid once, the CSVs' exact lines, and the books
/// reconciled after each step. Every test runs on each registry engine (the subclasses at the end of this file).
/// </summary>
public abstract class ClearingTest
{
    private const string Iban = "DE89370400440532013000";

    /// <summary>Monday 2 March 2026, 09:00 UTC: the day the purchases are made.</summary>
    private static readonly DateTimeOffset s_day1 = new(2026, 3, 2, 9, 0, 0, TimeSpan.Zero);

    private static Money Eur(long minor) => new(minor, Currency.Eur);

    /// <summary>A new PostgreSQL database for one kit, or null for SQLite.</summary>
    private protected abstract Task<PostgresDatabase?> CreateDatabaseAsync();

    [SuiteFact]
    public async Task Run_ExactTotalsPerStore_SameEndIsTheSameRun_LateSaleNextRun_EarlierEndRefused_PaidOnce_BooksReconcileEachStep()
    {
        await using var kit = await StartKitAsync();
        using var boutiqueKey = EcdsaSigningKey.Generate();
        await kit.RegisterStoreAsync("boutique", boutiqueKey, mallId: "mall");
        await OkAsync(await PostAsync(kit, "v1/admin/clearing/stores/shop/fee", new { basisPoints = 250, fixedMinor = 10 }));
        await OkAsync(await PostAsync(kit, "v1/admin/clearing/stores/boutique/fee", new { basisPoints = 125 }));

        // Day 1: two sales at shop, one at the mall's boutique, a refund of part of the first.
        // A minute apart, so that the statements' order (by time) is the order they happened in.
        var first = await PurchaseAsync(kit, kit.Bill(Eur(2_500), "shop-A"));
        Advance(kit, TimeSpan.FromMinutes(1));
        var second = await PurchaseAsync(kit, kit.Bill(Eur(1_020), "shop-B"));
        Advance(kit, TimeSpan.FromMinutes(1));
        await PurchaseAsync(kit, MallBill(kit, boutiqueKey, Eur(4_000), "mall-C"));
        Advance(kit, TimeSpan.FromMinutes(1));
        var refund = await RefundAsync(kit, first, Eur(1_000));
        await AssertCleanAsync(kit);

        // Day 2: a sale after the end of the run that follows.
        Advance(kit, TimeSpan.FromDays(1));
        var late = await PurchaseAsync(kit, kit.Bill(Eur(500), "shop-D"));

        var run = await RunOkAsync(kit, "2026-03-03");

        // shop: 25.00 × 2.5 % = 0.625 → 0.63 (half up) + 0.10; 10.20 × 2.5 % = 0.255 → 0.26 + 0.10; boutique: 40.00 × 1.25 % = 0.50.
        Assert.Equal("2026-03-03", run.GetProperty("to").GetString());
        Assert.Equal(
            [("boutique", "EUR", 4_000L, 0L, 50L, 3_950L, 1L, 0L, "due"), ("shop", "EUR", 3_520L, 1_000L, 109L, 2_411L, 2L, 1L, "due")],
            Payouts(run));
        var totals = Assert.Single(run.GetProperty("totals").EnumerateArray());
        Assert.Equal(("EUR", 7_520L, 1_000L, 159L, 6_361L), (totals.GetProperty("currency").GetString(), totals.GetProperty("sales").GetInt64(), totals.GetProperty("refunds").GetInt64(),
            totals.GetProperty("fees").GetInt64(), totals.GetProperty("owed").GetInt64()));
        var books = await AssertCleanAsync(kit);
        Assert.Equal((159L, 6_361L, 500L), (books.Fees, books.StorePayouts, books.Stores));

        // The same end again: the same run, the same totals, not one journal line more.
        var lines = await JournalLinesAsync(kit);
        var again = await RunOkAsync(kit, "2026-03-03");
        Assert.Equal(run.GetRawText(), again.GetRawText());
        Assert.Equal(lines, await JournalLinesAsync(kit));

        // An earlier end is refused; an end in the future too.
        await AssertRefusedAsync(await PostAsync(kit, "v1/admin/clearing/runs", new { to = "2026-03-02" }), HttpStatusCode.Conflict, "clearing.run_earlier");
        await AssertRefusedAsync(await PostAsync(kit, "v1/admin/clearing/runs", new { to = "2026-03-04" }), HttpStatusCode.BadRequest, "clearing.period_invalid");
        Assert.Equal(lines, await JournalLinesAsync(kit));

        // shop's statement over both days: the cleared lines with their run, the late sale not cleared yet.
        var runId = run.GetProperty("runId").GetString()!;
        var statement = await GetOkAsync(kit, "v1/admin/clearing/statements/shop?from=2026-03-02&to=2026-03-04");
        Assert.Equal(
            [("sale", first.ToString(), "shop-A", 2_500L, 73L, runId), ("sale", second.ToString(), "shop-B", 1_020L, 36L, runId), ("refund", refund.ToString(), "shop-A", 1_000L, 0L, runId),
                ("sale", late.ToString(), "shop-D", 500L, 23L, null)],
            statement.GetProperty("lines").EnumerateArray().Select(l => (l.GetProperty("kind").GetString(), l.GetProperty("id").GetString(), l.GetProperty("orderNo").GetString(),
                l.GetProperty("amountMinor").GetInt64(), l.GetProperty("feeMinor").GetInt64(), l.GetProperty("runId").GetString())));
        var owed = Assert.Single(statement.GetProperty("totals").EnumerateArray());
        Assert.Equal((4_020L, 1_000L, 132L, 2_888L), (owed.GetProperty("sales").GetInt64(), owed.GetProperty("refunds").GetInt64(), owed.GetProperty("fees").GetInt64(), owed.GetProperty("owed").GetInt64()));
        // The mall's member is its own statement, and names its mall.
        var member = await GetOkAsync(kit, "v1/admin/clearing/statements/boutique?from=2026-03-02&to=2026-03-03");
        Assert.Equal(("mall", 3_950L), (member.GetProperty("mallId").GetString(), Assert.Single(member.GetProperty("totals").EnumerateArray()).GetProperty("owed").GetInt64()));

        // The CSV, line by line: times as stored, amounts in units.
        var csv = await GetTextAsync(kit, "v1/admin/clearing/statements/shop?from=2026-03-02&to=2026-03-03&format=csv");
        var at = await CompletedAtAsync(kit, first, second, refund);
        Assert.Equal(
            [
                "store,kind,id,order_no,time,amount,fee,currency,run",
                $"\"shop\",sale,{first},\"shop-A\",{at[0]},25.00,0.73,EUR,{runId}",
                $"\"shop\",sale,{second},\"shop-B\",{at[1]},10.20,0.36,EUR,{runId}",
                $"\"shop\",refund,{refund},\"shop-A\",{at[2]},10.00,0.00,EUR,{runId}",
                "\"shop\",sales,,,,35.20,,EUR,",
                "\"shop\",refunds,,,,10.00,,EUR,",
                "\"shop\",fees,,,,,1.09,EUR,",
                "\"shop\",owed,,,,24.11,,EUR,",
            ],
            csv.TrimEnd('\n').Split('\n'));

        // Payouts: shop's bank account set (its holder's name starts like a formula); boutique has none yet.
        var bank = await OkAsync(await PostAsync(kit, "v1/admin/clearing/stores/shop/bank", new { iban = "DE89 3704 0044 0532 0130 00", holder = "=Shop GmbH" }));
        Assert.Equal(("DE…3000", "=Shop GmbH"), (bank.GetProperty("iban").GetString(), bank.GetProperty("accountHolder").GetString()));
        var due = (await GetOkAsync(kit, "v1/admin/clearing/payouts")).EnumerateArray().ToList();
        Assert.Equal([("boutique", 3_950L, null), ("shop", 2_411L, "DE…3000")],
            due.Select(p => (p.GetProperty("storeId").GetString(), p.GetProperty("amountMinor").GetInt64(), p.GetProperty("iban").GetString())).OrderBy(p => p.Item1, StringComparer.Ordinal));
        var export = await PostTextAsync(kit, "v1/admin/clearing/payouts/export");
        var dueSince = due.Single(p => p.GetProperty("storeId").GetString() == "shop").GetProperty("dueSince").GetString();
        Assert.Equal(["run_id,store_id,iban,account_holder,amount,currency,due_since", $"{runId},\"shop\",{Iban},\"'=Shop GmbH\",24.11,EUR,{dueSince}"], export.TrimEnd('\n').Split('\n'));

        // Paid once: the second time it is not due; another run or store has none.
        var paid = await OkAsync(await PostAsync(kit, $"v1/admin/clearing/runs/{runId}/stores/shop/paid", null));
        Assert.Equal("paid", Assert.Single(paid.EnumerateArray()).GetProperty("state").GetString());
        await AssertRefusedAsync(await PostAsync(kit, $"v1/admin/clearing/runs/{runId}/stores/shop/paid", null), HttpStatusCode.Conflict, "clearing.payout_not_due");
        await AssertRefusedAsync(await PostAsync(kit, $"v1/admin/clearing/runs/{Guid.NewGuid()}/stores/shop/paid", null), HttpStatusCode.NotFound, "clearing.payout_not_found");
        await AssertRefusedAsync(await PostAsync(kit, $"v1/admin/clearing/runs/{runId}/stores/nobody/paid", null), HttpStatusCode.NotFound, "clearing.payout_not_found");
        books = await AssertCleanAsync(kit);
        Assert.Equal((159L, 3_950L), (books.Fees, books.StorePayouts));

        // Day 3: the next run clears the late sale, and only it.
        Advance(kit, TimeSpan.FromDays(1));
        var next = await RunOkAsync(kit, "2026-03-04");
        Assert.NotEqual(runId, next.GetProperty("runId").GetString());
        Assert.Equal([("shop", "EUR", 500L, 0L, 23L, 477L, 1L, 0L, "due")], Payouts(next));
        books = await AssertCleanAsync(kit);
        Assert.Equal((182L, 4_427L, 0L), (books.Fees, books.StorePayouts, books.Stores));

        // The summary of both days: each store its own line; the store payouts paid and due.
        var summary = await GetOkAsync(kit, "v1/admin/clearing/summary?from=2026-03-02&to=2026-03-05");
        Assert.Equal([("boutique", "mall", 3_950L), ("shop", null, 2_888L)],
            summary.GetProperty("stores").EnumerateArray().Select(s => (s.GetProperty("storeId").GetString(), s.GetProperty("mallId").GetString(), Assert.Single(s.GetProperty("totals").EnumerateArray()).GetProperty("owed").GetInt64())));
        var storePayouts = Assert.Single(summary.GetProperty("storePayouts").EnumerateArray());
        Assert.Equal((1L, 2_411L, 2L, 4_427L), (storePayouts.GetProperty("paidCount").GetInt64(), storePayouts.GetProperty("paidMinor").GetInt64(),
            storePayouts.GetProperty("dueCount").GetInt64(), storePayouts.GetProperty("dueMinor").GetInt64()));
        Assert.Empty(summary.GetProperty("cashOuts").EnumerateArray());

        // Every clearing action is in the audit trail.
        var audited = (await kit.Service<AuditTrail>().ReadAsync(AuditTrail.ReadMax, CancellationToken.None)).Select(a => (a.Action, a.Status)).ToList();
        Assert.Contains(("clearing.run", 200L), audited);
        Assert.Contains(("clearing.run", 409L), audited);
        Assert.Contains(("clearing.payout.paid", 200L), audited);
        Assert.Contains(("clearing.payout.export", 200L), audited);
        Assert.Contains(("clearing.statement", 200L), audited);
    }

    [SuiteFact]
    public async Task RefundsAboveSales_PayoutOwedByTheStore_CollectedOnce_BooksReconcile()
    {
        await using var kit = await StartKitAsync();
        var sale = await PurchaseAsync(kit, kit.Bill(Eur(2_500), "shop-A"));
        Advance(kit, TimeSpan.FromDays(1));
        var first = await RunOkAsync(kit, "2026-03-03");
        Assert.Equal([("shop", "EUR", 2_500L, 0L, 0L, 2_500L, 1L, 0L, "due")], Payouts(first));

        // The next day the store refunds a sale the first run cleared: the next run owes the operator.
        await RefundAsync(kit, sale, Eur(1_000));
        Advance(kit, TimeSpan.FromDays(1));
        var second = await RunOkAsync(kit, "2026-03-04");
        Assert.Equal([("shop", "EUR", 0L, 1_000L, 0L, -1_000L, 0L, 1L, "due")], Payouts(second));
        var books = await AssertCleanAsync(kit);
        Assert.Equal((1_500L, 0L), (books.StorePayouts, books.Stores));
        // Owed by the store: not in the bank's export of payments to make; the first run's payout is.
        await OkAsync(await PostAsync(kit, "v1/admin/clearing/stores/shop/bank", new { iban = Iban, holder = "Shop" }));
        Assert.Equal(2, (await PostTextAsync(kit, "v1/admin/clearing/payouts/export")).TrimEnd('\n').Split('\n').Length);

        await OkAsync(await PostAsync(kit, $"v1/admin/clearing/runs/{second.GetProperty("runId").GetString()}/stores/shop/paid", null));
        await AssertRefusedAsync(await PostAsync(kit, $"v1/admin/clearing/runs/{second.GetProperty("runId").GetString()}/stores/shop/paid", null), HttpStatusCode.Conflict, "clearing.payout_not_due");
        books = await AssertCleanAsync(kit);
        Assert.Equal(2_500L, books.StorePayouts);
    }

    [SuiteFact]
    public async Task RunsAtOnce_OnTwoNodes_SameEnd_OneRun_EachSaleClearedOnce()
    {
        var postgres = await CreateDatabaseAsync();
        await using var kit = await OperatorKit.StartAsync(10_000, postgres: postgres, sweepInterval: TimeSpan.Zero, time: new FakeTimeProvider(s_day1));
        // A second node: its own connections (and, on SQLite, its own writer) on the same registry.
        var secondNode = new ClearingService(
            postgres is null
                ? new Database(SqlDialect.Sqlite, new Microsoft.Data.Sqlite.SqliteConnectionStringBuilder { DataSource = Path.Combine(kit.Directory, "operator", "operator.db") }.ToString())
                : new Database(SqlDialect.PostgreSql, postgres.ConnectionString),
            kit.Time, Microsoft.Extensions.Logging.Abstractions.NullLogger<ClearingService>.Instance);
        await OkAsync(await PostAsync(kit, "v1/admin/clearing/stores/shop/fee", new { basisPoints = 100, fixedMinor = 5 }));
        foreach (var (amount, order) in new[] { (1_000L, "shop-1"), (2_000L, "shop-2"), (3_000L, "shop-3") })
        {
            await PurchaseAsync(kit, kit.Bill(Eur(amount), order));
        }

        Advance(kit, TimeSpan.FromDays(1));
        var before = await JournalLinesAsync(kit);

        var onSecond = Enumerable.Range(0, 2).Select(_ => Task.Run(() => secondNode.RunAsync("2026-03-03", CancellationToken.None))).ToList();
        var answers = await Task.WhenAll(Enumerable.Range(0, 3).Select(_ => PostAsync(kit, "v1/admin/clearing/runs", new { to = "2026-03-03" })));
        var runs = new List<JsonElement>();
        foreach (var answer in answers)
        {
            runs.Add(await OkAsync(answer));
        }

        foreach (var run in await Task.WhenAll(onSecond))
        {
            Assert.Null(run.Refusal);
            runs.Add(JsonSerializer.SerializeToElement(run.Value, ProtocolJson.Options));
        }

        Assert.Equal(5, runs.Count);
        Assert.Single(runs.Select(r => r.GetProperty("runId").GetString()).Distinct());
        // 1 % + 0.05 of each: 0.15, 0.25, 0.35.
        Assert.All(runs, r => Assert.Equal([("shop", "EUR", 6_000L, 0L, 75L, 5_925L, 3L, 0L, "due")], Payouts(r)));
        // Cleared once: one fee entry and one payout entry, two lines each.
        Assert.Equal(before + 4, await JournalLinesAsync(kit));
        await using var connection = await kit.Service<Database>().OpenAsync();
        Assert.Equal(3, await connection.ExecuteScalarAsync<long>("SELECT COUNT(*) FROM cleared_items"));
        await AssertCleanAsync(kit);
    }

    [SuiteFact]
    public async Task HostileInput_Dates_StoreIds_Fees_Ibans_Roles_AreRefusedWithStableCodes_NothingWritten()
    {
        await using var kit = await StartKitAsync();
        await PurchaseAsync(kit, kit.Bill(Eur(1_000), "shop-1"));
        Advance(kit, TimeSpan.FromDays(1));

        foreach (var query in new[]
        {
            "", "?from=2026-03-02", "?to=2026-03-03", "?from=2026-3-02&to=2026-03-03", "?from=2026-02-30&to=2026-03-03", "?from=2026-13-01&to=2026-03-03",
            "?from=20260302&to=2026-03-03", "?from=2026-03-03&to=2026-03-03", "?from=2026-03-04&to=2026-03-03", "?from=2025-01-01&to=2026-03-03",
            "?from=%EF%BC%92026-03-02&to=2026-03-03", "?from=2026-03-02T00:00&to=2026-03-03", "?from=1999-12-31&to=2000-01-02",
            "?from=+2026-03-02&to=2026-03-03",
        })
        {
            foreach (var path in new[] { "v1/admin/clearing/summary", "v1/admin/clearing/statements/shop" })
            {
                await AssertRefusedAsync(await GetAsync(kit, path + query), HttpStatusCode.BadRequest, "clearing.period_invalid");
            }
        }

        foreach (var to in new[] { "", "tomorrow", "2026-03-04", "9999-12-31", "2026-03-03 ", "2026/03/03" })
        {
            await AssertRefusedAsync(await PostAsync(kit, "v1/admin/clearing/runs", new { to }), HttpStatusCode.BadRequest, "clearing.period_invalid");
        }

        // A body without its end does not fit the contract.
        await AssertRefusedAsync(await PostAsync(kit, "v1/admin/clearing/runs", new { }), HttpStatusCode.BadRequest, "request.malformed");
        await AssertRefusedAsync(await GetAsync(kit, "v1/admin/clearing/statements/shop?from=2026-03-02&to=2026-03-03&format=xml"), HttpStatusCode.BadRequest, "request.malformed");
        foreach (var store in new[] { "nobody", "shop%20", "sh%27op", "sh.op", new string('s', 65) })
        {
            await AssertRefusedAsync(await GetAsync(kit, $"v1/admin/clearing/statements/{store}?from=2026-03-02&to=2026-03-03"), HttpStatusCode.NotFound, "store.not_found");
            await AssertRefusedAsync(await PostAsync(kit, $"v1/admin/clearing/stores/{store}/fee", new { basisPoints = 1 }), HttpStatusCode.NotFound, "store.not_found");
        }

        foreach (var fee in new object[] { new { basisPoints = -1 }, new { basisPoints = 10_001 }, new { basisPoints = 0, fixedMinor = -1 }, new { basisPoints = 0, fixedMinor = ClearingService.FixedFeeMax + 1 }, new { basisPoints = long.MinValue } })
        {
            await AssertRefusedAsync(await PostAsync(kit, "v1/admin/clearing/stores/shop/fee", fee), HttpStatusCode.UnprocessableEntity, "clearing.fee_invalid");
        }

        await AssertRefusedAsync(await PostAsync(kit, "v1/admin/clearing/stores/shop/fee", new { basisPoints = 1.5 }), HttpStatusCode.BadRequest, "request.malformed");
        foreach (var iban in new[] { "DE89370400440532013001", "DE8937040044053201300", "XX89370400440532013000", "", "DE89 3704 0044 0532 0130 00 00", "=HYPERLINK(1)" })
        {
            await AssertRefusedAsync(await PostAsync(kit, "v1/admin/clearing/stores/shop/bank", new { iban, holder = "Shop" }), HttpStatusCode.UnprocessableEntity, "iban.invalid");
        }

        foreach (var holder in new[] { "", "  ", "line\nbreak", new string('h', 71) })
        {
            await AssertRefusedAsync(await PostAsync(kit, "v1/admin/clearing/stores/shop/bank", new { iban = Iban, holder }), HttpStatusCode.UnprocessableEntity, "clearing.holder_invalid");
        }

        // Auditors read statements and payouts; only administrators change or run anything.
        using (var forbidden = await SendAsync(kit, HttpMethod.Post, "v1/admin/clearing/runs", new { to = "2026-03-03" }, OperatorKit.AuditorToken))
        {
            await AssertRefusedAsync(forbidden, HttpStatusCode.Forbidden, "admin.forbidden");
        }

        using (var read = await SendAsync(kit, HttpMethod.Get, "v1/admin/clearing/summary?from=2026-03-02&to=2026-03-03", null, OperatorKit.AuditorToken))
        {
            Assert.Equal(HttpStatusCode.OK, read.StatusCode);
        }

        // Nothing was written: no run, no terms.
        await using var connection = await kit.Service<Database>().OpenAsync();
        Assert.Equal(0, await connection.ExecuteScalarAsync<long>("SELECT COUNT(*) FROM clearing_runs"));
        Assert.Equal(0, await connection.ExecuteScalarAsync<long>("SELECT COUNT(*) FROM store_clearing"));
    }

    private async Task<OperatorKit> StartKitAsync() =>
        await OperatorKit.StartAsync(10_000, postgres: await CreateDatabaseAsync(), sweepInterval: TimeSpan.Zero, time: new FakeTimeProvider(s_day1));

    private static void Advance(OperatorKit kit, TimeSpan by) => ((FakeTimeProvider)kit.Time).Advance(by);

    private static string MallBill(OperatorKit kit, EcdsaSigningKey key, Money amount, string orderNo)
    {
        var now = kit.Time.GetUtcNow();
        return SignedMessage.Sign(key, new Bill(orderNo, "boutique", "mall", amount, [new BillItem("scarf-1", "A scarf", 1, amount)], now, now.AddMinutes(15)), MessageTypes.Bill);
    }

    private static async Task<Guid> PurchaseAsync(OperatorKit kit, string bill)
    {
        var started = await kit.StartOkAsync(bill);
        using var completed = await kit.CompleteAsync(started.SettlementId, kit.RunCard(started, bill));
        Assert.Equal(HttpStatusCode.OK, completed.StatusCode);
        return started.SettlementId;
    }

    private static async Task<Guid> RefundAsync(OperatorKit kit, Guid settlementId, Money amount)
    {
        var request = new RefundRequest(Guid.CreateVersion7(), settlementId, "shop", amount, null, kit.Time.GetUtcNow());
        using var response = await kit.Http.PostAsJsonAsync("/v1/refunds", new RefundSubmission(SignedMessage.Sign(kit.StoreKey, request, MessageTypes.RefundRequest)), ProtocolJson.Options);
        Assert.True(response.StatusCode == HttpStatusCode.OK, await response.Content.ReadAsStringAsync());
        return request.RefundId;
    }

    private static async Task<LedgerCurrencyTotals> AssertCleanAsync(OperatorKit kit)
    {
        var report = await kit.ReconcileAsync();
        Assert.True(report.IsClean, report.ToText());
        return Assert.Single(report.Currencies);
    }

    private static async Task<long> JournalLinesAsync(OperatorKit kit)
    {
        await using var connection = await kit.Service<Database>().OpenAsync();
        return await connection.ExecuteScalarAsync<long>("SELECT COUNT(*) FROM journal");
    }

    private static async Task<string[]> CompletedAtAsync(OperatorKit kit, Guid first, Guid second, Guid refund)
    {
        await using var connection = await kit.Service<Database>().OpenAsync();
        return
        [
            await connection.ExecuteScalarAsync<string>("SELECT completed_at FROM settlements WHERE settlement_id = @id", new { id = first.ToString() }) ?? "",
            await connection.ExecuteScalarAsync<string>("SELECT completed_at FROM settlements WHERE settlement_id = @id", new { id = second.ToString() }) ?? "",
            await connection.ExecuteScalarAsync<string>("SELECT created_at FROM refunds WHERE refund_id = @id", new { id = refund.ToString() }) ?? "",
        ];
    }

    private static List<(string?, string?, long, long, long, long, long, long, string?)> Payouts(JsonElement run) =>
        [.. run.GetProperty("payouts").EnumerateArray().Select(p => (p.GetProperty("storeId").GetString(), p.GetProperty("currency").GetString(), p.GetProperty("sales").GetInt64(),
            p.GetProperty("refunds").GetInt64(), p.GetProperty("fee").GetInt64(), p.GetProperty("net").GetInt64(), p.GetProperty("salesCount").GetInt64(),
            p.GetProperty("refundsCount").GetInt64(), p.GetProperty("state").GetString()))];

    private static async Task<JsonElement> RunOkAsync(OperatorKit kit, string to) => await OkAsync(await PostAsync(kit, "v1/admin/clearing/runs", new { to }));

    private static async Task<JsonElement> OkAsync(HttpResponseMessage response)
    {
        using (response)
        {
            Assert.True(response.StatusCode == HttpStatusCode.OK, await response.Content.ReadAsStringAsync());
            return await response.Content.ReadFromJsonAsync<JsonElement>();
        }
    }

    private static async Task AssertRefusedAsync(HttpResponseMessage response, HttpStatusCode status, string code)
    {
        using (response)
        {
            Assert.Equal((status, code), (response.StatusCode, await OperatorKit.CodeOf(response)));
        }
    }

    private static Task<HttpResponseMessage> PostAsync(OperatorKit kit, string path, object? body) => SendAsync(kit, HttpMethod.Post, path, body, OperatorKit.AdminToken);

    private static Task<HttpResponseMessage> GetAsync(OperatorKit kit, string path) => SendAsync(kit, HttpMethod.Get, path, null, OperatorKit.AuditorToken);

    private static async Task<JsonElement> GetOkAsync(OperatorKit kit, string path) => await OkAsync(await GetAsync(kit, path));

    private static async Task<string> GetTextAsync(OperatorKit kit, string path)
    {
        using var response = await GetAsync(kit, path);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("text/csv", response.Content.Headers.ContentType?.MediaType);
        return await response.Content.ReadAsStringAsync();
    }

    private static async Task<string> PostTextAsync(OperatorKit kit, string path)
    {
        using var response = await PostAsync(kit, path, null);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        return await response.Content.ReadAsStringAsync();
    }

    private static async Task<HttpResponseMessage> SendAsync(OperatorKit kit, HttpMethod method, string path, object? body, string token)
    {
        using var request = new HttpRequestMessage(method, path) { Content = body is null ? null : JsonContent.Create(body) };
        request.Headers.Authorization = new("Bearer", token);
        return await kit.Admin.SendAsync(request);
    }
}

/// <summary>Clearing on the embedded default registry, SQLite.</summary>
public sealed class ClearingOnSqliteTest : ClearingTest
{
    private protected override Task<PostgresDatabase?> CreateDatabaseAsync() => Task.FromResult<PostgresDatabase?>(null);
}

/// <summary>Clearing on PostgreSQL: one private cluster for the class, a fresh database per test.</summary>
[UsesComponents(Components.PostgreSql)]
public sealed class ClearingOnPostgreSqlTest(SharedPostgresCluster postgres) : ClearingTest, IClassFixture<SharedPostgresCluster>
{
    private protected override async Task<PostgresDatabase?> CreateDatabaseAsync() => await postgres.CreateDatabaseAsync();
}

/// <summary>The operator's fee on a sale: half up to a minor unit, the fixed part added, never more than the sale.</summary>
public sealed class ClearingFeeTest
{
    [Theory]
    [InlineData(2_500, 250, 10, 73)]      // 62.5 → 63, + 10
    [InlineData(1_020, 250, 0, 26)]       // 25.5 → 26: a half goes up
    [InlineData(1_010, 250, 0, 25)]       // 25.25 → 25
    [InlineData(1, 4_999, 0, 0)]          // 0.4999 → 0
    [InlineData(1, 5_000, 0, 1)]          // 0.5 → 1
    [InlineData(100, 0, 30, 30)]
    [InlineData(20, 0, 30, 20)]           // never more than the sale
    [InlineData(100, 10_000, 5, 100)]
    [InlineData(0, 250, 10, 0)]
    [InlineData(long.MaxValue, 10_000, 0, long.MaxValue)]
    [InlineData(long.MaxValue, 9_999, 100_000_000, 9_222_449_699_751_090_329)]
    public void FeeOf_RoundsHalfUp_AddsTheFixedPart_NeverMoreThanTheSale(long amount, long basisPoints, long fixedMinor, long fee) =>
        Assert.Equal(fee, ClearingService.FeeOf(amount, basisPoints, fixedMinor));

    [Theory]
    [InlineData(-1, 0, 0)]
    [InlineData(1, -1, 0)]
    [InlineData(1, 10_001, 0)]
    [InlineData(1, 0, -1)]
    public void FeeOf_OutOfBounds_Throws(long amount, long basisPoints, long fixedMinor) =>
        Assert.Throws<ArgumentOutOfRangeException>(() => ClearingService.FeeOf(amount, basisPoints, fixedMinor));

    [Theory]
    [InlineData("2026-03-02", true)]
    [InlineData("2024-02-29", true)]
    [InlineData("2026-02-29", false)]
    [InlineData("2026-3-02", false)]
    [InlineData("２０２６-03-02", false)]
    [InlineData("1999-12-31", false)]
    [InlineData("9999-12-31", false)]
    [InlineData(" 2026-03-02", false)]
    [InlineData(null, false)]
    public void Days_AreReadStrictly(string? text, bool valid) => Assert.Equal(valid, ClearingPeriod.TryReadDay(text, out _));
}

/// <summary>
/// The station's <c>clearing</c> commands on a running operator's configuration (SQLite): each
/// answers as its admin endpoint does, with the exit codes of the other commands, and is audited as
/// the station's user.
/// </summary>
public sealed class ClearingCommandsTest
{
    private readonly StringWriter _output = new();
    private readonly StringWriter _error = new();

    [Fact]
    public async Task Fee_Run_Statement_Bank_Payouts_Export_Paid_AsStationCommands()
    {
        await using var kit = await OperatorKit.StartAsync(10_000, sweepInterval: TimeSpan.Zero, time: new FakeTimeProvider(new DateTimeOffset(2026, 3, 2, 9, 0, 0, TimeSpan.Zero)));
        var bill = kit.Bill(new Money(2_500, Currency.Eur), "shop-A");
        var started = await kit.StartOkAsync(bill);
        using (var completed = await kit.CompleteAsync(started.SettlementId, kit.RunCard(started, bill)))
        {
            Assert.Equal(HttpStatusCode.OK, completed.StatusCode);
        }

        Assert.Equal(StationCommands.ExitOk, await RunAsync(kit, "clearing", "fee", "shop", "--basis-points", "250", "--fixed", "10"));
        Assert.Equal("Store 'shop' pays 250 basis points and 10 minor units per sale.", _output.ToString().TrimEnd());
        Assert.Equal(StationCommands.ExitUsage, await RunAsync(kit, "clearing", "fee", "shop", "--basis-points", "10001"));
        Assert.Contains("(clearing.fee_invalid)", _error.ToString(), StringComparison.Ordinal);
        Assert.Equal(StationCommands.ExitFailed, await RunAsync(kit, "clearing", "fee", "nobody", "--basis-points", "1"));
        Assert.Contains("(store.not_found)", _error.ToString(), StringComparison.Ordinal);

        Assert.Equal(StationCommands.ExitOk, await RunAsync(kit, "clearing", "run", "--to", "2026-03-03", "--json"));
        var run = JsonSerializer.Deserialize<JsonElement>(_output.ToString());
        var runId = run.GetProperty("runId").GetString()!;
        var payout = Assert.Single(run.GetProperty("payouts").EnumerateArray());
        Assert.Equal((2_500L, 73L, 2_427L, "due"), (payout.GetProperty("sales").GetInt64(), payout.GetProperty("fee").GetInt64(), payout.GetProperty("net").GetInt64(), payout.GetProperty("state").GetString()));
        Assert.Equal(StationCommands.ExitFailed, await RunAsync(kit, "clearing", "run", "--to", "2026-03-02"));
        Assert.Contains("(clearing.run_earlier)", _error.ToString(), StringComparison.Ordinal);
        Assert.Equal(StationCommands.ExitUsage, await RunAsync(kit, "clearing", "run", "--to", "2026-02-30"));

        var csv = Path.Combine(kit.Directory, "statement.csv");
        Assert.Equal(StationCommands.ExitOk, await RunAsync(kit, "clearing", "statement", "shop", "--from", "2026-03-02", "--to", "2026-03-03", "--csv", csv));
        var lines = await File.ReadAllLinesAsync(csv);
        Assert.Equal(["store,kind,id,order_no,time,amount,fee,currency,run", "\"shop\",sales,,,,25.00,,EUR,", "\"shop\",refunds,,,,0.00,,EUR,", "\"shop\",fees,,,,,0.73,EUR,", "\"shop\",owed,,,,24.27,,EUR,"],
            lines.Where((_, i) => i != 1));
        Assert.StartsWith($"\"shop\",sale,{started.SettlementId},\"shop-A\",2026-03-02T09:00:", lines[1], StringComparison.Ordinal);
        Assert.EndsWith($",25.00,0.73,EUR,{runId}", lines[1], StringComparison.Ordinal);
        Assert.Equal(StationCommands.ExitFailed, await RunAsync(kit, "clearing", "statement", "shop", "--from", "2026-03-02", "--to", "2026-03-03", "--csv", csv));
        Assert.Equal(StationCommands.ExitUsage, await RunAsync(kit, "clearing", "statement", "shop", "--from", "2026-03-03", "--to", "2026-03-02"));
        Assert.Equal(StationCommands.ExitFailed, await RunAsync(kit, "clearing", "statement", "nobody", "--from", "2026-03-02", "--to", "2026-03-03"));
        Assert.Equal(StationCommands.ExitOk, await RunAsync(kit, "clearing", "statement", "shop", "--from", "2026-03-02", "--to", "2026-03-03"));
        Assert.Contains("24.27", _output.ToString(), StringComparison.Ordinal);

        Assert.Equal(StationCommands.ExitUsage, await RunAsync(kit, "clearing", "bank", "shop", "--iban", "DE89370400440532013001", "--holder", "Shop GmbH"));
        Assert.Contains("(iban.invalid)", _error.ToString(), StringComparison.Ordinal);
        Assert.DoesNotContain("0532013001", _error.ToString(), StringComparison.Ordinal);
        Assert.Equal(StationCommands.ExitOk, await RunAsync(kit, "clearing", "bank", "shop", "--iban", "DE89 3704 0044 0532 0130 00", "--holder", "Shop GmbH"));
        Assert.Equal("Store 'shop' is paid to DE…3000 (Shop GmbH).", _output.ToString().TrimEnd());
        Assert.Equal(StationCommands.ExitOk, await RunAsync(kit, "clearing", "payouts", "--json"));
        var due = Assert.Single(JsonSerializer.Deserialize<JsonElement>(_output.ToString()).EnumerateArray());
        Assert.Equal((runId, 2_427L, "DE…3000"), (due.GetProperty("runId").GetString(), due.GetProperty("amountMinor").GetInt64(), due.GetProperty("iban").GetString()));
        Assert.Equal(StationCommands.ExitOk, await RunAsync(kit, "clearing", "export"));
        Assert.Equal($"{runId},\"shop\",DE89370400440532013000,\"Shop GmbH\",24.27,EUR,{due.GetProperty("dueSince").GetString()}", _output.ToString().Split('\n')[1]);

        Assert.Equal(StationCommands.ExitOk, await RunAsync(kit, "clearing", "paid", runId, "shop"));
        Assert.Equal($"Run {runId}: store 'shop' 24.27 EUR paid.", _output.ToString().TrimEnd());
        Assert.Equal(StationCommands.ExitFailed, await RunAsync(kit, "clearing", "paid", runId, "shop"));
        Assert.Contains("(clearing.payout_not_due)", _error.ToString(), StringComparison.Ordinal);
        Assert.Equal(StationCommands.ExitUsage, await RunAsync(kit, "clearing", "paid", "not-a-run", "shop"));

        var audited = (await kit.Service<AuditTrail>().ReadAsync(AuditTrail.ReadMax, CancellationToken.None)).Where(a => a.Role == AuditTrail.StationRole).Select(a => (a.Action, a.Status)).ToList();
        Assert.Contains(("clearing.run", 200L), audited);
        Assert.Contains(("clearing.run", 409L), audited);
        Assert.Contains(("clearing.payout.export", 200L), audited);
        Assert.Contains(("clearing.payout.paid", 409L), audited);
        var books = Assert.Single((await kit.ReconcileAsync()).Currencies);
        Assert.Equal((73L, 0L, 0L), (books.Fees, books.StorePayouts, books.Stores));
    }

    // One command on the kit's node's configuration; its output and errors alone.
    private Task<int> RunAsync(OperatorKit kit, params string[] args)
    {
        _output.GetStringBuilder().Clear();
        _error.GetStringBuilder().Clear();
        return OpenPurse.CommandLine.CommandLines.InvokeAsync(OperatorCommandLine.Build(), [.. args, $"--OpenPurse:Operator:DataDirectory={Path.Combine(kit.Directory, "operator")}"], _output, _error, cancelOnInterrupt: false);
    }
}
