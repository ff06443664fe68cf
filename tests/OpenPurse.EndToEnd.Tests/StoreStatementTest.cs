using System.Net;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Dapper;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.DependencyInjection;
using OpenPurse.Card;
using OpenPurse.Demo;
using OpenPurse.Operator;
using OpenPurse.Operator.Settlement;
using OpenPurse.Protocol;
using OpenPurse.Protocol.Messages;
using OpenPurse.Store.Keys;
using OpenPurse.Store.Orders;
using OpenPurse.Wallet.Purchase;
using OpenPurse.Wallet.Readers;

namespace OpenPurse.EndToEnd.Tests;

/// <summary>
/// <c>reconcile</c> compares the operator's completed settlements with what each store says it
/// recorded as paid, in the store's signed statement, which only the operator may ask for.
/// </summary>
public sealed class StoreStatementTest : IAsyncLifetime
{
    private readonly string _directory = Directory.CreateTempSubdirectory("openpurse-statement-").FullName;
    private DemoSystem _system = null!;
    private EmulatedCard _card = null!;
    private HttpClient _storeHttp = null!;
    private PurchaseResult _paid = null!;

    /// <summary>The demo system, with one card that paid one order at the store "books".</summary>
    public async Task InitializeAsync()
    {
        _system = await DemoSystem.StartAsync(_directory);
        _card = await _system.IssueCardAsync(Path.Combine(_directory, "card.bin"), Money.Parse("50.00 EUR"));
        using var reader = new InProcessReader(_card);
        _storeHttp = _system.StoreClient();
        using var operatorHttp = _system.OperatorClient();
        _paid = await new PurchaseFlow(_storeHttp, operatorHttp, reader, new AutoPrompt()).RunAsync(new PurchaseRequest("book-001", StoreId: "books"));
    }

    public async Task DisposeAsync()
    {
        _storeHttp.Dispose();
        _card.Dispose();
        await _system.DisposeAsync();
        Directory.Delete(_directory, recursive: true);
    }

    [Fact]
    public async Task Reconcile_ComparesEachStoresSignedStatement_AndFindsWhatAStoreDidNotRecord()
    {
        var (exit, report) = await ReconcileAsync(_system);
        Assert.Equal(ReconcileCommand.ExitClean, exit);
        Assert.Contains($"Stores: {DemoSystem.Members.Count} compared, in agreement, 0 not compared.", report, StringComparison.Ordinal);
        // The careful examination finds the purchase's record in the operator's card log, and nothing amiss.
        var (examined, examination) = await ExamineAsync(_system);
        Assert.True(examined == ExamineCommand.ExitClean, examination);
        Assert.Contains($"Examination: clean; 2 card log records of 1 card, {DemoSystem.Members.Count} store statements compared", examination, StringComparison.Ordinal);

        // Only the operator reads a store's sales: no query, or one signed by anybody else, is refused.
        var books = _system.StoreServices.GetRequiredService<MemberKeys>().For("books");
        foreach (var query in new string?[] { null, SignedMessage.Sign(books, new StatementQuery("books", DateTimeOffset.UtcNow), MessageTypes.StatementQuery) })
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, "/v1/operator/statements/books");
            if (query is not null)
            {
                request.Headers.Add(StatementQuery.Header, query);
            }

            using var refused = await _storeHttp.SendAsync(request);
            Assert.Equal(HttpStatusCode.Unauthorized, refused.StatusCode);
            Assert.Equal("statement.query_invalid", (string?)JsonNode.Parse(await refused.Content.ReadAsStringAsync())!["code"]);
        }

        // The store loses the payment and records one that the operator never completed.
        var stranger = Guid.NewGuid();
        await using (var orders = StoreOrders())
        {
            await orders.ExecuteAsync("""
                UPDATE orders SET state = 'billed', settlement_id = NULL, completion_notice = NULL, receipt = NULL, paid_at = NULL WHERE order_no = @paid;
                INSERT INTO orders (order_no, store_id, bill, amount_minor, currency, state, settlement_id, completion_notice, receipt, created_at, paid_at)
                VALUES ('forged-1', 'books', 'x', 499, 'EUR', 'paid', @stranger, 'x', 'x', '2026-12-01T00:00:00.0000000+00:00', '2026-12-01T00:00:00.0000000+00:00');
                """, new { paid = _paid.OrderNo, stranger = stranger.ToString() });
        }

        (exit, report) = await ReconcileAsync(_system);
        Assert.Equal(ReconcileCommand.ExitDifferences, exit);
        Assert.Contains($"Stores: {DemoSystem.Members.Count} compared, 0 not compared.", report, StringComparison.Ordinal);
        Assert.Contains($"{StoreStatements.Unrecorded} {_paid.SettlementId}", report, StringComparison.Ordinal);
        Assert.Contains($"{StoreStatements.Unknown} {stranger}", report, StringComparison.Ordinal);
        Assert.StartsWith("Ledger: clean.", report, StringComparison.Ordinal);
        // The examination lists the same, from the same code, with the settlement behind each.
        (examined, examination) = await ExamineAsync(_system);
        Assert.Equal(ExamineCommand.ExitMismatches, examined);
        Assert.Contains($"{StoreStatements.Unrecorded} (mismatch, 1)", examination, StringComparison.Ordinal);
        Assert.Contains(_paid.SettlementId.ToString(), examination, StringComparison.Ordinal);
        Assert.Contains(stranger.ToString(), examination, StringComparison.Ordinal);
        Assert.DoesNotContain(_card.CardId.Digits, examination, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Reconcile_ReadsAStoresStatementPageByPage_EveryPaymentOnEveryPageCompared()
    {
        // The store records more payments than one page holds, none of which the operator completed:
        // the real one is somewhere among them, in the statement's order of settlement ids.
        var forged = Enumerable.Range(1, (2 * StoreStatement.PageLinesMax) + 7).Select(_ => Guid.NewGuid()).ToList();
        await using (var orders = StoreOrders())
        {
            await orders.ExecuteAsync(
                """
                INSERT INTO orders (order_no, store_id, bill, amount_minor, currency, state, settlement_id, completion_notice, receipt, created_at, paid_at)
                VALUES ('forged-' || @id, 'books', 'x', 499, 'EUR', 'paid', @id, 'x', 'x', '2026-12-01T00:00:00.0000000+00:00', '2026-12-01T00:00:00.0000000+00:00');
                """,
                forged.Select(id => new { id = id.ToString() }));
        }

        var (exit, report) = await ReconcileAsync(_system);
        Assert.Equal(ReconcileCommand.ExitDifferences, exit);
        Assert.Contains($"Stores: {DemoSystem.Members.Count} compared, 0 not compared.", report, StringComparison.Ordinal);
        Assert.Equal(
            forged.Select(id => id.ToString()).Order(StringComparer.Ordinal),
            Regex.Matches(report, $@"{Regex.Escape(StoreStatements.Unknown)} ([0-9a-f-]{{36}})").Select(match => match.Groups[1].Value).Order(StringComparer.Ordinal));
        Assert.DoesNotContain(_paid.SettlementId.ToString(), report, StringComparison.Ordinal);

        await using (var orders = StoreOrders())
        {
            await orders.ExecuteAsync("DELETE FROM orders WHERE order_no LIKE 'forged-%'");
        }

        (exit, report) = await ReconcileAsync(_system);
        Assert.True(exit == ReconcileCommand.ExitClean, report);
    }

    /// <summary>The store's own database, to change behind its back.</summary>
    private SqliteConnection StoreOrders() => new($"Data Source={Path.Combine(_directory, "store", OrderDatabase.FileName)};Pooling=false");

    private static async Task<(int Exit, string Report)> ExamineAsync(DemoSystem system)
    {
        var output = new StringWriter();
        var exit = await ExamineCommand.RunAsync(system.OperatorServices, null, json: false, output, new StringWriter(), CancellationToken.None);
        return (exit, output.ToString());
    }

    private static async Task<(int Exit, string Report)> ReconcileAsync(DemoSystem system)
    {
        var output = new StringWriter();
        var exit = await ReconcileCommand.RunAsync(system.OperatorServices, output, CancellationToken.None);
        return (exit, output.ToString());
    }
}
