using System.Buffers.Text;
using System.Net;
using System.Net.Http.Json;
using System.Security.Cryptography;
using Dapper;
using OpenPurse.Operator.Issuance;
using OpenPurse.Operator.Registry;
using OpenPurse.Protocol;
using OpenPurse.Protocol.Apdu;
using OpenPurse.Protocol.Jose;
using OpenPurse.Protocol.Messages;
using OpenPurse.Protocol.Purse;
using OpenPurse.Testing;

namespace OpenPurse.Operator.Tests;

/// <summary>
/// The operator's settlement API over real HTTP: each check of ST9–ST19, that a refusal changes
/// nothing, and that concurrent settlements keep the ledger whole. Every test runs on each registry
/// engine (the subclasses at the end of this file).
/// </summary>
public abstract class SettlementApiTest
{
    /// <summary>Cards settling at the same moment in the concurrency test.</summary>
    private const int ParallelCards = 20;

    /// <summary>Rounds of racing starts on one card: more rounds, more interleavings seen.</summary>
    private const int RaceRounds = 5;

    private static Money Eur(long minor) => new(minor, Currency.Eur);

    /// <summary>An operator kit on this class's engine.</summary>
    private protected abstract Task<OperatorKit> StartKitAsync(long loadMinor = 10_000);

    [SuiteFact]
    public async Task Purchase_SignedProfile_CompletesWithSig2AndSig3()
    {
        await using var kit = await StartKitAsync();
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
        var view = await kit.GetSettlementAsync(started);
        Assert.Equal("completed", view!.State);
    }

    [SuiteFact]
    public async Task SettlementRead_OnlyByItsStoreOrWallet()
    {
        await using var kit = await StartKitAsync();
        var bill = kit.Bill(Eur(400));
        var started = await kit.StartOkAsync(bill);
        (await kit.CompleteAsync(started.SettlementId, kit.RunCard(started, bill))).Dispose();
        var other = kit.Bill(Eur(100));
        var otherStarted = await kit.StartOkAsync(other);
        using var stranger = EcdsaSigningKey.Generate();
        var now = kit.Time.GetUtcNow();

        // The id alone was enough before: the ACN and the receipt, and with them the download, to anyone.
        Assert.Equal("settlement.proof_required", await ReadCodeAsync(null, null));

        // Each proof that does not hold is answered as an unknown id.
        string[] wrong =
        [
            $"{SettlementReadProof.WalletHeader}={SettlementReadProof.ForWallet(otherStarted)}",
            $"{SettlementReadProof.WalletHeader}={SettlementReadProof.ForWallet(started)[1..]}",
            $"{SettlementReadProof.WalletHeader}=not base64url!",
            $"{SettlementReadProof.StoreHeader}={SettlementReadProof.ForStore(stranger, started.SettlementId, "shop", now)}",
            $"{SettlementReadProof.StoreHeader}={SettlementReadProof.ForStore(kit.StoreKey, otherStarted.SettlementId, "shop", now)}",
            $"{SettlementReadProof.StoreHeader}={SettlementReadProof.ForStore(kit.StoreKey, started.SettlementId, "mall", now)}",
            $"{SettlementReadProof.StoreHeader}={SettlementReadProof.ForStore(kit.StoreKey, started.SettlementId, "shop", now.AddMinutes(-6))}",
            $"{SettlementReadProof.StoreHeader}={SettlementReadProof.ForStore(kit.StoreKey, started.SettlementId, "shop", now.AddMinutes(3))}",
            $"{SettlementReadProof.StoreHeader}={Jws.Sign(kit.StoreKey, ProtocolJson.ToUtf8(new SettlementQuery(started.SettlementId, "shop", now)), MessageTypes.Bill)}",
        ];
        foreach (var header in wrong)
        {
            var (name, value) = (header[..header.IndexOf('=')], header[(header.IndexOf('=') + 1)..]);
            Assert.Equal("settlement.not_found", await ReadCodeAsync(name, value));
        }

        Assert.Equal("completed", (await kit.GetSettlementAsync(started)).State);
        var view = await kit.ViewAsync(started.SettlementId);
        Assert.Equal(("completed", "shop"), (view.State, view.StoreId));
        Assert.NotNull(view.CompletionNotice);

        async Task<string> ReadCodeAsync(string? header, string? value)
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, $"/v1/settlements/{started.SettlementId}");
            if (header is not null)
            {
                request.Headers.TryAddWithoutValidation(header, value);
            }

            using var response = await kit.Http.SendAsync(request);
            return await OperatorKit.CodeOf(response);
        }
    }

    [SuiteFact]
    public async Task Purchase_LeanProfile_HasNoSig2()
    {
        await using var kit = await StartKitAsync();
        var bill = kit.Bill(Eur(300));

        var started = await kit.StartOkAsync(bill, SettlementProfile.Lean);
        using var completed = await kit.CompleteAsync(started.SettlementId, kit.RunCard(started, bill));

        Assert.Null(started.SettlementInfo);
        Assert.Equal(HttpStatusCode.OK, completed.StatusCode);
        Assert.Equal(Eur(9_700), kit.Balance());
    }

    [SuiteFact]
    public async Task Start_BillWithOneCharacterChanged_RefusedAndTheGenuineBillStillWorks()
    {
        await using var kit = await StartKitAsync();
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

    [SuiteFact]
    public async Task Start_BillSwappedForItsHighSTwin_RefusedAndTheGenuineBillPays()
    {
        await using var kit = await StartKitAsync();
        var bill = kit.Bill(Eur(500));

        using var refused = await kit.StartAsync(SignatureTwin.Of(bill));

        Assert.Equal(HttpStatusCode.UnprocessableEntity, refused.StatusCode);
        Assert.Equal("bill.signature_invalid", await OperatorKit.CodeOf(refused));
        // Nothing was recorded for the twin: the genuine bill is no replay, and pays.
        var started = await kit.StartOkAsync(bill);
        using var completed = await kit.CompleteAsync(started.SettlementId, kit.RunCard(started, bill));
        Assert.Equal(HttpStatusCode.OK, completed.StatusCode);
        Assert.Equal(Eur(9_500), kit.Balance());
    }

    [SuiteFact]
    public async Task Receipt_SwappedForItsHighSTwin_RefusedAndTheGenuineOneIsKept()
    {
        await using var kit = await StartKitAsync();
        var bill = kit.Bill(Eur(500));
        var started = await kit.StartOkAsync(bill);
        using var completed = await kit.CompleteAsync(started.SettlementId, kit.RunCard(started, bill));
        var acnJws = (await completed.Content.ReadFromJsonAsync<CompleteSettlementResponse>(ProtocolJson.Options))!.CompletionNotice;
        var acn = SignedMessage.Verify<CompletionNotice>(acnJws, kit.OperatorKeys, MessageTypes.CompletionNotice, out _)!;
        var receipt = SignedMessage.Sign(kit.StoreKey, new Receipt(acn.SettlementId, acn.OrderNo, acn.StoreId, acn.Amount, SignedMessage.Digest(acnJws), DateTimeOffset.UtcNow), MessageTypes.Receipt);

        using var refused = await kit.Http.PostAsJsonAsync($"/v1/settlements/{started.SettlementId}/receipt", new ReceiptDelivery(SignatureTwin.Of(receipt)), ProtocolJson.Options);
        using var accepted = await kit.Http.PostAsJsonAsync($"/v1/settlements/{started.SettlementId}/receipt", new ReceiptDelivery(receipt), ProtocolJson.Options);

        Assert.Equal(HttpStatusCode.UnprocessableEntity, refused.StatusCode);
        Assert.Equal("receipt.invalid", await OperatorKit.CodeOf(refused));
        Assert.Equal(HttpStatusCode.NoContent, accepted.StatusCode);
        var view = await kit.GetSettlementAsync(started);
        Assert.Equal(receipt, view.Receipt);
    }

    [SuiteFact]
    public async Task Start_BillSignedByAnotherStoresKey_Refused()
    {
        await using var kit = await StartKitAsync();
        using var otherKey = EcdsaSigningKey.Generate();
        await kit.RegisterStoreAsync("other-shop", otherKey);

        using var refused = await kit.StartAsync(kit.Bill(Eur(500), key: otherKey, storeId: "shop"));

        Assert.Equal("bill.signature_invalid", await OperatorKit.CodeOf(refused));
    }

    [SuiteFact]
    public async Task Start_KeyAddedAfterTheStoreWasLookedUp_TakenAtOnce_AndTheMallChangeToo()
    {
        await using var kit = await StartKitAsync();
        await kit.StartOkAsync(kit.Bill(Eur(100))); // the store "shop" and its first key are now kept in memory
        using var newKey = EcdsaSigningKey.Generate();
        await kit.RegisterStoreAsync("shop", newKey, mallId: "new-mall"); // a second key, and a mall

        // The store is looked up again at once, under the new key and the old: the kit's bills name no
        // mall, and the store belongs to one now, so both are refused for naming the wrong mall (where
        // a store kept from before would take the old key's bill, and not know the new key's).
        using var underOldKey = await kit.StartAsync(kit.Bill(Eur(300)));
        Assert.Equal("bill.signature_invalid", await OperatorKit.CodeOf(underOldKey));
        using var underNewKey = await kit.StartAsync(kit.Bill(Eur(200), key: newKey));
        Assert.Equal("bill.signature_invalid", await OperatorKit.CodeOf(underNewKey));
    }

    [SuiteFact]
    public async Task Start_BillSignedByAnUnregisteredKey_Refused()
    {
        await using var kit = await StartKitAsync();
        using var strangerKey = EcdsaSigningKey.Generate();

        using var refused = await kit.StartAsync(kit.Bill(Eur(500), key: strangerKey));

        Assert.Equal("bill.unknown_store", await OperatorKit.CodeOf(refused));
    }

    [SuiteFact]
    public async Task Start_ExpiredBill_Refused()
    {
        await using var kit = await StartKitAsync();
        var bill = kit.Bill(Eur(500), issuedAt: DateTimeOffset.UtcNow.AddMinutes(-20), expiresAt: DateTimeOffset.UtcNow.AddSeconds(-1));

        using var refused = await kit.StartAsync(bill);

        Assert.Equal("bill.expired", await OperatorKit.CodeOf(refused));
    }

    [SuiteFact]
    public async Task Start_SameBillTwice_RefusedAsReplay()
    {
        await using var kit = await StartKitAsync();
        var bill = kit.Bill(Eur(500));
        await kit.StartOkAsync(bill);

        using var refused = await kit.StartAsync(bill);

        Assert.Equal(HttpStatusCode.Conflict, refused.StatusCode);
        Assert.Equal("bill.replayed", await OperatorKit.CodeOf(refused));
    }

    [SuiteFact]
    public async Task Start_NewBillReusingAnOrderNumber_RefusedAsReplay()
    {
        await using var kit = await StartKitAsync();
        await kit.StartOkAsync(kit.Bill(Eur(500), orderNo: "shop-000777"));

        using var refused = await kit.StartAsync(kit.Bill(Eur(400), orderNo: "shop-000777"));

        Assert.Equal("bill.replayed", await OperatorKit.CodeOf(refused));
    }

    [SuiteFact]
    public async Task Start_MoreThanTheBalance_RefusedAndTheBillStaysUsable()
    {
        await using var kit = await StartKitAsync(loadMinor: 1_000);
        var bill = kit.Bill(Eur(1_001));

        using var refused = await kit.StartAsync(bill);
        Assert.Equal("card.insufficient_funds", await OperatorKit.CodeOf(refused));

        await kit.LoadAsync(1);
        var started = await kit.StartOkAsync(bill);
        using var completed = await kit.CompleteAsync(started.SettlementId, kit.RunCard(started, bill));
        Assert.Equal(HttpStatusCode.OK, completed.StatusCode);
        Assert.Equal(Eur(0), kit.Balance());
    }

    [SuiteFact]
    public async Task Start_BlockedCard_Refused()
    {
        await using var kit = await StartKitAsync();
        await kit.Service<CardIssuer>().BlockAsync(kit.Card.CardId, CancellationToken.None);

        using var refused = await kit.StartAsync(kit.Bill(Eur(500)));

        Assert.Equal(HttpStatusCode.Forbidden, refused.StatusCode);
        Assert.Equal("card.blocked", await OperatorKit.CodeOf(refused));
    }

    [SuiteFact]
    public async Task Start_GreetingMadeForAnotherBill_RefusedAsNotAuthentic()
    {
        await using var kit = await StartKitAsync();
        var greetingOfFirst = kit.Greeting(kit.Bill(Eur(100)));

        using var refused = await kit.StartAsync(kit.Bill(Eur(100)), greeting: greetingOfFirst);

        Assert.Equal("card.authentication_failed", await OperatorKit.CodeOf(refused));
    }

    [SuiteFact]
    public async Task Start_GreetingWithRaisedBalance_RefusedAsNotAuthentic()
    {
        await using var kit = await StartKitAsync(loadMinor: 100);
        var bill = kit.Bill(Eur(5_000));
        var greeting = Convert.FromBase64String(kit.Greeting(bill));
        // The EUR balance, 100 minor units as 8 bytes big-endian: its first occurrence is the status's
        // balance (the load record, which holds the same amount, comes after it). Raised by 65,536,
        // past the bill: only the status MAC can tell.
        var balance = greeting.AsSpan().IndexOf((ReadOnlySpan<byte>)[0, 0, 0, 0, 0, 0, 0, 100]);
        Assert.True(balance > 0, "The greeting holds the balance.");
        greeting[balance + 5] = 0x01;

        using var refused = await kit.StartAsync(bill, greeting: Convert.ToBase64String(greeting));

        Assert.Equal("card.authentication_failed", await OperatorKit.CodeOf(refused));
    }

    [SuiteFact]
    public async Task Complete_TamperedCompletionNotice_RefusedThenTheGenuineOneCompletes()
    {
        await using var kit = await StartKitAsync();
        var bill = kit.Bill(Eur(700));
        var started = await kit.StartOkAsync(bill);
        var answer = kit.RunCard(started, bill);
        var tamperedData = answer.Data.ToArray();
        tamperedData[3] ^= 0x01;

        using var refused = await kit.CompleteAsync(started.SettlementId, new ResponseApdu(tamperedData, answer.Status));
        Assert.Equal("card.answer_invalid", await OperatorKit.CodeOf(refused));
        var view = await kit.GetSettlementAsync(started);
        Assert.Equal("authorized", view!.State);

        using var completed = await kit.CompleteAsync(started.SettlementId, answer);
        Assert.Equal(HttpStatusCode.OK, completed.StatusCode);
    }

    [SuiteFact]
    public async Task Complete_SameAnswerAgain_ReturnsTheSameNotice_AnotherAnswerIsAReplay()
    {
        await using var kit = await StartKitAsync();
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

    [SuiteFact]
    public async Task Complete_AnswerOfAnotherSettlement_Refused()
    {
        await using var kit = await StartKitAsync();
        var firstBill = kit.Bill(Eur(100));
        var first = await kit.StartOkAsync(firstBill);
        var firstAnswer = kit.RunCard(first, firstBill);
        using var firstDone = await kit.CompleteAsync(first.SettlementId, firstAnswer);
        var secondBill = kit.Bill(Eur(200));
        var second = await kit.StartOkAsync(secondBill);

        using var refused = await kit.CompleteAsync(second.SettlementId, firstAnswer);

        Assert.Equal("card.answer_invalid", await OperatorKit.CodeOf(refused));
    }

    [SuiteFact]
    public async Task Start_CardWithAnAbandonedSettlement_VoidsItWhenTheCardNeverRanTheDebit()
    {
        await using var kit = await StartKitAsync();
        var abandonedBill = kit.Bill(Eur(100));
        var abandoned = await kit.StartOkAsync(abandonedBill); // the person declined: nothing reached the card

        var bill = kit.Bill(Eur(200));
        var started = await kit.StartOkAsync(bill);
        using var completed = await kit.CompleteAsync(started.SettlementId, kit.RunCard(started, bill));

        Assert.Equal(HttpStatusCode.OK, completed.StatusCode);
        var view = await kit.GetSettlementAsync(abandoned);
        Assert.Equal("voided", view!.State);
        Assert.Equal(Eur(9_800), kit.Balance());
    }

    [SuiteFact]
    public async Task Start_OlderGreetingArrivingLate_DoesNotVoidTheSettlementOfTheCardsLatestSession()
    {
        await using var kit = await StartKitAsync();
        var staleBill = kit.Bill(Eur(200));
        var staleGreeting = kit.Greeting(staleBill); // the card's session n
        var bill = kit.Bill(Eur(100));
        var started = await kit.StartOkAsync(bill); // session n + 1: its debit can still run

        using var refused = await kit.StartAsync(staleBill, greeting: staleGreeting);

        Assert.Equal("card.busy", await OperatorKit.CodeOf(refused));
        using var completed = await kit.CompleteAsync(started.SettlementId, kit.RunCard(started, bill));
        Assert.Equal(HttpStatusCode.OK, completed.StatusCode);
        Assert.Equal(Eur(9_900), kit.Balance());
    }

    [SuiteFact]
    public async Task Start_CardThatRanAnUnreportedDebit_CompletesItFromTheCardsLogThenStarts()
    {
        await using var kit = await StartKitAsync();
        var lostBill = kit.Bill(Eur(100));
        var lost = await kit.StartOkAsync(lostBill);
        var lostAnswer = kit.RunCard(lost, lostBill); // the completion notice never reaches the operator
        Assert.Equal(StatusWord.Ok, lostAnswer.Status);

        var nextBill = kit.Bill(Eur(200));
        var next = await kit.StartOkAsync(nextBill);
        var nextAnswer = kit.RunCard(next, nextBill);

        var view = await kit.GetSettlementAsync(lost);
        Assert.Equal("completed", view!.State);
        Assert.NotNull(SignedMessage.Verify<CompletionNotice>(view.CompletionNotice, kit.OperatorKeys, MessageTypes.CompletionNotice, out _));
        // The lost answer, arriving late, gets the same ACN; the new settlement goes on as usual.
        using var late = await kit.CompleteAsync(lost.SettlementId, lostAnswer);
        Assert.Equal(HttpStatusCode.OK, late.StatusCode);
        Assert.Equal(view.CompletionNotice, (await late.Content.ReadFromJsonAsync<CompleteSettlementResponse>(ProtocolJson.Options))!.CompletionNotice);
        using var completed = await kit.CompleteAsync(next.SettlementId, nextAnswer);
        Assert.Equal(HttpStatusCode.OK, completed.StatusCode);
        Assert.Equal(Eur(9_700), kit.Balance());
        var ledger = await LedgerOf(kit);
        Assert.Equal(2, ledger.SettlementsCompleted);
        Assert.Empty(ledger.UnbalancedEntries);
    }

    [SuiteFact]
    public async Task Start_MalformedBody_AnswersProblemDetails()
    {
        await using var kit = await StartKitAsync();

        using var response = await kit.Http.PostAsync("/v1/settlements", new StringContent("{\"bill\": 5}", System.Text.Encoding.UTF8, "application/json"));

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Equal("request.malformed", await OperatorKit.CodeOf(response));
    }

    [SuiteFact]
    public async Task Complete_UnknownSettlement_NotFound()
    {
        await using var kit = await StartKitAsync();

        using var response = await kit.CompleteAsync(Guid.NewGuid(), ResponseApdu.Of(StatusWord.Ok));

        Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
        Assert.Equal("settlement.not_found", await OperatorKit.CodeOf(response));
    }

    [SuiteFact]
    public async Task Admin_WithoutToken_Unauthorized()
    {
        await using var kit = await StartKitAsync(loadMinor: 0);

        using var response = await kit.Admin.PostAsJsonAsync("v1/admin/stores", new { storeId = "x" });

        Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
        Assert.Equal("admin.unauthorized", await OperatorKit.CodeOf(response));
    }

    [SuiteFact]
    public async Task Purchases_ManyCardsInParallel_AllCompleteAndTheJournalBalances()
    {
        await using var kit = await StartKitAsync(loadMinor: 0);
        var readers = new List<OperatorKit.CardReader>();
        for (var i = 0; i < ParallelCards; i++)
        {
            readers.Add(await kit.IssueCardAsync(loadMinor: 5_000));
        }

        var bills = readers.Select((_, i) => kit.Bill(Eur(100 + i))).ToArray();

        var outcomes = await Task.WhenAll(readers.Select(async (reader, i) =>
        {
            var started = await kit.StartOkAsync(bills[i], reader: reader);
            using var completed = await kit.CompleteAsync(started.SettlementId, kit.RunCard(started, bills[i], reader: reader));
            return completed.StatusCode;
        }));

        Assert.All(outcomes, status => Assert.Equal(HttpStatusCode.OK, status));
        Assert.All(readers.Select((reader, i) => (Balance: kit.Balance(reader), Expected: Eur(5_000 - 100 - i))), card => Assert.Equal(card.Expected, card.Balance));
        var ledger = await LedgerOf(kit);
        Assert.Equal(ParallelCards, ledger.SettlementsCompleted);
        Assert.Empty(ledger.UnbalancedEntries);
        Assert.Equal(0, Assert.Single(ledger.SumByCurrency, sum => sum.Currency == "EUR").Sum);
        Assert.Equal(Enumerable.Range(0, ParallelCards).Sum(i => 100L + i), ledger.StoreTotal);
    }

    [SuiteFact]
    public async Task Start_SameRequestTwiceAtOnce_BothGetTheOneSettlement()
    {
        await using var kit = await StartKitAsync();
        for (var round = 0; round < RaceRounds; round++)
        {
            var bill = kit.Bill(Eur(100));
            var greeting = kit.Greeting(bill);

            // A retried round trip 1 (the same bill and greeting) is answered again, never settled twice.
            var responses = await Task.WhenAll(kit.StartAsync(bill, greeting: greeting), kit.StartAsync(bill, greeting: greeting));

            try
            {
                Assert.All(responses, r => Assert.Equal(HttpStatusCode.Created, r.StatusCode));
                var answers = await Task.WhenAll(responses.Select(r => r.Content.ReadFromJsonAsync<StartSettlementResponse>(ProtocolJson.Options)));
                Assert.Equal(answers[0], answers[1]);
                var started = answers[0]!;
                using var completed = await kit.CompleteAsync(started.SettlementId, kit.RunCard(started, bill));
                Assert.Equal(HttpStatusCode.OK, completed.StatusCode);
            }
            finally
            {
                Array.ForEach(responses, r => r.Dispose());
            }
        }

        Assert.Equal(Eur(10_000 - (RaceRounds * 100)), kit.Balance());
        var ledger = await LedgerOf(kit);
        Assert.Equal(RaceRounds, ledger.SettlementsCompleted);
        Assert.Empty(ledger.UnbalancedEntries);
    }

    [SuiteFact]
    public async Task Start_TwoBillsOnOneCardAtOnce_LeavesExactlyOneSettlementOpen()
    {
        await using var kit = await StartKitAsync();
        for (var round = 0; round < RaceRounds; round++)
        {
            var first = kit.Bill(Eur(100));
            var second = kit.Bill(Eur(200));
            // The card answers both INITIALIZE UPDATEs with the same counter; the second ends the first's session.
            var firstGreeting = kit.Greeting(first);
            var secondGreeting = kit.Greeting(second);

            var responses = await Task.WhenAll(kit.StartAsync(first, greeting: firstGreeting), kit.StartAsync(second, greeting: secondGreeting));

            try
            {
                // One after the other, the later start voids the earlier (its card never ran that
                // debit); at the same moment the same, or card.busy: never two open settlements.
                foreach (var response in responses.Where(r => r.StatusCode != HttpStatusCode.Created))
                {
                    Assert.Equal("card.busy", await OperatorKit.CodeOf(response));
                }

                var states = new List<string>();
                foreach (var response in responses.Where(r => r.StatusCode == HttpStatusCode.Created))
                {
                    var started = (await response.Content.ReadFromJsonAsync<StartSettlementResponse>(ProtocolJson.Options))!;
                    states.Add((await kit.GetSettlementAsync(started))!.State);
                }

                Assert.Equal("authorized", Assert.Single(states, state => state != "voided"));
            }
            finally
            {
                Array.ForEach(responses, r => r.Dispose());
            }
        }

        Assert.Equal(Eur(10_000), kit.Balance());
        var ledger = await LedgerOf(kit);
        Assert.Equal(0, ledger.SettlementsCompleted);
        Assert.Empty(ledger.UnbalancedEntries);
    }

    // What the ledger says, read from the registry itself: CAST because PostgreSQL sums BIGINTs as NUMERIC.
    private static async Task<Ledger> LedgerOf(OperatorKit kit)
    {
        await using var connection = await kit.Service<Database>().OpenAsync();
        var sums = await connection.QueryAsync<(string Currency, long Sum)>(
            "SELECT currency, CAST(SUM(amount_minor) AS BIGINT) FROM journal GROUP BY currency");
        var unbalanced = await connection.QueryAsync<string>(
            "SELECT entry_id FROM journal GROUP BY entry_id, currency HAVING SUM(amount_minor) <> 0");
        var storeTotal = await connection.ExecuteScalarAsync<long>(
            "SELECT CAST(COALESCE(SUM(amount_minor), 0) AS BIGINT) FROM journal WHERE account LIKE 'store:%'");
        var completed = await connection.ExecuteScalarAsync<long>("SELECT COUNT(*) FROM settlements WHERE state = 'completed'");
        return new Ledger([.. sums], [.. unbalanced], storeTotal, completed);
    }

    private sealed record Ledger(IReadOnlyList<(string Currency, long Sum)> SumByCurrency, IReadOnlyList<string> UnbalancedEntries, long StoreTotal, long SettlementsCompleted);
}

/// <summary>The settlement API on the embedded default registry, SQLite.</summary>
public sealed class SettlementApiOnSqliteTest : SettlementApiTest
{
    private protected override Task<OperatorKit> StartKitAsync(long loadMinor = 10_000) => OperatorKit.StartAsync(loadMinor);
}

/// <summary>The settlement API on PostgreSQL: one private cluster for the class, a fresh database per test.</summary>
[UsesComponents(Components.PostgreSql)]
public sealed class SettlementApiOnPostgreSqlTest(SharedPostgresCluster postgres) : SettlementApiTest, IClassFixture<SharedPostgresCluster>
{
    private protected override async Task<OperatorKit> StartKitAsync(long loadMinor = 10_000) =>
        await OperatorKit.StartAsync(loadMinor, postgres: await postgres.CreateDatabaseAsync());

    [SuiteFact]
    public async Task Start_EveryConnectionBusy_Answers503OperatorBusy_AndRecordsNothing()
    {
        await using var kit = await OperatorKit.StartAsync(postgres: await postgres.CreateDatabaseAsync(), poolSize: 1);
        var bill = kit.Bill(Money.Parse("7.00 EUR"));
        var greeting = kit.Greeting(bill);
        using (var refused = await HoldingTheOnlyConnectionAsync(kit, () => kit.StartAsync(bill, greeting: greeting)))
        {
            Assert.Equal(HttpStatusCode.ServiceUnavailable, refused.StatusCode);
            Assert.Equal("operator.busy", await OperatorKit.CodeOf(refused));
            Assert.Equal(TimeSpan.FromSeconds(1), refused.Headers.RetryAfter?.Delta);
        }

        // Nothing was recorded: the same bill and greeting now start the settlement.
        using var started = await kit.StartAsync(bill, greeting: greeting);
        Assert.Equal(HttpStatusCode.Created, started.StatusCode);
    }

    [SuiteFact]
    public async Task Start_QueueFull_Answers503OperatorBusy_WithoutWaiting()
    {
        // One request worked on at a time, none queued; the one in flight waits for the only connection, held here.
        await using var kit = await OperatorKit.StartAsync(postgres: await postgres.CreateDatabaseAsync(), poolSize: 1, admission: (1, 0));
        var first = kit.Bill(Money.Parse("7.00 EUR"));
        var second = kit.Bill(Money.Parse("8.00 EUR"));
        var (firstGreeting, secondGreeting) = (kit.Greeting(first), kit.Greeting(second));
        Task<HttpResponseMessage> inFlight;
        await using (var held = await kit.Service<Database>().OpenAsync())
        {
            inFlight = kit.StartAsync(first, greeting: firstGreeting);
            await Task.Delay(200); // admitted, waiting for the connection
            using var refused = await kit.StartAsync(second, greeting: secondGreeting);
            Assert.False(inFlight.IsCompleted); // answered before the request in flight: turned away at the door
            Assert.Equal(HttpStatusCode.ServiceUnavailable, refused.StatusCode);
            Assert.Equal("operator.busy", await OperatorKit.CodeOf(refused));
            Assert.Equal(TimeSpan.FromSeconds(1), refused.Headers.RetryAfter?.Delta);
        }

        (await inFlight).Dispose();
        // Nothing of the refused start was recorded: it starts now.
        using var started = await kit.StartAsync(second, greeting: secondGreeting);
        Assert.Equal(HttpStatusCode.Created, started.StatusCode);
    }

    private static async Task<HttpResponseMessage> HoldingTheOnlyConnectionAsync(OperatorKit kit, Func<Task<HttpResponseMessage>> request)
    {
        await using var held = await kit.Service<Database>().OpenAsync();
        return await request();
    }
}
