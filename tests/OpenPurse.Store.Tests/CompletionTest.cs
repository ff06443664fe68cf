using System.Buffers.Text;
using System.Net;
using System.Text;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Http;
using OpenPurse.Protocol;
using OpenPurse.Protocol.Jose;
using OpenPurse.Protocol.Messages;
using OpenPurse.Store.Operator;
using OpenPurse.Testing;

namespace OpenPurse.Store.Tests;

public sealed class CompletionTest : StoreTest
{

    [Fact]
    public async Task WalletCompletion_ValidNotice_ReceiptSignedByTheMemberStore()
    {
        var order = await Store.PlaceOrderAsync(TestStore.Tunes, ("song-1", 3));
        var notice = TestStore.NoticeFor(order);
        var signedNotice = Operator.Sign(notice);

        using var response = await Store.CompleteAsWalletAsync(order.OrderNo, signedNotice);
        var delivery = await TestStore.ReadAsync<ReceiptDelivery>(response);

        var receipt = SignedMessage.Verify<Receipt>(delivery.Receipt, Store.Keys.SetFor(TestStore.Tunes), MessageTypes.Receipt, out var error);
        Assert.True(receipt is not null, error);
        Assert.Equal(notice.SettlementId, receipt.SettlementId);
        Assert.Equal(order.OrderNo, receipt.OrderNo);
        Assert.Equal(TestStore.Tunes, receipt.StoreId);
        Assert.Equal(Money.Parse("2.97 EUR"), receipt.Amount);
        Assert.Equal(SignedMessage.Digest(signedNotice), receipt.CompletionDigest);
        Assert.Null(SignedMessage.Verify<Receipt>(delivery.Receipt, Store.Keys.SetFor(TestStore.Books), MessageTypes.Receipt, out _));
        Assert.Equal("paid", await Store.OrderStateAsync(order.OrderNo));
    }

    [Fact]
    public async Task WalletCompletion_ForwardsTheReceiptToTheOperator()
    {
        var order = await Store.PlaceOrderAsync(TestStore.Books, ("book-1", 1));
        var settlementId = Guid.NewGuid();

        var receipt = await Store.PayAsync(order, settlementId);

        var (forwardedFor, forwarded) = Assert.Single(Operator.Receipts);
        Assert.Equal(settlementId, forwardedFor);
        Assert.Equal(receipt, forwarded);
    }

    [Fact]
    public async Task WalletCompletion_OperatorRefusesTheReceipt_WalletStillGetsIt()
    {
        Operator.ReceiptStatus = StatusCodes.Status500InternalServerError;
        var order = await Store.PlaceOrderAsync(TestStore.Books, ("book-1", 1));

        var receipt = await Store.PayAsync(order);

        Assert.Equal(receipt, Assert.Single(Operator.Receipts).Receipt);
        Assert.Equal("paid", await Store.OrderStateAsync(order.OrderNo));
    }

    [Fact]
    public async Task OperatorCompletion_ValidNotice_AnswersTheReceiptAndForwardsNothing()
    {
        var order = await Store.PlaceOrderAsync(TestStore.Books, ("book-2", 1));
        var notice = TestStore.NoticeFor(order);

        using var response = await Store.CompleteAsOperatorAsync(Operator.Sign(notice));
        var delivery = await TestStore.ReadAsync<ReceiptDelivery>(response);

        var receipt = SignedMessage.Verify<Receipt>(delivery.Receipt, Store.Keys.SetFor(TestStore.Books), MessageTypes.Receipt, out _);
        Assert.Equal(notice.SettlementId, receipt?.SettlementId);
        Assert.Empty(Operator.Receipts);
        Assert.Equal("paid", await Store.OrderStateAsync(order.OrderNo));
    }

    [Fact]
    public async Task Completion_SameNoticeTwice_SameReceipt()
    {
        var order = await Store.PlaceOrderAsync(TestStore.Books, ("book-1", 2));
        var signedNotice = Operator.Sign(TestStore.NoticeFor(order));

        using var first = await Store.CompleteAsOperatorAsync(signedNotice);
        using var second = await Store.CompleteAsWalletAsync(order.OrderNo, signedNotice);
        using var third = await Store.CompleteAsWalletAsync(order.OrderNo, signedNotice);

        var receipt = (await TestStore.ReadAsync<ReceiptDelivery>(first)).Receipt;
        Assert.Equal(receipt, (await TestStore.ReadAsync<ReceiptDelivery>(second)).Receipt);
        Assert.Equal(receipt, (await TestStore.ReadAsync<ReceiptDelivery>(third)).Receipt);
        // Every wallet delivery forwards the receipt again, so a lost forward is retried with it.
        Assert.Equal([receipt, receipt], Operator.Receipts.Select(r => r.Receipt));
    }

    [Fact]
    public async Task Completion_SameSettlementSignedAgain_SameReceipt()
    {
        var order = await Store.PlaceOrderAsync(TestStore.Books, ("book-1", 1));
        var notice = TestStore.NoticeFor(order);

        var receipt = (await TestStore.ReadAsync<ReceiptDelivery>(await Store.CompleteAsOperatorAsync(Operator.Sign(notice)))).Receipt;
        // ECDSA signatures differ each time: a second signature over the same settlement is another string.
        using var again = await Store.CompleteAsOperatorAsync(Operator.Sign(notice));

        Assert.Equal(receipt, (await TestStore.ReadAsync<ReceiptDelivery>(again)).Receipt);
    }

    [Fact]
    public async Task Completion_SameNoticeAtOnce_OneReceipt()
    {
        var order = await Store.PlaceOrderAsync(TestStore.Books, ("book-1", 1));
        var signedNotice = Operator.Sign(TestStore.NoticeFor(order));

        var responses = await Task.WhenAll(Enumerable.Range(0, 8).Select(_ => Store.CompleteAsOperatorAsync(signedNotice)));
        var receipts = new HashSet<string>(StringComparer.Ordinal);
        foreach (var response in responses)
        {
            receipts.Add((await TestStore.ReadAsync<ReceiptDelivery>(response)).Receipt);
            response.Dispose();
        }

        Assert.Single(receipts);
    }

    [Fact]
    public async Task Completion_AnotherSettlementForAPaidOrder_IsConflictAndKeepsTheFirst()
    {
        var order = await Store.PlaceOrderAsync(TestStore.Books, ("book-1", 1));
        var receipt = await Store.PayAsync(order);

        using var response = await Store.CompleteAsOperatorAsync(Operator.Sign(TestStore.NoticeFor(order)));

        await TestStore.AssertProblemAsync(response, HttpStatusCode.Conflict, "completion.conflict");
        using var download = await Store.DownloadAsync(order.OrderNo, receipt);
        Assert.Equal(HttpStatusCode.OK, download.StatusCode);
    }

    [Fact]
    public async Task Completion_SettlementThatPaidAnotherOrder_IsConflictAndOrderStaysUnpaid()
    {
        var first = await Store.PlaceOrderAsync(TestStore.Books, ("book-1", 1));
        var second = await Store.PlaceOrderAsync(TestStore.Books, ("book-1", 1));
        var settlementId = Guid.NewGuid();
        await Store.PayAsync(first, settlementId);

        using var response = await Store.CompleteAsOperatorAsync(Operator.Sign(TestStore.NoticeFor(second, settlementId)));

        await TestStore.AssertProblemAsync(response, HttpStatusCode.Conflict, "completion.conflict");
        Assert.Equal("billed", await Store.OrderStateAsync(second.OrderNo));
    }

    public static TheoryData<string, JsonNode?> TamperedMembers => new()
    {
        { "orderNo", "test-mall-000002" },
        { "storeId", "tunes" },
        { "mallId", null },
        { "amount", new JsonObject { ["minorUnits"] = 1, ["currency"] = "EUR" } },
        { "billDigest", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA" },
        { "settlementId", Guid.NewGuid().ToString() },
        { "cardMasked", "6099********9999" },
        { "cardCounter", 8 },
    };

    [Theory]
    [MemberData(nameof(TamperedMembers))]
    public async Task Completion_PayloadChangedAfterSigning_IsRefusedAndOrderStaysUnpaid(string member, JsonNode? value)
    {
        var order = await Store.PlaceOrderAsync(TestStore.Books, ("book-1", 1));
        await Store.PlaceOrderAsync(TestStore.Books, ("book-1", 1));
        var signedNotice = Operator.Sign(TestStore.NoticeFor(order));
        var tampered = ChangePayload(signedNotice, member, value);

        using var fromOperator = await Store.CompleteAsOperatorAsync(tampered);
        using var fromWallet = await Store.CompleteAsWalletAsync(order.OrderNo, tampered);

        await TestStore.AssertProblemAsync(fromOperator, HttpStatusCode.UnprocessableEntity, "completion.signature_invalid");
        await TestStore.AssertProblemAsync(fromWallet, HttpStatusCode.UnprocessableEntity, "completion.signature_invalid");
        Assert.Equal("billed", await Store.OrderStateAsync(order.OrderNo));
        Assert.Empty(Operator.Receipts);
    }

    [Fact]
    public async Task Completion_HighSTwinOfTheOperatorsSignature_IsRefusedAndTheGenuineNoticePays()
    {
        var order = await Store.PlaceOrderAsync(TestStore.Books, ("book-1", 1));
        var signedNotice = Operator.Sign(TestStore.NoticeFor(order));

        using var fromOperator = await Store.CompleteAsOperatorAsync(SignatureTwin.Of(signedNotice));
        using var fromWallet = await Store.CompleteAsWalletAsync(order.OrderNo, SignatureTwin.Of(signedNotice));

        Assert.Contains("signature.high_s", await TestStore.AssertProblemAsync(fromOperator, HttpStatusCode.UnprocessableEntity, "completion.signature_invalid"), StringComparison.Ordinal);
        Assert.Contains("signature.high_s", await TestStore.AssertProblemAsync(fromWallet, HttpStatusCode.UnprocessableEntity, "completion.signature_invalid"), StringComparison.Ordinal);
        Assert.Equal("billed", await Store.OrderStateAsync(order.OrderNo));
        Assert.Empty(Operator.Receipts);

        using var genuine = await Store.CompleteAsOperatorAsync(signedNotice);
        Assert.Equal(HttpStatusCode.OK, genuine.StatusCode);
        Assert.Equal("paid", await Store.OrderStateAsync(order.OrderNo));
    }

    [Fact]
    public async Task Completion_SignedByAnotherKey_IsRefusedAndOrderStaysUnpaid()
    {
        var order = await Store.PlaceOrderAsync(TestStore.Books, ("book-1", 1));
        using var stranger = EcdsaSigningKey.Generate();

        using var response = await Store.CompleteAsWalletAsync(
            order.OrderNo, SignedMessage.Sign(stranger, TestStore.NoticeFor(order), MessageTypes.CompletionNotice));

        var detail = await TestStore.AssertProblemAsync(response, HttpStatusCode.UnprocessableEntity, "completion.signature_invalid");
        Assert.Contains("unknown_key", detail, StringComparison.Ordinal);
        Assert.Equal("billed", await Store.OrderStateAsync(order.OrderNo));
    }

    [Fact]
    public async Task Completion_AnotherKeyUnderTheOperatorsKid_IsRefusedAndOrderStaysUnpaid()
    {
        var order = await Store.PlaceOrderAsync(TestStore.Books, ("book-1", 1));
        using var forger = new EcdsaSigningKey(System.Security.Cryptography.ECDsa.Create(System.Security.Cryptography.ECCurve.NamedCurves.nistP256), Operator.Key.KeyId);

        using var response = await Store.CompleteAsOperatorAsync(SignedMessage.Sign(forger, TestStore.NoticeFor(order), MessageTypes.CompletionNotice));

        var detail = await TestStore.AssertProblemAsync(response, HttpStatusCode.UnprocessableEntity, "completion.signature_invalid");
        Assert.Contains("signature.invalid", detail, StringComparison.Ordinal);
        Assert.Equal("billed", await Store.OrderStateAsync(order.OrderNo));
    }

    [Fact]
    public async Task Completion_OperatorSignatureOfAnotherMessageType_IsRefused()
    {
        var order = await Store.PlaceOrderAsync(TestStore.Books, ("book-1", 1));

        using var response = await Store.CompleteAsOperatorAsync(SignedMessage.Sign(Operator.Key, TestStore.NoticeFor(order), MessageTypes.Receipt));

        var detail = await TestStore.AssertProblemAsync(response, HttpStatusCode.UnprocessableEntity, "completion.signature_invalid");
        Assert.Contains("wrong_type", detail, StringComparison.Ordinal);
        Assert.Equal("billed", await Store.OrderStateAsync(order.OrderNo));
    }

    [Theory]
    [InlineData("not a jws")]
    [InlineData("a.b.c")]
    [InlineData("")]
    public async Task Completion_NotAJws_IsRefused(string notice)
    {
        var order = await Store.PlaceOrderAsync(TestStore.Books, ("book-1", 1));

        using var response = await Store.CompleteAsWalletAsync(order.OrderNo, notice);

        await TestStore.AssertProblemAsync(response, HttpStatusCode.UnprocessableEntity, "completion.signature_invalid");
        Assert.Equal("billed", await Store.OrderStateAsync(order.OrderNo));
    }

    public static TheoryData<string> OperatorSignedMismatches => ["storeId", "mallId", "noMall", "amount", "currency", "billDigest"];

    [Theory]
    [MemberData(nameof(OperatorSignedMismatches))]
    public async Task Completion_SignedNoticeThatDiffersFromTheOrder_IsMismatchAndOrderStaysUnpaid(string change)
    {
        var order = await Store.PlaceOrderAsync(TestStore.Books, ("book-1", 1));
        var other = await Store.PlaceOrderAsync(TestStore.Books, ("book-1", 1));
        var notice = TestStore.NoticeFor(order);
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

        using var fromWallet = await Store.CompleteAsWalletAsync(order.OrderNo, Operator.Sign(notice));
        using var fromOperator = await Store.CompleteAsOperatorAsync(Operator.Sign(notice));

        await TestStore.AssertProblemAsync(fromWallet, HttpStatusCode.UnprocessableEntity, "completion.mismatch");
        await TestStore.AssertProblemAsync(fromOperator, HttpStatusCode.UnprocessableEntity, "completion.mismatch");
        Assert.Equal("billed", await Store.OrderStateAsync(order.OrderNo));
        Assert.Empty(Operator.Receipts);
    }

    [Fact]
    public async Task Completion_NoticeWithAnotherOrdersAmount_IsMismatch()
    {
        var cheap = await Store.PlaceOrderAsync(TestStore.Books, ("book-1", 1));
        var dear = await Store.PlaceOrderAsync(TestStore.Books, ("book-2", 4));

        using var response = await Store.CompleteAsWalletAsync(cheap.OrderNo, Operator.Sign(TestStore.NoticeFor(cheap) with { Amount = dear.Bill.Amount }));

        var detail = await TestStore.AssertProblemAsync(response, HttpStatusCode.UnprocessableEntity, "completion.mismatch");
        Assert.Contains("amount", detail, StringComparison.Ordinal);
        Assert.Equal("billed", await Store.OrderStateAsync(cheap.OrderNo));
        Assert.Equal("billed", await Store.OrderStateAsync(dear.OrderNo));
    }

    [Fact]
    public async Task WalletCompletion_NoticeOfAnotherOrder_IsMismatchAndNeitherIsPaid()
    {
        var first = await Store.PlaceOrderAsync(TestStore.Books, ("book-1", 1));
        var second = await Store.PlaceOrderAsync(TestStore.Books, ("book-1", 1));

        using var response = await Store.CompleteAsWalletAsync(first.OrderNo, Operator.Sign(TestStore.NoticeFor(second)));

        await TestStore.AssertProblemAsync(response, HttpStatusCode.UnprocessableEntity, "completion.mismatch");
        Assert.Equal("billed", await Store.OrderStateAsync(first.OrderNo));
        Assert.Equal("billed", await Store.OrderStateAsync(second.OrderNo));
    }

    [Fact]
    public async Task OperatorCompletion_UnknownOrder_IsNotFound()
    {
        var order = await Store.PlaceOrderAsync(TestStore.Books, ("book-1", 1));

        using var response = await Store.CompleteAsOperatorAsync(Operator.Sign(TestStore.NoticeFor(order) with { OrderNo = "test-mall-424242" }));

        await TestStore.AssertProblemAsync(response, HttpStatusCode.NotFound, "order.not_found");
    }

    [Fact]
    public async Task Completion_MalformedBody_IsRefusedAsMalformed()
    {
        var order = await Store.PlaceOrderAsync(TestStore.Books, ("book-1", 1));
        using var content = new StringContent("""{"completionNotice":42}""", Encoding.UTF8, "application/json");

        using var response = await Store.Http.PostAsync(new Uri($"/v1/orders/{order.OrderNo}/completion", UriKind.Relative), content);

        await TestStore.AssertProblemAsync(response, HttpStatusCode.BadRequest, "request.malformed");
    }

    [Fact]
    public async Task Completion_OperatorUnreachable_IsServiceUnavailableAndOrderStaysUnpaid()
    {
        var order = await Store.PlaceOrderAsync(TestStore.Books, ("book-1", 1));
        var signedNotice = Operator.Sign(TestStore.NoticeFor(order));
        await Operator.StopAsync();

        using var response = await Store.CompleteAsWalletAsync(order.OrderNo, signedNotice);

        await TestStore.AssertProblemAsync(response, HttpStatusCode.ServiceUnavailable, "operator.unavailable");
        Assert.Equal("billed", await Store.OrderStateAsync(order.OrderNo));
    }

    /// <summary>Replaces one member of a signed notice's payload, keeping header and signature.</summary>
    internal static string ChangePayload(string compact, string member, JsonNode? value)
    {
        var parts = compact.Split('.');
        var payload = JsonNode.Parse(Base64Url.DecodeFromChars(parts[1]))!.AsObject();
        Assert.True(payload.ContainsKey(member), $"The notice has no member '{member}'.");
        Assert.NotEqual(payload[member]?.ToJsonString(), value?.ToJsonString());
        payload[member] = value?.DeepClone();
        parts[1] = Base64Url.EncodeToString(Encoding.UTF8.GetBytes(payload.ToJsonString()));
        return string.Join('.', parts);
    }
}

/// <summary>The operator's key set cache, for completion and void notices, on a clock the test moves.</summary>
public sealed class OperatorKeyCacheTest : IAsyncLifetime
{
    private readonly ManualTime _time = new(DateTimeOffset.UtcNow);

    private FakeOperator Operator { get; set; } = null!;

    private TestStore Store { get; set; } = null!;

    public async Task InitializeAsync()
    {
        Operator = await FakeOperator.StartAsync();
        Store = await TestStore.StartAsync(Operator, time: _time);
    }

    public async Task DisposeAsync()
    {
        await Store.DisposeAsync();
        await Operator.DisposeAsync();
    }

    [Fact]
    public async Task UnknownKid_FetchesAtMostOncePerThirtySeconds()
    {
        var order = await Store.PlaceOrderAsync(TestStore.Books, ("book-1", 1));
        await Store.PayAsync(order);
        Assert.Equal(1, Operator.JwksFetches);

        using var stranger = EcdsaSigningKey.Generate();
        var forged = SignedMessage.Sign(stranger, TestStore.NoticeFor(order), MessageTypes.CompletionNotice);
        for (var i = 0; i < 5; i++)
        {
            using var refused = await Store.CompleteAsOperatorAsync(forged);
            await TestStore.AssertProblemAsync(refused, HttpStatusCode.UnprocessableEntity, "completion.signature_invalid");
        }

        // The first unknown kid may fetch; the next ones within the refetch interval may not.
        Assert.Equal(1, Operator.JwksFetches);

        _time.Advance(OperatorKeys.RefetchIntervalMin - TimeSpan.FromSeconds(1));
        using (await Store.CompleteAsOperatorAsync(forged))
        {
            Assert.Equal(1, Operator.JwksFetches);
        }

        _time.Advance(TimeSpan.FromSeconds(2));
        using (await Store.CompleteAsOperatorAsync(forged))
        {
            Assert.Equal(2, Operator.JwksFetches);
        }
    }

    /// <summary>
    /// The operator retired its old key (docs/operations.md, "Rotating keys"): a notice under it is
    /// refused once the store's copy of the key set is older than its maximum age and fetched again,
    /// although the store had seen the kid before.
    /// </summary>
    [Fact]
    public async Task RetiredKey_KnownKid_RefusedOnceTheKeySetIsFetchedAgainAfterItsMaxAge()
    {
        var first = await Store.PlaceOrderAsync(TestStore.Books, ("book-1", 1));
        await Store.PayAsync(first);
        var old = Operator.Key;
        Operator.RotateKey();
        Operator.RetireKey(old);
        var second = await Store.PlaceOrderAsync(TestStore.Books, ("book-1", 1));
        var notice = SignedMessage.Sign(old, TestStore.NoticeFor(second), MessageTypes.CompletionNotice);

        _time.Advance(OpenPurse.Store.Operator.OperatorKeys.MaxAge);
        using var refused = await Store.CompleteAsOperatorAsync(notice);

        await TestStore.AssertProblemAsync(refused, HttpStatusCode.UnprocessableEntity, "completion.signature_invalid");
        Assert.Equal(2, Operator.JwksFetches);
    }

    [Fact]
    public async Task RotatedKey_WithinThirtySeconds_IsAcceptedAfterTheWindow()
    {
        var first = await Store.PlaceOrderAsync(TestStore.Books, ("book-1", 1));
        await Store.PayAsync(first);
        Operator.RotateKey();
        var second = await Store.PlaceOrderAsync(TestStore.Books, ("book-1", 1));
        var notice = Operator.Sign(TestStore.NoticeFor(second));

        // The fetch just made knows no new key, and the window holds: refused for now...
        using (var refused = await Store.CompleteAsOperatorAsync(notice))
        {
            await TestStore.AssertProblemAsync(refused, HttpStatusCode.UnprocessableEntity, "completion.signature_invalid");
        }

        // ...and accepted once the window has passed, when the store fetches again.
        _time.Advance(TimeSpan.FromSeconds(31));
        using var accepted = await Store.CompleteAsOperatorAsync(notice);
        Assert.Equal(HttpStatusCode.OK, accepted.StatusCode);
        Assert.Equal(2, Operator.JwksFetches);
    }

    [Fact]
    public async Task Void_FirstMessageFromTheOperator_FetchesItsKeys()
    {
        var order = await Store.PlaceOrderAsync(TestStore.Books, ("book-1", 1));
        Assert.Equal(0, Operator.JwksFetches);

        using var response = await Store.VoidAsOperatorAsync(Operator.Sign(TestStore.VoidFor(order)));

        Assert.Equal(HttpStatusCode.NoContent, response.StatusCode);
        Assert.Equal(1, Operator.JwksFetches);
    }

    [Fact]
    public async Task Void_RotatedKey_IsRefusedWithinThirtySecondsAndAcceptedAfter()
    {
        var paid = await Store.PlaceOrderAsync(TestStore.Books, ("book-1", 1));
        await Store.PayAsync(paid);
        Operator.RotateKey();
        var order = await Store.PlaceOrderAsync(TestStore.Books, ("book-1", 1));
        var signed = Operator.Sign(TestStore.VoidFor(order));

        // The fetch just made knows no new key, and the window holds: refused for now (the operator retries)...
        using (var refused = await Store.VoidAsOperatorAsync(signed))
        {
            var detail = await TestStore.AssertProblemAsync(refused, HttpStatusCode.UnprocessableEntity, "void.signature_invalid");
            Assert.Contains("unknown_key", detail, StringComparison.Ordinal);
        }

        Assert.Equal("billed", await Store.OrderStateAsync(order.OrderNo));

        // ...and accepted once the window has passed, when the store fetches again.
        _time.Advance(TimeSpan.FromSeconds(31));
        using var accepted = await Store.VoidAsOperatorAsync(signed);
        Assert.Equal(HttpStatusCode.NoContent, accepted.StatusCode);
        Assert.Equal(2, Operator.JwksFetches);
        Assert.Equal("cancelled", await Store.OrderStateAsync(order.OrderNo));
    }
}
