using System.Buffers.Text;
using System.Net;
using System.Net.Http.Json;
using System.Security.Cryptography;
using OpenPurse.Operator.Issuance;
using OpenPurse.Protocol;
using OpenPurse.Protocol.Apdu;
using OpenPurse.Protocol.Jose;
using OpenPurse.Protocol.Messages;
using OpenPurse.Protocol.Purse;

namespace OpenPurse.Operator.Tests;

/// <summary>The operator's settlement API over real HTTP: each check of ST9–ST19, and that a refusal changes nothing.</summary>
public sealed class SettlementApiTest
{
    private static Money Eur(long minor) => new(minor, Currency.Eur);

    [Fact]
    public async Task Purchase_SignedProfile_CompletesWithSig2AndSig3()
    {
        await using var kit = await OperatorKit.StartAsync();
        var bill = kit.Bill(Eur(1_250));

        var started = await kit.StartOkAsync(bill);
        var info = SignedMessage.Verify<SettlementInfo>(started.SettlementInfo, kit.OperatorKeys, MessageTypes.SettlementInfo, out var error);
        Assert.NotNull(info);
        Assert.Equal((started.SettlementId, Eur(10_000), Eur(1_250), SignedMessage.Digest(bill)), (info.SettlementId, info.Balance, info.Amount, info.BillDigest));
        Assert.Equal(Base64Url.EncodeToString(SHA256.HashData(Convert.FromBase64String(started.Debit))), info.DebitDigest);

        var answer = kit.RunCard(started, bill);
        Assert.Equal(StatusWord.Ok, answer.Status);
        using var completed = await kit.CompleteAsync(started.SettlementId, answer);
        Assert.Equal(HttpStatusCode.OK, completed.StatusCode);
        var body = (await completed.Content.ReadFromJsonAsync<CompleteSettlementResponse>(ProtocolJson.Options))!;
        var acn = SignedMessage.Verify<CompletionNotice>(body.CompletionNotice, kit.OperatorKeys, MessageTypes.CompletionNotice, out _);

        Assert.NotNull(acn);
        Assert.Equal((started.SettlementId, Eur(1_250), "shop", SignedMessage.Digest(bill), 2u), (acn.SettlementId, acn.Amount, acn.StoreId, acn.BillDigest, acn.CardCounter));
        Assert.DoesNotContain(kit.Card.CardId.Digits, acn.CardMasked);
        Assert.Null(body.Receipt); // this store registered no address for completion notices
        Assert.Equal(Eur(8_750), kit.Balance());
        var view = await kit.Http.GetFromJsonAsync<SettlementView>($"/v1/settlements/{started.SettlementId}", ProtocolJson.Options);
        Assert.Equal("completed", view!.State);
    }

    [Fact]
    public async Task Purchase_LeanProfile_HasNoSig2()
    {
        await using var kit = await OperatorKit.StartAsync();
        var bill = kit.Bill(Eur(300));

        var started = await kit.StartOkAsync(bill, SettlementProfile.Lean);
        using var completed = await kit.CompleteAsync(started.SettlementId, kit.RunCard(started, bill));

        Assert.Null(started.SettlementInfo);
        Assert.Equal(HttpStatusCode.OK, completed.StatusCode);
        Assert.Equal(Eur(9_700), kit.Balance());
    }

    [Fact]
    public async Task Start_BillWithOneCharacterChanged_RefusedAndTheGenuineBillStillWorks()
    {
        await using var kit = await OperatorKit.StartAsync();
        var bill = kit.Bill(Eur(500));
        var parts = bill.Split('.');
        var payload = Base64Url.DecodeFromChars(parts[1]);
        var tamperedPayload = System.Text.Encoding.UTF8.GetBytes(System.Text.Encoding.UTF8.GetString(payload).Replace("\"minorUnits\":500", "\"minorUnits\":5", StringComparison.Ordinal));
        var tampered = parts[0] + "." + Base64Url.EncodeToString(tamperedPayload) + "." + parts[2];

        using var refused = await kit.StartAsync(tampered);

        Assert.Equal(HttpStatusCode.UnprocessableEntity, refused.StatusCode);
        Assert.Equal("bill.signature_invalid", await OperatorKit.CodeOf(refused));
        var started = await kit.StartOkAsync(bill);
        Assert.NotEqual(Guid.Empty, started.SettlementId);
    }

    [Fact]
    public async Task Start_BillSignedByAnotherStoresKey_Refused()
    {
        await using var kit = await OperatorKit.StartAsync();
        using var otherKey = EcdsaSigningKey.Generate();
        await kit.RegisterStoreAsync("other-shop", otherKey);

        using var refused = await kit.StartAsync(kit.Bill(Eur(500), key: otherKey, storeId: "shop"));

        Assert.Equal("bill.signature_invalid", await OperatorKit.CodeOf(refused));
    }

    [Fact]
    public async Task Start_BillSignedByAnUnregisteredKey_Refused()
    {
        await using var kit = await OperatorKit.StartAsync();
        using var strangerKey = EcdsaSigningKey.Generate();

        using var refused = await kit.StartAsync(kit.Bill(Eur(500), key: strangerKey));

        Assert.Equal("bill.unknown_store", await OperatorKit.CodeOf(refused));
    }

    [Fact]
    public async Task Start_ExpiredBill_Refused()
    {
        await using var kit = await OperatorKit.StartAsync();
        var bill = kit.Bill(Eur(500), issuedAt: DateTimeOffset.UtcNow.AddMinutes(-20), expiresAt: DateTimeOffset.UtcNow.AddSeconds(-1));

        using var refused = await kit.StartAsync(bill);

        Assert.Equal("bill.expired", await OperatorKit.CodeOf(refused));
    }

    [Fact]
    public async Task Start_SameBillTwice_RefusedAsReplay()
    {
        await using var kit = await OperatorKit.StartAsync();
        var bill = kit.Bill(Eur(500));
        await kit.StartOkAsync(bill);

        using var refused = await kit.StartAsync(bill);

        Assert.Equal(HttpStatusCode.Conflict, refused.StatusCode);
        Assert.Equal("bill.replayed", await OperatorKit.CodeOf(refused));
    }

    [Fact]
    public async Task Start_NewBillReusingAnOrderNumber_RefusedAsReplay()
    {
        await using var kit = await OperatorKit.StartAsync();
        await kit.StartOkAsync(kit.Bill(Eur(500), orderNo: "shop-000777"));

        using var refused = await kit.StartAsync(kit.Bill(Eur(400), orderNo: "shop-000777"));

        Assert.Equal("bill.replayed", await OperatorKit.CodeOf(refused));
    }

    [Fact]
    public async Task Start_MoreThanTheBalance_RefusedAndTheBillStaysUsable()
    {
        await using var kit = await OperatorKit.StartAsync(loadMinor: 1_000);
        var bill = kit.Bill(Eur(1_001));

        using var refused = await kit.StartAsync(bill);
        Assert.Equal("card.insufficient_funds", await OperatorKit.CodeOf(refused));

        await kit.LoadAsync(1);
        var started = await kit.StartOkAsync(bill);
        using var completed = await kit.CompleteAsync(started.SettlementId, kit.RunCard(started, bill));
        Assert.Equal(HttpStatusCode.OK, completed.StatusCode);
        Assert.Equal(Eur(0), kit.Balance());
    }

    [Fact]
    public async Task Start_BlockedCard_Refused()
    {
        await using var kit = await OperatorKit.StartAsync();
        await kit.Service<CardIssuer>().BlockAsync(kit.Card.CardId, CancellationToken.None);

        using var refused = await kit.StartAsync(kit.Bill(Eur(500)));

        Assert.Equal(HttpStatusCode.Forbidden, refused.StatusCode);
        Assert.Equal("card.blocked", await OperatorKit.CodeOf(refused));
    }

    [Fact]
    public async Task Start_GreetingMadeForAnotherBill_RefusedAsNotAuthentic()
    {
        await using var kit = await OperatorKit.StartAsync();
        var greetingOfFirst = kit.Greeting(kit.Bill(Eur(100)));

        using var refused = await kit.StartAsync(kit.Bill(Eur(100)), greeting: greetingOfFirst);

        Assert.Equal("card.authentication_failed", await OperatorKit.CodeOf(refused));
    }

    [Fact]
    public async Task Start_GreetingWithRaisedBalance_RefusedAsNotAuthentic()
    {
        await using var kit = await OperatorKit.StartAsync(loadMinor: 100);
        var bill = kit.Bill(Eur(5_000));
        var greeting = Convert.FromBase64String(kit.Greeting(bill));
        greeting[^10] = 0x7F; // the EUR balance's high byte, before the 8-byte status MAC

        using var refused = await kit.StartAsync(bill, greeting: Convert.ToBase64String(greeting));

        Assert.Equal("card.authentication_failed", await OperatorKit.CodeOf(refused));
    }

    [Fact]
    public async Task Complete_TamperedCompletionNotice_RefusedThenTheGenuineOneCompletes()
    {
        await using var kit = await OperatorKit.StartAsync();
        var bill = kit.Bill(Eur(700));
        var started = await kit.StartOkAsync(bill);
        var answer = kit.RunCard(started, bill);
        var tamperedData = answer.Data.ToArray();
        tamperedData[3] ^= 0x01;

        using var refused = await kit.CompleteAsync(started.SettlementId, new ResponseApdu(tamperedData, answer.Status));
        Assert.Equal("card.answer_invalid", await OperatorKit.CodeOf(refused));
        var view = await kit.Http.GetFromJsonAsync<SettlementView>($"/v1/settlements/{started.SettlementId}", ProtocolJson.Options);
        Assert.Equal("authorized", view!.State);

        using var completed = await kit.CompleteAsync(started.SettlementId, answer);
        Assert.Equal(HttpStatusCode.OK, completed.StatusCode);
    }

    [Fact]
    public async Task Complete_SameAnswerAgain_ReturnsTheSameNotice_AnotherAnswerIsAReplay()
    {
        await using var kit = await OperatorKit.StartAsync();
        var bill = kit.Bill(Eur(700));
        var started = await kit.StartOkAsync(bill);
        var answer = kit.RunCard(started, bill);
        using var first = await kit.CompleteAsync(started.SettlementId, answer);
        var firstBody = await first.Content.ReadFromJsonAsync<CompleteSettlementResponse>(ProtocolJson.Options);

        using var again = await kit.CompleteAsync(started.SettlementId, answer);
        var againBody = await again.Content.ReadFromJsonAsync<CompleteSettlementResponse>(ProtocolJson.Options);
        Assert.Equal(firstBody!.CompletionNotice, againBody!.CompletionNotice);

        // The completion notice of another purchase, presented for this settlement.
        var otherBill = kit.Bill(Eur(100));
        var other = await kit.StartOkAsync(otherBill);
        using var replayed = await kit.CompleteAsync(started.SettlementId, kit.RunCard(other, otherBill));
        Assert.Equal("settlement.replayed", await OperatorKit.CodeOf(replayed));
        Assert.Equal(Eur(10_000 - 700 - 100), kit.Balance());
    }

    [Fact]
    public async Task Complete_AnswerOfAnotherSettlement_Refused()
    {
        await using var kit = await OperatorKit.StartAsync();
        var firstBill = kit.Bill(Eur(100));
        var first = await kit.StartOkAsync(firstBill);
        var firstAnswer = kit.RunCard(first, firstBill);
        using var firstDone = await kit.CompleteAsync(first.SettlementId, firstAnswer);
        var secondBill = kit.Bill(Eur(200));
        var second = await kit.StartOkAsync(secondBill);

        using var refused = await kit.CompleteAsync(second.SettlementId, firstAnswer);

        Assert.Equal("card.answer_invalid", await OperatorKit.CodeOf(refused));
    }

    [Fact]
    public async Task Start_CardWithAnAbandonedSettlement_VoidsItWhenTheCardNeverRanTheDebit()
    {
        await using var kit = await OperatorKit.StartAsync();
        var abandonedBill = kit.Bill(Eur(100));
        var abandoned = await kit.StartOkAsync(abandonedBill); // the person declined: nothing reached the card

        var bill = kit.Bill(Eur(200));
        var started = await kit.StartOkAsync(bill);
        using var completed = await kit.CompleteAsync(started.SettlementId, kit.RunCard(started, bill));

        Assert.Equal(HttpStatusCode.OK, completed.StatusCode);
        var view = await kit.Http.GetFromJsonAsync<SettlementView>($"/v1/settlements/{abandoned.SettlementId}", ProtocolJson.Options);
        Assert.Equal("voided", view!.State);
        Assert.Equal(Eur(9_800), kit.Balance());
    }

    [Fact]
    public async Task Start_CardThatRanAnUnreportedDebit_IsBusy()
    {
        await using var kit = await OperatorKit.StartAsync();
        var lostBill = kit.Bill(Eur(100));
        var lost = await kit.StartOkAsync(lostBill);
        Assert.Equal(StatusWord.Ok, kit.RunCard(lost, lostBill).Status); // the completion notice never reaches the operator

        using var refused = await kit.StartAsync(kit.Bill(Eur(200)));

        Assert.Equal("card.busy", await OperatorKit.CodeOf(refused));
    }

    [Fact]
    public async Task Start_MalformedBody_AnswersProblemDetails()
    {
        await using var kit = await OperatorKit.StartAsync();

        using var response = await kit.Http.PostAsync("/v1/settlements", new StringContent("{\"bill\": 5}", System.Text.Encoding.UTF8, "application/json"));

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Equal("request.malformed", await OperatorKit.CodeOf(response));
    }

    [Fact]
    public async Task Complete_UnknownSettlement_NotFound()
    {
        await using var kit = await OperatorKit.StartAsync();

        using var response = await kit.CompleteAsync(Guid.NewGuid(), ResponseApdu.Of(StatusWord.Ok));

        Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
        Assert.Equal("settlement.not_found", await OperatorKit.CodeOf(response));
    }

    [Fact]
    public async Task Admin_WithoutToken_Unauthorized()
    {
        await using var kit = await OperatorKit.StartAsync(loadMinor: 0);

        using var response = await kit.Http.PostAsJsonAsync("/v1/admin/stores", new { storeId = "x" });

        Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
        Assert.Equal("admin.unauthorized", await OperatorKit.CodeOf(response));
    }
}
