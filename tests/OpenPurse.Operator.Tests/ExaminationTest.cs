using System.Net.Http.Json;
using System.Text.Json;
using Dapper;
using Microsoft.Extensions.Time.Testing;
using OpenPurse.Operator.Registry;
using OpenPurse.Operator.Settlement;
using OpenPurse.Protocol;
using OpenPurse.Protocol.Apdu;
using OpenPurse.Protocol.Messages;
using OpenPurse.Protocol.Purse;
using OpenPurse.Testing;

namespace OpenPurse.Operator.Tests;

/// <summary>
/// The card log and the careful examination over real HTTP with the in-process card: loads,
/// purchases (completed by the card's answer and by its greeting), a transfer and its credit to the
/// payee, a cash-out fill the card log and the examination is clean; then a mismatch of each kind,
/// planted in the registry behind the operator's back, is found with its kind and transactions,
/// and no card number appears unmasked. Every test runs on each registry engine.
/// </summary>
public abstract class ExaminationTest
{
    private const long Loaded = 10_000;
    private const string Iban = "DE89370400440532013000";

    private static Money Eur(long minor) => new(minor, Currency.Eur);

    /// <summary>A new PostgreSQL database for one kit, or null for SQLite.</summary>
    private protected abstract Task<PostgresDatabase?> CreateDatabaseAsync();

    [SuiteFact]
    public async Task RealMovements_FillTheCardLog_ExaminationIsClean()
    {
        await using var kit = await StartKitAsync();
        var paid = await PurchaseAsync(kit, 2_500);
        // A purchase whose answer is lost: the card's next greeting completes it.
        var bill = kit.Bill(Eur(1_000));
        var fromLog = await kit.StartOkAsync(bill);
        Assert.Equal(StatusWord.Ok, kit.RunCard(fromLog, bill).Status);
        await kit.SyncOkAsync();
        Assert.Equal("completed", await kit.StateOfAsync(fromLog.SettlementId));
        var payee = await kit.IssueCardAsync(0);
        var transfer = await TransferAsync(kit, 500, payee.CardId.Digits);
        var credit = Assert.IsType<CardCredit>((await kit.SyncOkAsync(kit.SyncGreeting(payee))).Credit);
        var (authenticated, taken) = kit.TryRunCard(credit.ExternalAuthenticate, credit.Credit, kit.ApprovalOf(credit), payee);
        Assert.Equal((StatusWord.Ok, StatusWord.Ok), (authenticated.Status, taken.Status));
        await kit.CompleteCreditOkAsync(credit.ValueUpdateId, taken);
        var cashOut = await CashOutAsync(kit, 300);

        var log = await LogAsync(kit);
        var card = kit.Reader.CardId.Digits;
        Assert.Equal(
            [(card, 1L, "credit", Loaded, CardLogSources.Load), (card, 2L, "debit", 2_500L, CardLogSources.Settlement), (card, 3L, "debit", 1_000L, CardLogSources.Settlement),
             (card, 4L, "debit", 500L, "transfer"), (card, 5L, "debit", 300L, "cash-out"), (payee.CardId.Digits, 1L, "credit", 500L, CardLogSources.CardCredit)],
            log.OrderBy(r => r.CardId == card ? 0 : 1).ThenBy(r => r.Counter).Select(r => (r.CardId, r.Counter, r.Kind, r.AmountMinor, r.Source)));
        Assert.Equal([paid.ToString(), fromLog.SettlementId.ToString(), transfer.ToString(), cashOut.ToString()],
            log.Where(r => r.CardId == card && r.Kind == "debit").OrderBy(r => r.Counter).Select(r => r.TransactionRef));
        Assert.Equal(Loaded - 2_500 - 1_000 - 500 - 300, log.Single(r => r.CardId == card && r.Counter == 5).BalanceAfterMinor);

        var report = await ExamineAsync(kit);
        Assert.True(report.Clean, Text(report));
        Assert.Empty(report.Findings);
        Assert.Equal((2, 6), (report.Cards, report.Records));
        Assert.Equal(0, await ExamineCommand.RunAsync(ServicesOf(kit), null, json: false, new StringWriter(), new StringWriter(), CancellationToken.None));

        // Syncs and greetings again keep nothing twice and nothing aside.
        await kit.SyncOkAsync();
        Assert.Equal(6, (await LogAsync(kit)).Count);
        Assert.Equal(0, await CountAsync(kit, "card_log_conflicts"));
    }

    [SuiteFact]
    public async Task RecordWithWrongAmount_RecordMismatch()
    {
        await using var kit = await StartKitAsync();
        var settlement = await PurchaseAsync(kit, 2_500);
        kit.BooksTamperedWith();
        await ExecuteAsync(kit, "UPDATE card_log SET amount_minor = 2400 WHERE transaction_ref = @id", new { id = settlement.ToString() });

        var report = await ExamineAsync(kit);

        var found = Assert.Single(report.Findings, f => f.Kind == Examination.RecordMismatch);
        Assert.Equal([settlement.ToString()], found.Transactions);
        Assert.Equal(kit.Reader.CardId.Masked, found.Card);
        Assert.Contains("25.00 EUR", found.Expected, StringComparison.Ordinal);
        Assert.Contains("24.00 EUR", found.Actual, StringComparison.Ordinal);
        Assert.DoesNotContain(report.Findings, f => f.Kind == Examination.RecordMissing);
        Assert.False(report.Clean);
        await AssertMaskedAsync(kit, report);
    }

    [SuiteFact]
    public async Task RecordWithUnknownRef_RecordUnknownRef_AndItsSettlementMissing()
    {
        await using var kit = await StartKitAsync();
        var settlement = await PurchaseAsync(kit, 2_500);
        var stranger = Guid.NewGuid().ToString();
        kit.BooksTamperedWith();
        await ExecuteAsync(kit, "UPDATE card_log SET transaction_ref = @stranger WHERE transaction_ref = @id", new { id = settlement.ToString(), stranger });

        var report = await ExamineAsync(kit);

        Assert.Equal([stranger], Assert.Single(report.Findings, f => f.Kind == Examination.RecordUnknown).Transactions);
        Assert.Equal([settlement.ToString()], Assert.Single(report.Findings, f => f.Kind == Examination.RecordMissing).Transactions);
        await AssertMaskedAsync(kit, report);
    }

    [SuiteFact]
    public async Task BalanceAfterNotFollowing_ChainBreak()
    {
        await using var kit = await StartKitAsync();
        var first = await PurchaseAsync(kit, 2_500);
        var second = await PurchaseAsync(kit, 1_000);
        kit.BooksTamperedWith();
        await ExecuteAsync(kit, "UPDATE card_log SET balance_after_minor = balance_after_minor - 100 WHERE transaction_ref = @id", new { id = first.ToString() });

        var report = await ExamineAsync(kit);

        var breaks = report.Findings.Where(f => f.Kind == Examination.ChainBreak).ToList();
        Assert.Equal(2, breaks.Count);
        Assert.Contains(breaks, b => b.Transactions.Contains(first.ToString()) && b.Actual == "74.00 EUR" && b.Expected.Contains("75.00 EUR", StringComparison.Ordinal));
        Assert.Contains(breaks, b => b.Transactions.SequenceEqual([first.ToString(), second.ToString()]));
        Assert.DoesNotContain(report.Findings, f => f.Kind is Examination.RecordMismatch or Examination.CardBalanceMismatch);
        await AssertMaskedAsync(kit, report);
    }

    [SuiteFact]
    public async Task CompletedSettlementWithoutRecord_RecordMissing_AndTheGapANote()
    {
        await using var kit = await StartKitAsync();
        var missing = await PurchaseAsync(kit, 2_500);
        await PurchaseAsync(kit, 1_000);
        kit.BooksTamperedWith();
        await ExecuteAsync(kit, "DELETE FROM card_log WHERE transaction_ref = @id", new { id = missing.ToString() });

        var report = await ExamineAsync(kit);

        var found = Assert.Single(report.Findings, f => f.Kind == Examination.RecordMissing);
        Assert.Equal([missing.ToString()], found.Transactions);
        Assert.Contains("at counter 2", found.Expected, StringComparison.Ordinal);
        var gap = Assert.Single(report.Findings, f => f.Kind == Examination.ChainGap);
        Assert.False(gap.Mismatch);
        Assert.Equal("records 2", gap.Expected);
        Assert.Equal(1, report.Mismatches);
    }

    [SuiteFact]
    public async Task ConflictingRecordForACounter_KeptAside_RecordConflict()
    {
        await using var kit = await StartKitAsync();
        var settlement = await PurchaseAsync(kit, 2_500);
        var card = kit.Reader.CardId.Digits;
        var kept = (await LogAsync(kit)).Single(r => r.TransactionRef == settlement.ToString());
        var same = new CardLogRecord(2, ValueKind.Debit, Eur(2_500), Eur(Loaded - 2_500), settlement, System.Buffers.Text.Base64Url.DecodeFromChars(kept.Digest));
        var other = same with { Amount = Eur(2_000), BalanceAfter = Eur(Loaded - 2_000), TransactionRef = Guid.NewGuid() };
        kit.BooksTamperedWith();
        await using (var write = await kit.Service<Database>().BeginWriteAsync())
        {
            await CardLog.KeepAsync(write.Connection, write.Inner, card, same, CardLogSources.Greeting, kit.Time.GetUtcNow());
            await CardLog.KeepAsync(write.Connection, write.Inner, card, other, CardLogSources.Greeting, kit.Time.GetUtcNow());
            await CardLog.KeepAsync(write.Connection, write.Inner, card, other, CardLogSources.Greeting, kit.Time.GetUtcNow());
            await write.CommitAsync();
        }

        // The first record stays; the other is kept aside, once.
        Assert.Equal(kept, (await LogAsync(kit)).Single(r => r.Counter == 2));
        Assert.Equal(1, await CountAsync(kit, "card_log_conflicts"));
        var report = await ExamineAsync(kit);
        var conflict = Assert.Single(report.Findings);
        Assert.Equal(Examination.RecordConflict, conflict.Kind);
        Assert.Equal([settlement.ToString(), other.TransactionRef.ToString()], conflict.Transactions);
        Assert.Contains("25.00 EUR", conflict.Expected, StringComparison.Ordinal);
        Assert.Contains("20.00 EUR", conflict.Actual, StringComparison.Ordinal);
        await AssertMaskedAsync(kit, report);
    }

    [SuiteFact]
    public async Task ShadowOffByOneUnit_CardBalanceMismatch_WithTheLedgersOwn()
    {
        await using var kit = await StartKitAsync();
        var settlement = await PurchaseAsync(kit, 2_500);
        kit.BooksTamperedWith();
        await ExecuteAsync(kit, "UPDATE card_purses SET balance_minor = balance_minor - 1 WHERE card_id = @card", new { card = kit.Reader.CardId.Digits });

        var report = await ExamineAsync(kit);

        var found = Assert.Single(report.Findings, f => f.Kind == Examination.CardBalanceMismatch);
        Assert.Equal([settlement.ToString()], found.Transactions);
        Assert.Equal("75.00 EUR (the card's record at counter 2)", found.Expected);
        Assert.Equal("shadow 74.99 EUR, ledger account 75.00 EUR", found.Actual);
        Assert.Single(report.Findings, f => f.Kind == LedgerDifference.CardShadowMismatch && f.Card == kit.Reader.CardId.Masked);
        // One card's examination finds the same, and only what concerns that card.
        var one = await kit.Service<Examination>().RunAsync(kit.Reader.CardId, CancellationToken.None);
        Assert.Equal(report.Findings.Select(f => f.Kind).Order(), one.Findings.Select(f => f.Kind).Order());
        await AssertMaskedAsync(kit, report);
    }

    [SuiteFact]
    public async Task OpenOrderWithBalanceOff_ListedWithTheBalanceMismatch()
    {
        await using var kit = await StartKitAsync();
        await PurchaseAsync(kit, 2_500);
        var open = await kit.StartOkAsync(kit.Bill(Eur(1_000)));
        kit.BooksTamperedWith();
        await ExecuteAsync(kit, "UPDATE card_purses SET balance_minor = balance_minor + 1 WHERE card_id = @card", new { card = kit.Reader.CardId.Digits });

        var found = Assert.Single((await ExamineAsync(kit)).Findings, f => f.Kind == Examination.CardBalanceMismatch);

        Assert.Contains($"settlement {open.SettlementId} authorized, 10.00 EUR", found.Detail, StringComparison.Ordinal);
    }

    [SuiteFact]
    public async Task StoreStatementDisagreeing_StorePaymentMismatch()
    {
        await using var store = await FakeStoreEndpoint.StartAsync();
        await using var kit = await OperatorKit.StartAsync(Loaded, postgres: await CreateDatabaseAsync(), sweepInterval: TimeSpan.Zero, notifyUrl: store.CompletionsUrl);
        var settlement = await PurchaseAsync(kit, 2_500);
        string? orderNo = null;
        await using (var connection = await kit.Service<Database>().OpenAsync())
        {
            orderNo = await connection.ExecuteScalarAsync<string>("SELECT order_no FROM settlements WHERE settlement_id = @id", new { id = settlement.ToString() });
        }

        store.Statement = (storeId, _) => SignedMessage.Sign(kit.StoreKey, new StoreStatement(storeId, DateTimeOffset.UtcNow, [new StatementLine(settlement, orderNo!, Eur(2_000))]), MessageTypes.Statement);

        var report = await ExamineAsync(kit);

        var found = Assert.Single(report.Findings);
        Assert.Equal(StoreStatements.Mismatch, found.Kind);
        Assert.Equal([settlement.ToString()], found.Transactions);
        Assert.Equal(1, report.StoresCompared);
        Assert.Equal(1, await ExamineCommand.RunAsync(ServicesOf(kit), null, json: false, new StringWriter(), new StringWriter(), CancellationToken.None));
        // The store's word again agrees with the books: the kit's own examination at its end is clean.
        store.Statement = (storeId, _) => SignedMessage.Sign(kit.StoreKey, new StoreStatement(storeId, DateTimeOffset.UtcNow, [new StatementLine(settlement, orderNo!, Eur(2_500))]), MessageTypes.Statement);
        Assert.True((await ExamineAsync(kit)).Clean);
    }

    [SuiteFact]
    public async Task AdminApi_AuditorRunsTheExamination_OneJsonDocumentMasked()
    {
        await using var kit = await StartKitAsync();
        var settlement = await PurchaseAsync(kit, 2_500);
        kit.BooksTamperedWith();
        await ExecuteAsync(kit, "UPDATE card_log SET amount_minor = 1 WHERE transaction_ref = @id", new { id = settlement.ToString() });

        using var request = new HttpRequestMessage(HttpMethod.Get, "/v1/admin/examination");
        request.Headers.Authorization = new("Bearer", OperatorKit.AuditorToken);
        using var response = await kit.Admin.SendAsync(request);
        var body = await response.Content.ReadAsStringAsync();

        Assert.True(response.IsSuccessStatusCode, body);
        var document = JsonDocument.Parse(body).RootElement;
        Assert.False(document.GetProperty("clean").GetBoolean());
        var finding = document.GetProperty("findings").EnumerateArray().Single(f => f.GetProperty("kind").GetString() == Examination.RecordMismatch);
        Assert.Equal(settlement.ToString(), finding.GetProperty("transactions")[0].GetString());
        Assert.Equal(kit.Reader.CardId.Masked, finding.GetProperty("card").GetString());
        Assert.DoesNotContain(kit.Reader.CardId.Digits, body, StringComparison.Ordinal);
        using var anonymous = await kit.Admin.GetAsync("/v1/admin/examination");
        Assert.Equal(System.Net.HttpStatusCode.Unauthorized, anonymous.StatusCode);
    }

    [SuiteFact]
    public async Task Command_CardNotAReference_Exit2()
    {
        await using var kit = await StartKitAsync();
        var error = new StringWriter();

        Assert.Equal(2, await ExamineCommand.RunAsync(ServicesOf(kit), "1234", json: false, new StringWriter(), error, CancellationToken.None));
        Assert.Contains("card reference", error.ToString(), StringComparison.Ordinal);
    }

    // The report in the command's text and JSON: the card's number only masked, each finding's kind shown.
    private static async Task AssertMaskedAsync(OperatorKit kit, ExaminationReport report)
    {
        foreach (var json in new[] { false, true })
        {
            var output = new StringWriter();
            Assert.Equal(report.Clean ? 0 : 1, await ExamineCommand.RunAsync(ServicesOf(kit), null, json, output, new StringWriter(), CancellationToken.None));
            var text = output.ToString();
            Assert.DoesNotContain(kit.Reader.CardId.Digits, text, StringComparison.Ordinal);
            Assert.All(report.Findings, f => Assert.Contains(f.Kind, text, StringComparison.Ordinal));
            if (json)
            {
                var cards = JsonDocument.Parse(text).RootElement.GetProperty("findings").EnumerateArray().Select(f => f.GetProperty("card").GetString());
                Assert.Contains(kit.Reader.CardId.Masked, cards);
            }
            else
            {
                Assert.Contains(kit.Reader.CardId.Masked, text, StringComparison.Ordinal);
            }
        }
    }

    private static string Text(ExaminationReport report)
    {
        var output = new StringWriter();
        ExamineCommand.Write(report, output);
        return output.ToString();
    }

    private static IServiceProvider ServicesOf(OperatorKit kit) => kit.Service<IServiceProvider>();

    private static Task<ExaminationReport> ExamineAsync(OperatorKit kit) => kit.Service<Examination>().RunAsync(null, CancellationToken.None);

    private async Task<OperatorKit> StartKitAsync() =>
        await OperatorKit.StartAsync(Loaded, postgres: await CreateDatabaseAsync(), sweepInterval: TimeSpan.Zero, time: new FakeTimeProvider(DateTimeOffset.UtcNow));

    private static async Task<Guid> PurchaseAsync(OperatorKit kit, long minor)
    {
        var bill = kit.Bill(Eur(minor));
        var started = await kit.StartOkAsync(bill);
        using var completed = await kit.CompleteAsync(started.SettlementId, kit.RunCard(started, bill));
        Assert.True(completed.IsSuccessStatusCode, await completed.Content.ReadAsStringAsync());
        return started.SettlementId;
    }

    private static async Task<Guid> TransferAsync(OperatorKit kit, long minor, string payee)
    {
        var greeting = kit.SyncGreeting();
        var request = new TransferRequest(Guid.NewGuid(), Eur(minor), payee, greeting.HostChallenge, greeting.CardGreeting);
        var started = await PostOkAsync<TransferResponse>(kit, "/v1/transfers", request);
        var digest = ValueDecreasePurposes.OrderDigest(ValueDecreasePurposes.Transfer, request.TransferId, Eur(minor), payee);
        await DebitAsync(kit, $"/v1/transfers/{request.TransferId}/completion", started.Debit, Eur(minor), digest);
        return request.TransferId;
    }

    private static async Task<Guid> CashOutAsync(OperatorKit kit, long minor)
    {
        var greeting = kit.SyncGreeting();
        var request = new CashOutRequest(Guid.NewGuid(), Eur(minor), Iban, "Erika Mustermann", greeting.HostChallenge, greeting.CardGreeting);
        var started = await PostOkAsync<CashOutResponse>(kit, "/v1/cashouts", request);
        var digest = ValueDecreasePurposes.OrderDigest(ValueDecreasePurposes.CashOut, request.CashOutId, Eur(minor), Iban);
        await DebitAsync(kit, $"/v1/cashouts/{request.CashOutId}/completion", started.Debit, Eur(minor), digest);
        return request.CashOutId;
    }

    private static async Task DebitAsync(OperatorKit kit, string completion, CardDebit debit, Money amount, byte[] digest)
    {
        var (authenticated, answer) = kit.TryRunCard(debit.ExternalAuthenticate, debit.Debit, new Approval(amount, digest));
        Assert.Equal((StatusWord.Ok, StatusWord.Ok), (authenticated.Status, answer.Status));
        using var completed = await kit.Http.PostAsJsonAsync(completion, new CompleteSettlementRequest(Convert.ToBase64String(answer.ToBytes())), ProtocolJson.Options);
        Assert.True(completed.IsSuccessStatusCode, await completed.Content.ReadAsStringAsync());
    }

    private static async Task<T> PostOkAsync<T>(OperatorKit kit, string path, object request)
    {
        using var response = await kit.Http.PostAsync(path, JsonContent.Create(request, request.GetType(), options: ProtocolJson.Options));
        Assert.True(response.IsSuccessStatusCode, await response.Content.ReadAsStringAsync());
        return (await response.Content.ReadFromJsonAsync<T>(ProtocolJson.Options))!;
    }

    private static async Task<List<CardLogRow>> LogAsync(OperatorKit kit)
    {
        await using var connection = await kit.Service<Database>().OpenAsync();
        return [.. await connection.QueryAsync<CardLogRow>($"SELECT {CardLogRow.Select} FROM card_log")];
    }

    private static async Task<long> CountAsync(OperatorKit kit, string table)
    {
        await using var connection = await kit.Service<Database>().OpenAsync();
        return await connection.ExecuteScalarAsync<long>($"SELECT COUNT(*) FROM {table}");
    }

    private static async Task ExecuteAsync(OperatorKit kit, string sql, object parameters)
    {
        await using var connection = await kit.Service<Database>().OpenAsync();
        Assert.Equal(1, await connection.ExecuteAsync(sql, parameters));
    }
}

/// <summary>The examination on the embedded default registry, SQLite.</summary>
public sealed class ExaminationOnSqliteTest : ExaminationTest
{
    private protected override Task<PostgresDatabase?> CreateDatabaseAsync() => Task.FromResult<PostgresDatabase?>(null);
}

/// <summary>The examination on PostgreSQL: one private cluster for the class, a fresh database per test.</summary>
[UsesComponents(Components.PostgreSql)]
public sealed class ExaminationOnPostgreSqlTest(SharedPostgresCluster postgres) : ExaminationTest, IClassFixture<SharedPostgresCluster>
{
    private protected override async Task<PostgresDatabase?> CreateDatabaseAsync() => await postgres.CreateDatabaseAsync();
}
