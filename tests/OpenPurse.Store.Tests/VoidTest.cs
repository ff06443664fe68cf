using System.Globalization;
using System.Net;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Nodes;
using Microsoft.Data.Sqlite;
using OpenPurse.Protocol;
using OpenPurse.Protocol.Jose;
using OpenPurse.Protocol.Messages;
using OpenPurse.Storage;
using OpenPurse.Store.Orders;
using OpenPurse.Testing;

namespace OpenPurse.Store.Tests;

/// <summary>The operator's void notices (<c>POST /v1/operator/voids</c>): an unpaid order is cancelled for good.</summary>
public sealed class VoidTest : IAsyncLifetime
{
    private readonly LogCapture _logs = new();

    private FakeOperator Operator { get; set; } = null!;

    private TestStore Store { get; set; } = null!;

    public async Task InitializeAsync()
    {
        Operator = await FakeOperator.StartAsync();
        Store = await TestStore.StartAsync(Operator, logs: _logs);
    }

    public async Task DisposeAsync()
    {
        await Store.DisposeAsync();
        await Operator.DisposeAsync();
        _logs.Dispose();
    }

    [Theory]
    [InlineData(VoidReasons.NotRun)]
    [InlineData(VoidReasons.Expired)]
    public async Task Void_ValidNotice_NoContentAndOrderCancelled(string reason)
    {
        var order = await Store.PlaceOrderAsync(TestStore.Tunes, ("song-1", 2));
        var notice = TestStore.VoidFor(order, reason: reason);
        var signed = Operator.Sign(notice);

        using var response = await Store.VoidAsOperatorAsync(signed);

        Assert.Equal(HttpStatusCode.NoContent, response.StatusCode);
        Assert.Empty(await response.Content.ReadAsByteArrayAsync());
        Assert.Equal("cancelled", await Store.OrderStateAsync(order.OrderNo));
        var recorded = Assert.Single(VoidRows(order.OrderNo));
        Assert.Equal(notice.SettlementId.ToString("D"), recorded.SettlementId);
        Assert.Equal(signed, recorded.VoidNotice);
        Assert.Equal(reason, recorded.Reason);
        // Kept to the millisecond, as every stored time; the signed notice beside it keeps the exact one.
        Assert.Equal(StoredTime.Format(notice.VoidedAt), recorded.VoidedAt);
        Assert.Empty(_logs.Errors);
    }

    [Fact]
    public async Task Void_CancelledOrder_DownloadIsRefused()
    {
        var order = await Store.PlaceOrderAsync(TestStore.Books, ("book-1", 1));
        using (var voided = await Store.VoidAsOperatorAsync(Operator.Sign(TestStore.VoidFor(order))))
        {
            Assert.Equal(HttpStatusCode.NoContent, voided.StatusCode);
        }

        using var withoutReceipt = await Store.DownloadAsync(order.OrderNo, null);
        using var withBill = await Store.DownloadAsync(order.OrderNo, order.BillJws);

        await TestStore.AssertProblemAsync(withoutReceipt, HttpStatusCode.Forbidden, "download.not_paid");
        await TestStore.AssertProblemAsync(withBill, HttpStatusCode.Forbidden, "download.not_paid");
    }

    [Fact]
    public async Task Void_SameNoticeAgain_NoContentAgain()
    {
        var order = await Store.PlaceOrderAsync(TestStore.Books, ("book-1", 1));
        var notice = TestStore.VoidFor(order);
        var signed = Operator.Sign(notice);

        using var first = await Store.VoidAsOperatorAsync(signed);
        using var second = await Store.VoidAsOperatorAsync(signed);
        // Signed again (another ECDSA signature, so another string) for the same settlement.
        using var third = await Store.VoidAsOperatorAsync(Operator.Sign(notice));

        Assert.Equal(HttpStatusCode.NoContent, first.StatusCode);
        Assert.Equal(HttpStatusCode.NoContent, second.StatusCode);
        Assert.Equal(HttpStatusCode.NoContent, third.StatusCode);
        Assert.Equal("cancelled", await Store.OrderStateAsync(order.OrderNo));
        Assert.Equal(signed, Assert.Single(VoidRows(order.OrderNo)).VoidNotice);
    }

    [Fact]
    public async Task Void_AnotherSettlementOfACancelledOrder_NoContentAndKeepsTheFirst()
    {
        var order = await Store.PlaceOrderAsync(TestStore.Books, ("book-1", 1));
        var first = TestStore.VoidFor(order, reason: VoidReasons.NotRun);

        using var firstResponse = await Store.VoidAsOperatorAsync(Operator.Sign(first));
        using var secondResponse = await Store.VoidAsOperatorAsync(Operator.Sign(TestStore.VoidFor(order, reason: VoidReasons.Expired)));

        Assert.Equal(HttpStatusCode.NoContent, firstResponse.StatusCode);
        Assert.Equal(HttpStatusCode.NoContent, secondResponse.StatusCode);
        var recorded = Assert.Single(VoidRows(order.OrderNo));
        Assert.Equal(first.SettlementId.ToString("D"), recorded.SettlementId);
        Assert.Equal(VoidReasons.NotRun, recorded.Reason);
        Assert.Equal("cancelled", await Store.OrderStateAsync(order.OrderNo));
    }

    [Fact]
    public async Task Void_SameNoticeAtOnce_AllAcknowledgedOneRecorded()
    {
        var order = await Store.PlaceOrderAsync(TestStore.Books, ("book-1", 1));
        var signed = Operator.Sign(TestStore.VoidFor(order));

        var responses = await Task.WhenAll(Enumerable.Range(0, 8).Select(_ => Store.VoidAsOperatorAsync(signed)));

        Assert.All(responses, r => Assert.Equal(HttpStatusCode.NoContent, r.StatusCode));
        foreach (var response in responses)
        {
            response.Dispose();
        }

        Assert.Single(VoidRows(order.OrderNo));
    }

    public static TheoryData<string> SignedMismatches => ["storeId", "mallId", "noMall", "amount", "currency", "billDigest"];

    [Theory]
    [MemberData(nameof(SignedMismatches))]
    public async Task Void_SignedNoticeThatDiffersFromTheOrder_IsMismatchAndOrderStaysBilled(string change)
    {
        var order = await Store.PlaceOrderAsync(TestStore.Books, ("book-1", 1));
        var other = await Store.PlaceOrderAsync(TestStore.Books, ("book-1", 1));
        var notice = TestStore.VoidFor(order);
        notice = change switch
        {
            "storeId" => notice with { StoreId = TestStore.Tunes },
            "mallId" => notice with { MallId = "other-mall" },
            "noMall" => notice with { MallId = null },
            "amount" => notice with { Amount = new Money(notice.Amount.MinorUnits + 1, Currency.Eur) },
            "currency" => notice with { Amount = new Money(notice.Amount.MinorUnits, Currency.Usd) },
            "billDigest" => notice with { BillDigest = SignedMessage.Digest(other.BillJws) },
            _ => throw new ArgumentOutOfRangeException(nameof(change)),
        };

        using var response = await Store.VoidAsOperatorAsync(Operator.Sign(notice));

        await TestStore.AssertProblemAsync(response, HttpStatusCode.UnprocessableEntity, "void.mismatch");
        Assert.Equal("billed", await Store.OrderStateAsync(order.OrderNo));
        Assert.Equal("billed", await Store.OrderStateAsync(other.OrderNo));
        Assert.Empty(VoidRows(order.OrderNo));
    }

    [Fact]
    public async Task Void_ChangedAmount_DetailNamesTheAmount()
    {
        var order = await Store.PlaceOrderAsync(TestStore.Books, ("book-2", 1));

        using var response = await Store.VoidAsOperatorAsync(Operator.Sign(TestStore.VoidFor(order) with { Amount = Money.Parse("0.01 EUR") }));

        var detail = await TestStore.AssertProblemAsync(response, HttpStatusCode.UnprocessableEntity, "void.mismatch");
        Assert.Contains("amount", detail, StringComparison.Ordinal);
        Assert.Equal("billed", await Store.OrderStateAsync(order.OrderNo));
    }

    public static TheoryData<string, JsonNode?> TamperedMembers => new()
    {
        { "orderNo", "test-mall-000002" },
        { "storeId", "tunes" },
        { "amount", new JsonObject { ["minorUnits"] = 1, ["currency"] = "EUR" } },
        { "settlementId", Guid.NewGuid().ToString() },
        { "reason", VoidReasons.Expired },
    };

    [Theory]
    [MemberData(nameof(TamperedMembers))]
    public async Task Void_PayloadChangedAfterSigning_IsRefusedAndOrderStaysBilled(string member, JsonNode? value)
    {
        var order = await Store.PlaceOrderAsync(TestStore.Books, ("book-1", 1));
        var second = await Store.PlaceOrderAsync(TestStore.Books, ("book-1", 1));
        var tampered = CompletionTest.ChangePayload(Operator.Sign(TestStore.VoidFor(order)), member, value);

        using var response = await Store.VoidAsOperatorAsync(tampered);

        await TestStore.AssertProblemAsync(response, HttpStatusCode.UnprocessableEntity, "void.signature_invalid");
        Assert.Equal("billed", await Store.OrderStateAsync(order.OrderNo));
        Assert.Equal("billed", await Store.OrderStateAsync(second.OrderNo));
    }

    [Fact]
    public async Task Void_HighSTwinOfTheOperatorsSignature_IsRefusedAndOrderStaysBilled()
    {
        var order = await Store.PlaceOrderAsync(TestStore.Books, ("book-1", 1));
        var signedVoid = Operator.Sign(TestStore.VoidFor(order));

        using var response = await Store.VoidAsOperatorAsync(SignatureTwin.Of(signedVoid));

        Assert.Contains("signature.high_s", await TestStore.AssertProblemAsync(response, HttpStatusCode.UnprocessableEntity, "void.signature_invalid"), StringComparison.Ordinal);
        Assert.Equal("billed", await Store.OrderStateAsync(order.OrderNo));

        using var genuine = await Store.VoidAsOperatorAsync(signedVoid);
        Assert.True(genuine.IsSuccessStatusCode);
        Assert.Equal("cancelled", await Store.OrderStateAsync(order.OrderNo));
    }

    [Fact]
    public async Task Void_SignedByAnotherKey_IsRefusedAndOrderStaysBilled()
    {
        var order = await Store.PlaceOrderAsync(TestStore.Books, ("book-1", 1));
        using var stranger = EcdsaSigningKey.Generate();

        using var response = await Store.VoidAsOperatorAsync(SignedMessage.Sign(stranger, TestStore.VoidFor(order), MessageTypes.VoidNotice));

        var detail = await TestStore.AssertProblemAsync(response, HttpStatusCode.UnprocessableEntity, "void.signature_invalid");
        Assert.Contains("unknown_key", detail, StringComparison.Ordinal);
        Assert.Equal("billed", await Store.OrderStateAsync(order.OrderNo));
    }

    [Fact]
    public async Task Void_AnotherKeyUnderTheOperatorsKid_IsRefusedAndOrderStaysBilled()
    {
        var order = await Store.PlaceOrderAsync(TestStore.Books, ("book-1", 1));
        using var forger = new EcdsaSigningKey(ECDsa.Create(ECCurve.NamedCurves.nistP256), Operator.Key.KeyId);

        using var response = await Store.VoidAsOperatorAsync(SignedMessage.Sign(forger, TestStore.VoidFor(order), MessageTypes.VoidNotice));

        var detail = await TestStore.AssertProblemAsync(response, HttpStatusCode.UnprocessableEntity, "void.signature_invalid");
        Assert.Contains("signature.invalid", detail, StringComparison.Ordinal);
        Assert.Equal("billed", await Store.OrderStateAsync(order.OrderNo));
    }

    [Fact]
    public async Task Void_AnAcn_IsRefusedAsTheWrongTypeAndOrderStaysBilled()
    {
        var order = await Store.PlaceOrderAsync(TestStore.Books, ("book-1", 1));

        // The operator's own ACN for the order, and a void's content under the ACN's type.
        using var acn = await Store.VoidAsOperatorAsync(Operator.Sign(TestStore.NoticeFor(order)));
        using var voidAsAcn = await Store.VoidAsOperatorAsync(SignedMessage.Sign(Operator.Key, TestStore.VoidFor(order), MessageTypes.CompletionNotice));

        Assert.Contains("wrong_type", await TestStore.AssertProblemAsync(acn, HttpStatusCode.UnprocessableEntity, "void.signature_invalid"), StringComparison.Ordinal);
        Assert.Contains("wrong_type", await TestStore.AssertProblemAsync(voidAsAcn, HttpStatusCode.UnprocessableEntity, "void.signature_invalid"), StringComparison.Ordinal);
        Assert.Equal("billed", await Store.OrderStateAsync(order.OrderNo));
    }

    [Fact]
    public async Task Completion_AVoidNotice_IsRefusedAsTheWrongTypeAndOrderStaysBilled()
    {
        var order = await Store.PlaceOrderAsync(TestStore.Books, ("book-1", 1));
        var signedVoid = Operator.Sign(TestStore.VoidFor(order));

        using var fromOperator = await Store.CompleteAsOperatorAsync(signedVoid);
        using var fromWallet = await Store.CompleteAsWalletAsync(order.OrderNo, signedVoid);

        Assert.Contains("wrong_type", await TestStore.AssertProblemAsync(fromOperator, HttpStatusCode.UnprocessableEntity, "completion.signature_invalid"), StringComparison.Ordinal);
        Assert.Contains("wrong_type", await TestStore.AssertProblemAsync(fromWallet, HttpStatusCode.UnprocessableEntity, "completion.signature_invalid"), StringComparison.Ordinal);
        Assert.Equal("billed", await Store.OrderStateAsync(order.OrderNo));
    }

    [Theory]
    [InlineData("not a jws")]
    [InlineData("a.b.c")]
    [InlineData("")]
    public async Task Void_NotAJws_IsRefused(string notice)
    {
        var order = await Store.PlaceOrderAsync(TestStore.Books, ("book-1", 1));

        using var response = await Store.VoidAsOperatorAsync(notice);

        await TestStore.AssertProblemAsync(response, HttpStatusCode.UnprocessableEntity, "void.signature_invalid");
        Assert.Equal("billed", await Store.OrderStateAsync(order.OrderNo));
    }

    [Theory]
    [InlineData("""{"voidNotice":42}""")]
    [InlineData("""{"completionNotice":"a.b.c"}""")]
    [InlineData("null")]
    public async Task Void_MalformedBody_IsRefusedAsMalformed(string body)
    {
        using var content = new StringContent(body, Encoding.UTF8, "application/json");

        using var response = await Store.Http.PostAsync(new Uri("/v1/operator/voids", UriKind.Relative), content);

        await TestStore.AssertProblemAsync(response, HttpStatusCode.BadRequest, "request.malformed");
    }

    [Fact]
    public async Task Void_UnknownOrder_IsNotFound()
    {
        var order = await Store.PlaceOrderAsync(TestStore.Books, ("book-1", 1));

        using var response = await Store.VoidAsOperatorAsync(Operator.Sign(TestStore.VoidFor(order) with { OrderNo = "test-mall-424242" }));

        await TestStore.AssertProblemAsync(response, HttpStatusCode.NotFound, "order.not_found");
        Assert.Equal("billed", await Store.OrderStateAsync(order.OrderNo));
    }

    [Fact]
    public async Task Void_OperatorUnreachable_IsServiceUnavailableAndOrderStaysBilled()
    {
        var order = await Store.PlaceOrderAsync(TestStore.Books, ("book-1", 1));
        var signed = Operator.Sign(TestStore.VoidFor(order));
        await Operator.StopAsync();

        using var response = await Store.VoidAsOperatorAsync(signed);

        await TestStore.AssertProblemAsync(response, HttpStatusCode.ServiceUnavailable, "operator.unavailable");
        Assert.Equal("billed", await Store.OrderStateAsync(order.OrderNo));
    }

    [Fact]
    public async Task Void_PaidOrder_IsConflictAndThePaymentStands()
    {
        var order = await Store.PlaceOrderAsync(TestStore.Books, ("book-1", 1));
        var settlementId = Guid.NewGuid();
        var receipt = await Store.PayAsync(order, settlementId);

        using var sameSettlement = await Store.VoidAsOperatorAsync(Operator.Sign(TestStore.VoidFor(order, settlementId)));
        using var otherSettlement = await Store.VoidAsOperatorAsync(Operator.Sign(TestStore.VoidFor(order, reason: VoidReasons.Expired)));

        await TestStore.AssertProblemAsync(sameSettlement, HttpStatusCode.Conflict, "void.conflict");
        await TestStore.AssertProblemAsync(otherSettlement, HttpStatusCode.Conflict, "void.conflict");
        Assert.Equal("paid", await Store.OrderStateAsync(order.OrderNo));
        Assert.Empty(VoidRows(order.OrderNo));
        using var download = await Store.DownloadAsync(order.OrderNo, receipt);
        Assert.Equal(HttpStatusCode.OK, download.StatusCode);
        Assert.Equal("The text of book one.", await download.Content.ReadAsStringAsync());
        Assert.Equal(2, _logs.Errors.Count(m => m.Contains(order.OrderNo, StringComparison.Ordinal) && m.Contains("payment stands", StringComparison.Ordinal)));
    }

    [Fact]
    public async Task Completion_AfterAVoid_IsConflictAndOrderStaysCancelled()
    {
        var order = await Store.PlaceOrderAsync(TestStore.Books, ("book-1", 1));
        var settlementId = Guid.NewGuid();
        using (var voided = await Store.VoidAsOperatorAsync(Operator.Sign(TestStore.VoidFor(order, settlementId))))
        {
            Assert.Equal(HttpStatusCode.NoContent, voided.StatusCode);
        }

        // The voided settlement itself, and another one, by either path.
        using var fromOperator = await Store.CompleteAsOperatorAsync(Operator.Sign(TestStore.NoticeFor(order, settlementId)));
        using var fromWallet = await Store.CompleteAsWalletAsync(order.OrderNo, Operator.Sign(TestStore.NoticeFor(order, settlementId)));
        using var another = await Store.CompleteAsOperatorAsync(Operator.Sign(TestStore.NoticeFor(order)));

        await TestStore.AssertProblemAsync(fromOperator, HttpStatusCode.Conflict, "completion.conflict");
        await TestStore.AssertProblemAsync(fromWallet, HttpStatusCode.Conflict, "completion.conflict");
        await TestStore.AssertProblemAsync(another, HttpStatusCode.Conflict, "completion.conflict");
        Assert.Equal("cancelled", await Store.OrderStateAsync(order.OrderNo));
        Assert.Empty(Operator.Receipts);
        using var download = await Store.DownloadAsync(order.OrderNo, null);
        await TestStore.AssertProblemAsync(download, HttpStatusCode.Forbidden, "download.not_paid");
        Assert.Equal(3, _logs.Errors.Count(m => m.Contains(order.OrderNo, StringComparison.Ordinal) && m.Contains("cancelled", StringComparison.Ordinal)));
    }

    [Fact]
    public async Task Void_OneOrder_LeavesTheOthersAlone()
    {
        var voided = await Store.PlaceOrderAsync(TestStore.Books, ("book-1", 1));
        var other = await Store.PlaceOrderAsync(TestStore.Books, ("book-1", 1));
        using (var response = await Store.VoidAsOperatorAsync(Operator.Sign(TestStore.VoidFor(voided))))
        {
            Assert.Equal(HttpStatusCode.NoContent, response.StatusCode);
        }

        var receipt = await Store.PayAsync(other);

        Assert.Equal("cancelled", await Store.OrderStateAsync(voided.OrderNo));
        Assert.Equal("paid", await Store.OrderStateAsync(other.OrderNo));
        using var download = await Store.DownloadAsync(other.OrderNo, receipt);
        Assert.Equal(HttpStatusCode.OK, download.StatusCode);
    }

    private List<VoidRow> VoidRows(string orderNo) => ReadVoids(Store.Options.DataDirectory, orderNo);

    internal static List<VoidRow> ReadVoids(string dataDirectory, string orderNo)
    {
        using var connection = new SqliteConnection($"Data Source={Path.Combine(dataDirectory, OrderDatabase.FileName)};Pooling=False");
        connection.Open();
        using var command = connection.CreateCommand();
        command.CommandText = "SELECT settlement_id, void_notice, reason, voided_at FROM order_voids WHERE order_no = $orderNo;";
        command.Parameters.AddWithValue("$orderNo", orderNo);
        using var reader = command.ExecuteReader();
        var rows = new List<VoidRow>();
        while (reader.Read())
        {
            rows.Add(new VoidRow(reader.GetString(0), reader.GetString(1), reader.GetString(2), reader.GetString(3)));
        }

        return rows;
    }

    internal sealed record VoidRow(string SettlementId, string VoidNotice, string Reason, string VoidedAt);
}


/// <summary>The store database's schema version: version 1 databases get the voids table on start.</summary>
public sealed class OrderSchemaTest : IAsyncLifetime
{
    private FakeOperator _operator = null!;

    public async Task InitializeAsync() => _operator = await FakeOperator.StartAsync();

    public async Task DisposeAsync() => await _operator.DisposeAsync();

    [Fact]
    public async Task Start_DatabaseAtVersion1_GetsTheVoidsTableAndKeepsItsOrders()
    {
        using var directory = new TempDirectory();
        var options = TestStore.OptionsFor(_operator, directory.Path);
        PlacedOrder billed, paid, later;
        string receipt;
        await using (var store = await TestStore.StartAsync(options, _operator))
        {
            billed = await store.PlaceOrderAsync(TestStore.Books, ("book-1", 1));
            paid = await store.PlaceOrderAsync(TestStore.Tunes, ("song-1", 1));
            later = await store.PlaceOrderAsync(TestStore.Books, ("book-2", 1));
            receipt = await store.PayAsync(paid);
        }

        // What version 1 wrote: orders and order_sequences, no order_voids.
        Execute(directory.Path, "DROP TABLE order_voids; PRAGMA user_version = 1;");
        Assert.Equal(1L, Scalar(directory.Path, "PRAGMA user_version;"));
        Assert.Equal(0L, Scalar(directory.Path, "SELECT count(*) FROM sqlite_schema WHERE name = 'order_voids';"));

        await using var again = await TestStore.StartAsync(options, _operator);

        // Up to the current version (3: refunds), every step on the way.
        Assert.Equal(3L, Scalar(directory.Path, "PRAGMA user_version;"));
        Assert.Equal(1L, Scalar(directory.Path, "SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name = 'order_refunds';"));
        Assert.Equal(1L, Scalar(directory.Path, "SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name = 'order_voids';"));
        Assert.Equal(3L, Scalar(directory.Path, "SELECT count(*) FROM orders;"));
        Assert.Equal("billed", await again.OrderStateAsync(billed.OrderNo));
        Assert.Equal("paid", await again.OrderStateAsync(paid.OrderNo));
        using (var download = await again.DownloadAsync(paid.OrderNo, receipt))
        {
            Assert.Equal(HttpStatusCode.OK, download.StatusCode);
        }

        // The old orders take voids and payments as new ones do; numbering goes on where it was.
        using (var voided = await again.VoidAsOperatorAsync(_operator.Sign(TestStore.VoidFor(billed))))
        {
            Assert.Equal(HttpStatusCode.NoContent, voided.StatusCode);
        }

        await again.PayAsync(later);
        Assert.Equal("cancelled", await again.OrderStateAsync(billed.OrderNo));
        Assert.Equal("paid", await again.OrderStateAsync(later.OrderNo));
        var next = await again.PlaceOrderAsync(TestStore.Books, ("book-1", 1));
        Assert.Equal("test-mall-000004", next.OrderNo);
    }

    [Fact]
    public async Task Start_CurrentDatabase_StartsAgainUnchanged()
    {
        using var directory = new TempDirectory();
        var options = TestStore.OptionsFor(_operator, directory.Path);
        PlacedOrder order;
        await using (var store = await TestStore.StartAsync(options, _operator))
        {
            order = await store.PlaceOrderAsync(TestStore.Books, ("book-1", 1));
            using var voided = await store.VoidAsOperatorAsync(_operator.Sign(TestStore.VoidFor(order)));
            Assert.Equal(HttpStatusCode.NoContent, voided.StatusCode);
        }

        await using var again = await TestStore.StartAsync(options, _operator);

        Assert.Equal(3L, Scalar(directory.Path, "PRAGMA user_version;"));
        Assert.Equal("cancelled", await again.OrderStateAsync(order.OrderNo));
    }

    [Fact]
    public async Task Start_DatabaseFromANewerVersion_IsRefused()
    {
        using var directory = new TempDirectory();
        var options = TestStore.OptionsFor(_operator, directory.Path);
        await (await TestStore.StartAsync(options, _operator)).DisposeAsync();
        Execute(directory.Path, "PRAGMA user_version = 4;");

        var refusal = Assert.Throws<InvalidOperationException>(() => StoreHost.Build(options));

        Assert.Contains("schema version 4", refusal.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Database_VoidForAnUnknownOrder_IsRefusedByTheForeignKey()
    {
        using var directory = new TempDirectory();
        await (await TestStore.StartAsync(TestStore.OptionsFor(_operator, directory.Path), _operator)).DisposeAsync();

        var refusal = Assert.Throws<SqliteException>(() => Execute(
            directory.Path,
            "PRAGMA foreign_keys = ON; INSERT INTO order_voids VALUES ('test-mall-999999', 'x', 'x', 'not_run', '2026-01-01T00:00:00.0000000+00:00');"));

        Assert.Contains("FOREIGN KEY", refusal.Message, StringComparison.Ordinal);
    }

    private static SqliteConnection Open(string dataDirectory)
    {
        var connection = new SqliteConnection($"Data Source={Path.Combine(dataDirectory, OrderDatabase.FileName)};Pooling=False");
        connection.Open();
        return connection;
    }

    private static void Execute(string dataDirectory, string sql)
    {
        using var connection = Open(dataDirectory);
        using var command = connection.CreateCommand();
        command.CommandText = sql;
        command.ExecuteNonQuery();
    }

    private static long Scalar(string dataDirectory, string sql)
    {
        using var connection = Open(dataDirectory);
        using var command = connection.CreateCommand();
        command.CommandText = sql;
        return (long)command.ExecuteScalar()!;
    }
}
