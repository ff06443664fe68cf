using System.Collections.Concurrent;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Dapper;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Time.Testing;
using OpenPurse.Authorizer;
using OpenPurse.Operator.Registry;
using OpenPurse.Protocol;
using OpenPurse.Protocol.Apdu;
using OpenPurse.Protocol.Jose;
using OpenPurse.Protocol.Messages;
using OpenPurse.Testing;

namespace OpenPurse.Operator.Tests;

/// <summary>
/// Top-ups by credit card over real HTTP, against the real credit authorizer in-process with its
/// test cards (docs/authorizer.md): the charge is captured exactly when the card took the credit,
/// voided exactly when it provably did not, and the books reconcile. Every test runs on each
/// registry engine (the subclasses at the end of this file).
/// </summary>
public abstract class TopUpTest
{
    private const long Loaded = 10_000;
    private const string ApiKey = "operator-test-api-key-0123456789";
    private const string Approves = "4242424242424242";
    private const string TimesOut = "4000000000000259";
    private const string FailsOnce = "4000000000003410";
    private const string Pin = "1234";
    private const string Expiry = "12/49";

    /// <summary>Every test PAN; none may turn up in a log line or a row.</summary>
    private static readonly string[] s_testPans = [Approves, "4000000000000002", "4000000000000127", "4000000000009995", "4000000000000259", "4242424242424241"];

    private static Money Eur(long minor) => new(minor, Currency.Eur);

    /// <summary>A new PostgreSQL database for one kit, or null for SQLite.</summary>
    private protected abstract Task<PostgresDatabase?> CreateDatabaseAsync();

    [SuiteFact]
    public async Task Approved_Credited_Captured_BooksReconcile_SameRequestAnswersTheSame()
    {
        await using var authorizer = await AuthorizerRun.StartAsync();
        await using var kit = await StartKitAsync(authorizer);
        var request = await RequestAsync(kit, Eur(2_500), Approves);

        var started = await StartOkAsync(kit, request);
        Assert.Equal(("crediting", Eur(2_500), "4242"), (started.State, started.Amount, started.LastFour));
        var update = kit.ValueUpdateOf(started.Credit);
        Assert.Equal((ValueUpdatePurposes.TopUp, request.TopUpId, Eur(2_500)), (update.Purpose, update.SourceId, update.Amount));

        // The same request again: the same answer, one authorization.
        var again = await StartOkAsync(kit, request);
        Assert.Equal(JsonSerializer.Serialize(started, ProtocolJson.Options), JsonSerializer.Serialize(again, ProtocolJson.Options));
        Assert.Equal("crediting", await StateAsync(kit, request.TopUpId));

        var answer = kit.RunCredit(started.Credit);
        var view = await CompleteOkAsync(kit, request.TopUpId, answer);
        Assert.Equal(("captured", Eur(12_500)), (view.State, view.BalanceAfter));
        await kit.AssertBooksAsync(Eur(12_500));
        var authorization = await authorizer.GetAsync(await AuthorizationIdAsync(kit, request.TopUpId));
        Assert.Equal(Eur(2_500), authorization.Captured);

        // The completion repeated answers the same, and posts nothing more.
        var repeated = await CompleteOkAsync(kit, request.TopUpId, answer);
        Assert.Equal("captured", repeated.State);
        await kit.AssertBooksAsync(Eur(12_500));
        await AssertNoCardDataAsync(kit, authorizer);
    }

    [Theory]
    [InlineData("4000000000000002", Pin, 2_500L, "topup.declined")]
    [InlineData("4000000000000127", Pin, 2_500L, "topup.pin_incorrect")]
    [InlineData(Approves, "9999", 2_500L, "topup.pin_incorrect")]
    [InlineData("4000000000009995", Pin, 10_001L, "topup.card_limit")]
    [InlineData("4242424242424241", Pin, 2_500L, "card_data.number_invalid")]
    public async Task Declined_AnswersItsCode_NothingMoves(string pan, string pin, long amount, string code)
    {
        await using var authorizer = await AuthorizerRun.StartAsync();
        await using var kit = await StartKitAsync(authorizer);
        var request = await RequestAsync(kit, Eur(amount), pan, pin);

        using var response = await StartAsync(kit, request);

        Assert.Equal(code, await OperatorKit.CodeOf(response));
        Assert.Equal("declined", await StateAsync(kit, request.TopUpId));
        // Asked again, the same refusal.
        using var again = await StartAsync(kit, request);
        Assert.Equal(code, await OperatorKit.CodeOf(again));
        await kit.AssertBooksAsync(Eur(Loaded));
        await AssertNoCardDataAsync(kit, authorizer);
    }

    [SuiteFact]
    public async Task Expired_CreditCard_IsRefusedAsTheAuthorizerSaid()
    {
        await using var authorizer = await AuthorizerRun.StartAsync();
        await using var kit = await StartKitAsync(authorizer);
        var request = await RequestAsync(kit, Eur(2_500), Approves, expiry: "01/20");

        using var response = await StartAsync(kit, request);

        Assert.Equal("card_data.expired", await OperatorKit.CodeOf(response));
        await kit.AssertBooksAsync(Eur(Loaded));
    }

    [SuiteFact]
    public async Task Limits_AtTheEdge_AndOnePast()
    {
        await using var authorizer = await AuthorizerRun.StartAsync();
        await using var kit = await StartKitAsync(authorizer, options => options with { TopUpMax = "30.00 EUR", DailyTopUpMax = "50.00 EUR" });

        // Per top-up: 30.00 is allowed, 30.01 is not.
        await AssertLimitAsync(kit, Eur(3_001), "30.00 EUR");
        await TopUpAsync(kit, Eur(3_000));
        // Per day: 30.00 + 20.00 = 50.00 is allowed, then 0.01 more is not.
        await TopUpAsync(kit, Eur(2_000));
        await AssertLimitAsync(kit, Eur(1), "0.00 EUR is left today");
        await kit.AssertBooksAsync(Eur(Loaded + 5_000));
    }

    [SuiteFact]
    public async Task Limits_TheCardsMaximumBalance_AtTheEdge_AndOnePast()
    {
        await using var authorizer = await AuthorizerRun.StartAsync();
        // The card holds 980.00 of at most 1000.00.
        await using var kit = await StartKitAsync(authorizer, loaded: 98_000);

        await AssertLimitAsync(kit, Eur(2_001), "20.00 EUR more");
        await TopUpAsync(kit, Eur(2_000));
        await AssertLimitAsync(kit, Eur(1), "0.00 EUR more");
        await kit.AssertBooksAsync(Eur(100_000));
    }

    [SuiteFact]
    public async Task SameId_AnotherBody_Conflicts()
    {
        await using var authorizer = await AuthorizerRun.StartAsync();
        await using var kit = await StartKitAsync(authorizer);
        var request = await RequestAsync(kit, Eur(2_500), Approves);
        await StartOkAsync(kit, request);

        using var response = await StartAsync(kit, request with { Amount = Eur(2_600) });

        Assert.Equal("topup.conflict", await OperatorKit.CodeOf(response));
    }

    [SuiteFact]
    public async Task AuthorizerTimesOut_Unavailable_RowAuthorizing_TheRetryCompletesIt()
    {
        await using var authorizer = await AuthorizerRun.StartAsync();
        await using var kit = await StartKitAsync(authorizer, authorizerTimeout: TimeSpan.FromSeconds(1));
        var request = await RequestAsync(kit, Eur(2_500), "4000000000000259");

        using (var response = await StartAsync(kit, request))
        {
            Assert.Equal("authorizer.unavailable", await OperatorKit.CodeOf(response));
        }

        Assert.Equal("authorizing", await StateAsync(kit, request.TopUpId));
        // (Nothing touches the card in between: its session is the one the retry's CREDIT is made for.)
        Assert.Equal(0, await JournalLinesAsync(kit, request.TopUpId));

        // The same request again: the authorizer is asked with the same key and answers the approval
        // it recorded (it may still be recording it: asked until it answers).
        TopUpResponse? started = null;
        for (var attempt = 0; started is null; attempt++)
        {
            using var retry = await StartAsync(kit, request);
            if (retry.IsSuccessStatusCode)
            {
                started = (await retry.Content.ReadFromJsonAsync<TopUpResponse>(ProtocolJson.Options))!;
            }
            else
            {
                Assert.Equal("authorizer.unavailable", await OperatorKit.CodeOf(retry));
                Assert.True(attempt < 30, "The authorizer never answered the retry.");
            }
        }

        var view = await CompleteOkAsync(kit, request.TopUpId, kit.RunCredit(started.Credit));
        Assert.Equal("captured", view.State);
        await kit.AssertBooksAsync(Eur(Loaded + 2_500));
    }

    [SuiteFact]
    public async Task CompletionLost_NextSync_CreditsOnce_CapturesOnce()
    {
        await using var authorizer = await AuthorizerRun.StartAsync();
        await using var kit = await StartKitAsync(authorizer);
        var request = await RequestAsync(kit, Eur(2_500), Approves);
        var started = await StartOkAsync(kit, request);
        var answer = kit.RunCredit(started.Credit);

        // The answer never reaches the operator; the card syncs.
        await kit.SyncOkAsync();

        Assert.Equal("captured", await StateAsync(kit, request.TopUpId));
        await kit.AssertBooksAsync(Eur(12_500));
        var authorization = await authorizer.GetAsync(await AuthorizationIdAsync(kit, request.TopUpId));
        Assert.Equal(Eur(2_500), authorization.Captured);

        // The lost answer arriving late, and another sync, change nothing.
        Assert.Equal("captured", (await CompleteOkAsync(kit, request.TopUpId, answer)).State);
        await kit.SyncOkAsync();
        await kit.AssertBooksAsync(Eur(12_500));
        Assert.Equal(2, await JournalLinesAsync(kit, request.TopUpId));
    }

    [SuiteFact]
    public async Task CreditNeverRun_NextSync_Voids_NothingPosted()
    {
        await using var authorizer = await AuthorizerRun.StartAsync();
        await using var kit = await StartKitAsync(authorizer);
        var request = await RequestAsync(kit, Eur(2_500), Approves);
        var started = await StartOkAsync(kit, request);

        // The person walks away: the card never runs the CREDIT and greets again.
        await kit.SyncOkAsync();

        Assert.Equal("voided", await StateAsync(kit, request.TopUpId));
        var authorization = await authorizer.GetAsync(await AuthorizationIdAsync(kit, request.TopUpId));
        Assert.NotNull(authorization.VoidedAt);
        Assert.Null(authorization.Captured);
        await kit.AssertBooksAsync(Eur(Loaded));
        Assert.Equal(0, await JournalLinesAsync(kit, request.TopUpId));

        // The CREDIT cannot run any more, and the top-up cannot be completed.
        var (_, late) = kit.TryRunCard(started.Credit.ExternalAuthenticate, started.Credit.Credit, kit.ApprovalOf(started.Credit));
        Assert.False(late.IsOk);
        using var completion = await CompleteAsync(kit, request.TopUpId, late);
        Assert.Equal("topup.conflict", await OperatorKit.CodeOf(completion));
        await kit.AssertBooksAsync(Eur(Loaded));
    }

    [SuiteFact]
    public async Task OpenTopUp_ANewTopUpsGreeting_ProvesItNeverRan_VoidsIt_AndGoesAhead()
    {
        await using var authorizer = await AuthorizerRun.StartAsync();
        await using var kit = await StartKitAsync(authorizer);
        var request = await RequestAsync(kit, Eur(2_500), Approves);
        await StartOkAsync(kit, request);

        // A new top-up with a new greeting proves the first CREDIT never ran: voided, and the new one goes ahead.
        var second = await RequestAsync(kit, Eur(1_000), Approves);
        var started = await StartOkAsync(kit, second);
        Assert.Equal("voided", await StateAsync(kit, request.TopUpId));

        Assert.Equal("captured", (await CompleteOkAsync(kit, second.TopUpId, kit.RunCredit(started.Credit))).State);
        await kit.AssertBooksAsync(Eur(Loaded + 1_000));
    }

    [SuiteFact]
    public async Task CaptureNotTaken_StaysCredited_TheSweeperCapturesIt()
    {
        var authorizer = await AuthorizerRun.StartAsync();
        await using var kit = await StartKitAsync(authorizer);
        var request = await RequestAsync(kit, Eur(2_500), Approves);
        var started = await StartOkAsync(kit, request);
        var answer = kit.RunCredit(started.Credit);
        var (directory, address) = (authorizer.DataDirectory, authorizer.Address);
        authorizer.KeepDirectory = true;
        await authorizer.DisposeAsync();

        // The authorizer is down: the credit is posted, the capture waits.
        Assert.Equal("credited", (await CompleteOkAsync(kit, request.TopUpId, answer)).State);
        await kit.AssertBooksAsync(Eur(12_500));

        await using var back = await AuthorizerRun.StartAsync(directory, address);
        await kit.SweepAsync();

        Assert.Equal("captured", await StateAsync(kit, request.TopUpId));
        Assert.Equal(Eur(2_500), (await back.GetAsync(await AuthorizationIdAsync(kit, request.TopUpId))).Captured);
        await kit.AssertBooksAsync(Eur(12_500));
    }

    [SuiteFact]
    public async Task VoidNotTaken_StaysVoiding_TheSweeperVoidsIt()
    {
        var authorizer = await AuthorizerRun.StartAsync();
        await using var kit = await StartKitAsync(authorizer);
        var request = await RequestAsync(kit, Eur(2_500), Approves);
        await StartOkAsync(kit, request);
        var (directory, address) = (authorizer.DataDirectory, authorizer.Address);
        authorizer.KeepDirectory = true;
        await authorizer.DisposeAsync();

        // The CREDIT never ran; the card syncs while the authorizer is down.
        await kit.SyncOkAsync();
        Assert.Equal("voiding", await StateAsync(kit, request.TopUpId));

        await using var back = await AuthorizerRun.StartAsync(directory, address);
        await kit.SweepAsync();

        Assert.Equal("voided", await StateAsync(kit, request.TopUpId));
        Assert.NotNull((await back.GetAsync(await AuthorizationIdAsync(kit, request.TopUpId))).VoidedAt);
        await kit.AssertBooksAsync(Eur(Loaded));
    }

    [SuiteFact]
    public async Task CreditNeverRun_APurchaseStart_VoidsIt_AndThePurchaseGoesAhead()
    {
        await using var authorizer = await AuthorizerRun.StartAsync();
        await using var kit = await StartKitAsync(authorizer);
        var request = await RequestAsync(kit, Eur(2_500), Approves);
        await StartOkAsync(kit, request);

        // The person pays in a shop instead: the purchase's greeting proves the CREDIT never ran.
        var bill = kit.Bill(Eur(1_000));
        var purchase = await kit.StartOkAsync(bill);

        Assert.Equal("voided", await StateAsync(kit, request.TopUpId));
        Assert.NotNull((await authorizer.GetAsync(await AuthorizationIdAsync(kit, request.TopUpId))).VoidedAt);
        using var completed = await kit.CompleteAsync(purchase.SettlementId, kit.RunCard(purchase, bill));
        Assert.True(completed.IsSuccessStatusCode, await completed.Content.ReadAsStringAsync());
        await kit.AssertBooksAsync(Eur(Loaded - 1_000));
    }

    [SuiteFact]
    public async Task CardRefusedTheCredit_NothingWritten_NextSyncVoids()
    {
        await using var authorizer = await AuthorizerRun.StartAsync();
        await using var kit = await StartKitAsync(authorizer);
        var request = await RequestAsync(kit, Eur(2_500), Approves);
        await StartOkAsync(kit, request);

        // The wallet reports the card's error status (as a card past its maximum balance answers).
        using var response = await CompleteAsync(kit, request.TopUpId, ResponseApdu.Parse([0x6A, 0x80]));

        Assert.Equal("card.refused", await OperatorKit.CodeOf(response));
        Assert.Equal("crediting", await StateAsync(kit, request.TopUpId));
        await kit.SyncOkAsync();
        Assert.Equal("voided", await StateAsync(kit, request.TopUpId));
        await kit.AssertBooksAsync(Eur(Loaded));
    }

    [SuiteFact]
    public async Task TamperedAnswer_Refused_NothingWritten()
    {
        await using var authorizer = await AuthorizerRun.StartAsync();
        await using var kit = await StartKitAsync(authorizer);
        var request = await RequestAsync(kit, Eur(2_500), Approves);
        var started = await StartOkAsync(kit, request);
        var answer = kit.RunCredit(started.Credit).ToBytes();
        answer[3] ^= 0x01;

        using var response = await CompleteAsync(kit, request.TopUpId, ResponseApdu.Parse(answer));

        Assert.Equal("card.answer_invalid", await OperatorKit.CodeOf(response));
        Assert.Equal("crediting", await StateAsync(kit, request.TopUpId));
        Assert.Equal(0, await JournalLinesAsync(kit, request.TopUpId));
    }

    [SuiteFact]
    public async Task AnswerOfAnotherTopUp_Refused()
    {
        await using var authorizer = await AuthorizerRun.StartAsync();
        await using var kit = await StartKitAsync(authorizer);
        var first = await RequestAsync(kit, Eur(1_000), Approves);
        var firstAnswer = kit.RunCredit((await StartOkAsync(kit, first)).Credit);
        await CompleteOkAsync(kit, first.TopUpId, firstAnswer);
        var second = await RequestAsync(kit, Eur(1_000), Approves);
        await StartOkAsync(kit, second);

        using var response = await CompleteAsync(kit, second.TopUpId, firstAnswer);

        Assert.Equal("card.answer_invalid", await OperatorKit.CodeOf(response));
        Assert.Equal("crediting", await StateAsync(kit, second.TopUpId));
        Assert.Equal(0, await JournalLinesAsync(kit, second.TopUpId));
    }

    [SuiteFact]
    public async Task Read_WithTheCreditsDigest_AnswersTheView_AsItMoves()
    {
        await using var authorizer = await AuthorizerRun.StartAsync();
        await using var kit = await StartKitAsync(authorizer);
        var request = await RequestAsync(kit, Eur(2_500), Approves);
        var started = await StartOkAsync(kit, request);
        var proof = TopUpReadProof.ForWallet(started);

        var crediting = await ReadOkAsync(kit, request.TopUpId, proof);
        Assert.Equal((request.TopUpId, "crediting", Eur(2_500), "4242", (Money?)null), (crediting.TopUpId, crediting.State, crediting.Amount, crediting.LastFour, crediting.BalanceAfter));

        var completed = await CompleteOkAsync(kit, request.TopUpId, kit.RunCredit(started.Credit));
        var captured = await ReadOkAsync(kit, request.TopUpId, proof);
        Assert.Equal(JsonSerializer.Serialize(completed, ProtocolJson.Options), JsonSerializer.Serialize(captured, ProtocolJson.Options));
        Assert.Equal(("captured", Eur(12_500)), (captured.State, captured.BalanceAfter));
    }

    [SuiteFact]
    public async Task Read_WithoutAProof_IsUnauthorized_AWrongProof_IsNotFound_LikeAnUnknownId()
    {
        await using var authorizer = await AuthorizerRun.StartAsync();
        await using var kit = await StartKitAsync(authorizer);
        var request = await RequestAsync(kit, Eur(2_500), Approves);
        var started = await StartOkAsync(kit, request);
        await CompleteOkAsync(kit, request.TopUpId, kit.RunCredit(started.Credit));
        var other = await StartOkAsync(kit, await RequestAsync(kit, Eur(1_000), Approves));

        using var none = await ReadAsync(kit, request.TopUpId, null);
        Assert.Equal((HttpStatusCode.Unauthorized, "topup.proof_required"), (none.StatusCode, await OperatorKit.CodeOf(none)));

        // Another top-up's CREDIT, a digest of the right length but wrong, and an unknown id with the right proof: one answer.
        foreach (var (id, proof) in new[]
        {
            (request.TopUpId, TopUpReadProof.ForWallet(other)),
            (request.TopUpId, new string('A', 43)),
            (request.TopUpId, "not base64url!"),
            (Guid.NewGuid(), TopUpReadProof.ForWallet(started)),
        })
        {
            using var refused = await ReadAsync(kit, id, proof);
            Assert.Equal((HttpStatusCode.NotFound, "topup.not_found"), (refused.StatusCode, await OperatorKit.CodeOf(refused)));
        }
    }

    [SuiteFact]
    public async Task Read_ADeclinedTopUp_HasNoCredit_IsNotFound()
    {
        await using var authorizer = await AuthorizerRun.StartAsync();
        await using var kit = await StartKitAsync(authorizer);
        var request = await RequestAsync(kit, Eur(2_500), "4000000000000002");
        using var declined = await StartAsync(kit, request);
        Assert.Equal("topup.declined", await OperatorKit.CodeOf(declined));

        // Whatever digest the caller makes up, a top-up without a CREDIT is not shown.
        using var read = await ReadAsync(kit, request.TopUpId, new string('A', 43));

        Assert.Equal((HttpStatusCode.NotFound, "topup.not_found"), (read.StatusCode, await OperatorKit.CodeOf(read)));
    }

    [SuiteFact]
    public async Task LeftAuthorizing_WithAnApproval_IsAbandoned_AndTheApprovalVoided_TheRetryRefused()
    {
        await using var authorizer = await AuthorizerRun.StartAsync();
        await using var kit = await StartKitAsync(authorizer, authorizerTimeout: TimeSpan.FromSeconds(1));
        var request = await RequestAsync(kit, Eur(2_500), TimesOut);

        // The authorizer approves, its answer never comes, and the wallet never asks again.
        await AssertCodeAsync(kit, request, "authorizer.unavailable");
        var approval = await authorizer.WaitForAsync(request.TopUpId);
        Assert.Equal(AuthorizationStatus.Approved, approval.Status);

        await AbandonAsync(kit);
        Assert.Equal("voiding", await StateAsync(kit, request.TopUpId));
        await VoidStepAsync(kit, TimeSpan.FromSeconds(1));

        Assert.Equal("voided", await StateAsync(kit, request.TopUpId));
        Assert.Equal(approval.Id, await AuthorizationIdAsync(kit, request.TopUpId));
        var voided = await authorizer.GetAsync(approval.Id);
        Assert.True(voided.VoidedAt is not null && voided.Captured is null, $"{voided}");
        // The same request, late: refused, never authorized again, nothing credited.
        await AssertCodeAsync(kit, request, "topup.abandoned");
        Assert.Equal(approval.Id, (await authorizer.WaitForAsync(request.TopUpId)).Id);
        Assert.Equal("voided", await StateAsync(kit, request.TopUpId));
        Assert.Equal(0, await JournalLinesAsync(kit, request.TopUpId));
        await kit.AssertBooksAsync(Eur(Loaded));
    }

    [SuiteFact]
    public async Task LeftAuthorizing_WithNoAuthorization_IsAbandoned_Voided_AndTheRetryIsNeverAuthorized()
    {
        await using var authorizer = await AuthorizerRun.StartAsync();
        await using var kit = await StartKitAsync(authorizer);
        var request = await RequestAsync(kit, Eur(2_500), FailsOnce);

        // The fail-once card's first attempt authorizes nothing; the wallet never asks again.
        await AssertCodeAsync(kit, request, "authorizer.unavailable");
        Assert.Equal("authorizing", await StateAsync(kit, request.TopUpId));
        await AbandonAsync(kit);
        await VoidStepAsync(kit, TimeSpan.FromSeconds(10));

        Assert.Equal("voided", await StateAsync(kit, request.TopUpId));
        Assert.Equal(HttpStatusCode.NotFound, await authorizer.FindStatusAsync(request.TopUpId));
        // Asked again, the fail-once card would now be approved: the operator does not ask.
        await AssertCodeAsync(kit, request, "topup.abandoned");
        Assert.Equal(HttpStatusCode.NotFound, await authorizer.FindStatusAsync(request.TopUpId));
        Assert.Equal("voided", await StateAsync(kit, request.TopUpId));
        await kit.AssertBooksAsync(Eur(Loaded));
    }

    [SuiteFact]
    public async Task LeftAuthorizing_AuthorizerDownAtTheSweep_StaysVoiding_TheNextSweepVoids()
    {
        var authorizer = await AuthorizerRun.StartAsync();
        await using var kit = await StartKitAsync(authorizer, authorizerTimeout: TimeSpan.FromSeconds(1));
        var request = await RequestAsync(kit, Eur(2_500), TimesOut);
        await AssertCodeAsync(kit, request, "authorizer.unavailable");
        var approval = await authorizer.WaitForAsync(request.TopUpId);
        var (directory, address) = (authorizer.DataDirectory, authorizer.Address);
        authorizer.KeepDirectory = true;
        await authorizer.DisposeAsync();

        await AbandonAsync(kit);
        await VoidStepAsync(kit, TimeSpan.FromSeconds(1));
        Assert.Equal("voiding", await StateAsync(kit, request.TopUpId));
        await AssertCodeAsync(kit, request, "topup.abandoned");

        await using var back = await AuthorizerRun.StartAsync(directory, address);
        await kit.SweepAsync();

        Assert.Equal("voided", await StateAsync(kit, request.TopUpId));
        Assert.NotNull((await back.GetAsync(approval.Id)).VoidedAt);
        await kit.AssertBooksAsync(Eur(Loaded));
    }

    [SuiteFact]
    public async Task AnApproval_ArrivingAfterTheAbandon_IsNeverCredited_AndIsVoided()
    {
        // The authorizer decides at once and answers 5 s later; the operator waits up to 10 s.
        await using var authorizer = await AuthorizerRun.StartAsync(hold: TimeSpan.FromSeconds(5));
        await using var kit = await StartKitAsync(authorizer);
        var request = await RequestAsync(kit, Eur(2_500), TimesOut);
        var inFlight = StartAsync(kit, request);
        var approval = await authorizer.WaitForAsync(request.TopUpId);

        // Abandoned while the request awaits the answer: voiding, and no look-up before that call has ended.
        await AbandonAsync(kit);
        Assert.Equal("voiding", await StateAsync(kit, request.TopUpId));
        Assert.Null((await authorizer.GetAsync(approval.Id)).VoidedAt);

        using (var answer = await inFlight)
        {
            Assert.Equal("topup.abandoned", await OperatorKit.CodeOf(answer));
        }

        Assert.Equal("voided", await StateAsync(kit, request.TopUpId));
        Assert.Equal(approval.Id, await AuthorizationIdAsync(kit, request.TopUpId));
        var voided = await authorizer.GetAsync(approval.Id);
        Assert.True(voided.VoidedAt is not null && voided.Captured is null, $"{voided}");
        Assert.Equal(0, await JournalLinesAsync(kit, request.TopUpId));
        await kit.AssertBooksAsync(Eur(Loaded));
    }

    [SuiteFact]
    public async Task ARetry_KeepsATopUpFromBeingAbandoned()
    {
        var authorizer = await AuthorizerRun.StartAsync();
        await using var kit = await StartKitAsync(authorizer);
        var request = await RequestAsync(kit, Eur(2_500), Approves);
        var (directory, address) = (authorizer.DataDirectory, authorizer.Address);
        authorizer.KeepDirectory = true;
        await authorizer.DisposeAsync();

        // The authorizer is down; the wallet asks, and nine minutes on asks again; nine more and the sweeper still leaves it.
        var time = (FakeTimeProvider)kit.Time;
        await AssertCodeAsync(kit, request, "authorizer.unavailable");
        time.Advance(TimeSpan.FromMinutes(9));
        await AssertCodeAsync(kit, request, "authorizer.unavailable");
        time.Advance(TimeSpan.FromMinutes(9));
        await kit.SweepAsync();
        Assert.Equal("authorizing", await StateAsync(kit, request.TopUpId));

        await using var back = await AuthorizerRun.StartAsync(directory, address);
        var started = await StartOkAsync(kit, request);
        Assert.Equal("captured", (await CompleteOkAsync(kit, request.TopUpId, kit.RunCredit(started.Credit))).State);
        await kit.AssertBooksAsync(Eur(Loaded + 2_500));
    }

    [SuiteFact]
    public async Task TopUps_ByTheAnswerAndByTheGreeting_KeptInTheCardLog_ExaminationClean()
    {
        await using var authorizer = await AuthorizerRun.StartAsync();
        await using var kit = await StartKitAsync(authorizer);
        await TopUpAsync(kit, Eur(2_500));
        // The second CREDIT's answer is lost: the card's next greeting proves it ran.
        var request = await RequestAsync(kit, Eur(1_000), Approves);
        var started = await StartOkAsync(kit, request);
        Assert.Equal(StatusWord.Ok, kit.RunCredit(started.Credit).Status);
        await kit.SyncOkAsync();

        await using (var connection = await kit.Service<Database>().OpenAsync())
        {
            var log = await connection.QueryAsync<(long Counter, string Kind, long Amount, long BalanceAfter, string Source)>(
                "SELECT counter, kind, amount_minor, balance_after_minor, source FROM card_log ORDER BY counter");
            Assert.Equal([(1L, "credit", Loaded, Loaded, "load"), (2L, "credit", 2_500L, Loaded + 2_500, "topup"), (3L, "credit", 1_000L, Loaded + 3_500, "topup")], log);
        }

        var report = await kit.Service<Examination>().RunAsync(null, CancellationToken.None);
        Assert.True(report.Clean, string.Join("\n", report.Findings));
        Assert.Empty(report.Findings);
        Assert.Equal(3, report.Records);
    }

    [SuiteFact]
    public async Task NoAuthorizer_Unavailable()
    {
        await using var kit = await OperatorKit.StartAsync(Loaded, postgres: await CreateDatabaseAsync(), sweepInterval: TimeSpan.Zero);

        using var keys = await kit.Http.GetAsync(new Uri("/v1/topups/authorizer-keys", UriKind.Relative));
        Assert.Equal("topup.unavailable", await OperatorKit.CodeOf(keys));
        using var started = await StartAsync(kit, new TopUpRequest(Guid.NewGuid(), Eur(100), "", "", "x"));
        Assert.Equal("topup.unavailable", await OperatorKit.CodeOf(started));
    }

    private async Task<OperatorKit> StartKitAsync(AuthorizerRun authorizer, Func<OperatorOptions, OperatorOptions>? configure = null, long loaded = Loaded, TimeSpan? authorizerTimeout = null) =>
        await OperatorKit.StartAsync(loaded, postgres: await CreateDatabaseAsync(), sweepInterval: TimeSpan.Zero, time: new FakeTimeProvider(DateTimeOffset.UtcNow), logs: authorizer,
            configure: options => (configure ?? (o => o))(options) with
            {
                Authorizer = new AuthorizerClientOptions { Url = authorizer.Address.ToString(), ApiKey = ApiKey, Timeout = authorizerTimeout ?? TimeSpan.FromSeconds(10) },
            });

    /// <summary>A top-up as the wallet makes it: the authorizer's keys from the operator, verified; the card data encrypted to them; a fresh greeting.</summary>
    private static async Task<TopUpRequest> RequestAsync(OperatorKit kit, Money amount, string pan, string pin = Pin, string expiry = Expiry)
    {
        var keys = (await kit.Http.GetFromJsonAsync<AuthorizerKeysResponse>(new Uri("/v1/topups/authorizer-keys", UriKind.Relative), ProtocolJson.Options))!;
        var signed = SignedMessage.Verify<AuthorizerKeys>(keys.Keys, kit.OperatorKeys, MessageTypes.AuthorizerKeys, out var error);
        Assert.True(signed is not null, error);
        var recipient = JsonWebKeySet.Parse(signed.Keys.GetRawText()).Keys.Single();
        var cardData = Jwe.Encrypt(ProtocolJson.ToUtf8(new CardData(pan, expiry, pin)), recipient);
        var greeting = kit.SyncGreeting();
        return new TopUpRequest(Guid.NewGuid(), amount, greeting.HostChallenge, greeting.CardGreeting, cardData);
    }

    private static async Task AssertCodeAsync(OperatorKit kit, TopUpRequest request, string code)
    {
        using var response = await StartAsync(kit, request);
        Assert.Equal(code, await OperatorKit.CodeOf(response));
    }

    /// <summary>Past the default <c>TopUpAuthorizingMax</c> (10 min), and a sweep: what waits authorizing is abandoned.</summary>
    private static async Task AbandonAsync(OperatorKit kit)
    {
        ((FakeTimeProvider)kit.Time).Advance(TimeSpan.FromMinutes(10) + TimeSpan.FromSeconds(1));
        await kit.SweepAsync();
    }

    /// <summary>Past the authorizer's time-out since the abandon, and a sweep: the abandoned top-ups are looked up and voided.</summary>
    private static async Task VoidStepAsync(OperatorKit kit, TimeSpan authorizerTimeout)
    {
        ((FakeTimeProvider)kit.Time).Advance(authorizerTimeout);
        await kit.SweepAsync();
    }

    private static Task<HttpResponseMessage> StartAsync(OperatorKit kit, TopUpRequest request) =>
        kit.Http.PostAsJsonAsync("/v1/topups", request, ProtocolJson.Options);

    private static async Task<TopUpResponse> StartOkAsync(OperatorKit kit, TopUpRequest request)
    {
        using var response = await StartAsync(kit, request);
        Assert.True(response.IsSuccessStatusCode, await response.Content.ReadAsStringAsync());
        return (await response.Content.ReadFromJsonAsync<TopUpResponse>(ProtocolJson.Options))!;
    }

    private static Task<HttpResponseMessage> CompleteAsync(OperatorKit kit, Guid topUpId, ResponseApdu answer) =>
        kit.Http.PostAsJsonAsync($"/v1/topups/{topUpId}/completion", new CompleteSettlementRequest(Convert.ToBase64String(answer.ToBytes())), ProtocolJson.Options);

    private static async Task<TopUpView> CompleteOkAsync(OperatorKit kit, Guid topUpId, ResponseApdu answer)
    {
        using var response = await CompleteAsync(kit, topUpId, answer);
        Assert.True(response.IsSuccessStatusCode, await response.Content.ReadAsStringAsync());
        return (await response.Content.ReadFromJsonAsync<TopUpView>(ProtocolJson.Options))!;
    }

    private static async Task<HttpResponseMessage> ReadAsync(OperatorKit kit, Guid topUpId, string? proof)
    {
        using var message = new HttpRequestMessage(HttpMethod.Get, new Uri($"/v1/topups/{topUpId}", UriKind.Relative));
        if (proof is not null)
        {
            message.Headers.TryAddWithoutValidation(TopUpReadProof.WalletHeader, proof);
        }

        return await kit.Http.SendAsync(message);
    }

    private static async Task<TopUpView> ReadOkAsync(OperatorKit kit, Guid topUpId, string proof)
    {
        using var response = await ReadAsync(kit, topUpId, proof);
        Assert.True(response.IsSuccessStatusCode, await response.Content.ReadAsStringAsync());
        return (await response.Content.ReadFromJsonAsync<TopUpView>(ProtocolJson.Options))!;
    }

    /// <summary>A whole top-up of the approving card: started, run, completed, captured.</summary>
    private static async Task TopUpAsync(OperatorKit kit, Money amount)
    {
        var request = await RequestAsync(kit, amount, Approves);
        var started = await StartOkAsync(kit, request);
        Assert.Equal("captured", (await CompleteOkAsync(kit, request.TopUpId, kit.RunCredit(started.Credit))).State);
    }

    private static async Task AssertLimitAsync(OperatorKit kit, Money amount, string detail)
    {
        using var response = await StartAsync(kit, await RequestAsync(kit, amount, Approves));
        Assert.Equal((HttpStatusCode)422, response.StatusCode);
        var problem = await response.Content.ReadFromJsonAsync<JsonElement>();
        Assert.Equal("topup.limit_exceeded", problem.GetProperty("code").GetString());
        Assert.Contains(detail, problem.GetProperty("detail").GetString(), StringComparison.Ordinal);
    }

    private static async Task<string> StateAsync(OperatorKit kit, Guid topUpId)
    {
        await using var connection = await kit.Service<Database>().OpenAsync();
        return await connection.ExecuteScalarAsync<string>("SELECT state FROM topups WHERE topup_id = @id", new { id = topUpId.ToString() }) ?? "none";
    }

    private static async Task<Guid> AuthorizationIdAsync(OperatorKit kit, Guid topUpId)
    {
        await using var connection = await kit.Service<Database>().OpenAsync();
        return Guid.Parse((await connection.ExecuteScalarAsync<string>("SELECT authorization_id FROM topups WHERE topup_id = @id", new { id = topUpId.ToString() }))!);
    }

    private static async Task<long> JournalLinesAsync(OperatorKit kit, Guid topUpId)
    {
        await using var connection = await kit.Service<Database>().OpenAsync();
        return await connection.ExecuteScalarAsync<long>("SELECT COUNT(*) FROM journal WHERE reference = @id", new { id = topUpId.ToString() });
    }

    /// <summary>No test card number in any top-up row, nor in any line the operator or the authorizer logged.</summary>
    private static async Task AssertNoCardDataAsync(OperatorKit kit, AuthorizerRun authorizer)
    {
        await using var connection = await kit.Service<Database>().OpenAsync();
        var rows = await connection.QueryAsync("SELECT * FROM topups");
        var text = string.Join("\n", rows.Select(row => string.Join("|", ((IDictionary<string, object?>)row).Values.Select(v => v is byte[] b ? Convert.ToHexString(b) : v?.ToString()))));
        Assert.All(s_testPans, pan => Assert.DoesNotContain(pan, text, StringComparison.Ordinal));
        // The operator's lines are captured too (its top-up lines name the last four digits only).
        Assert.Contains(authorizer.Logs, line => line.StartsWith("Top-up ", StringComparison.Ordinal));
        Assert.All(authorizer.Logs, line => Assert.All(s_testPans, pan => Assert.DoesNotContain(pan, line, StringComparison.Ordinal)));
    }

    /// <summary>
    /// The credit authorizer in-process on a free loopback port, with the operator's API key; it
    /// also captures the lines the operator of the test logs (<see cref="Logs"/>).
    /// </summary>
    private sealed class AuthorizerRun : IAsyncDisposable, ILoggerProvider
    {
        private readonly WebApplication _app;
        private readonly string _directory;
        private readonly HttpClient _http;

        private AuthorizerRun(WebApplication app, string directory)
        {
            _app = app;
            _directory = directory;
            Address = new Uri(_app.Services.GetRequiredService<Microsoft.AspNetCore.Hosting.Server.IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First());
            _http = new HttpClient { BaseAddress = Address };
            _http.DefaultRequestHeaders.Authorization = new("Bearer", ApiKey);
        }

        public Uri Address { get; }

        public ConcurrentQueue<string> Logs { get; } = new();

        /// <summary>Keep the data directory when disposed, for a run that starts again on it.</summary>
        public bool KeepDirectory { get; set; }

        public string DataDirectory => _directory;

        /// <param name="directory">The data directory of an earlier run (and <paramref name="address"/> its address), or null for a new one.</param>
        /// <param name="hold">How long the time-out card's answer is held (the authorizer's default when null).</param>
        public static async Task<AuthorizerRun> StartAsync(string? directory = null, Uri? address = null, TimeSpan? hold = null)
        {
            directory ??= Directory.CreateTempSubdirectory("openpurse-topup-authorizer-").FullName;
            var urls = address is null ? "http://127.0.0.1:0" : $"http://127.0.0.1:{address.Port}";
            var options = new AuthorizerOptions { DataDirectory = directory, ApiKeys = [ApiKey], Urls = urls };
            var app = AuthorizerHost.Build(hold is { } held ? options with { TimeoutCardHold = held } : options);
            await app.StartAsync();
            var run = new AuthorizerRun(app, directory);
            app.Services.GetRequiredService<ILoggerFactory>().AddProvider(run);
            return run;
        }

        public async Task<CreditAuthorization> GetAsync(Guid authorizationId) =>
            (await _http.GetFromJsonAsync<CreditAuthorization>(new Uri($"/v1/authorizations/{authorizationId:D}", UriKind.Relative), ProtocolJson.Options))!;

        /// <summary>How the look-up by idempotency key (the top-up id) answers.</summary>
        public async Task<HttpStatusCode> FindStatusAsync(Guid topUpId)
        {
            using var response = await _http.GetAsync(new Uri($"/v1/authorizations?idempotencyKey={topUpId:D}", UriKind.Relative));
            return response.StatusCode;
        }

        /// <summary>The authorization made for the top-up, once the authorizer has recorded it.</summary>
        public async Task<CreditAuthorization> WaitForAsync(Guid topUpId)
        {
            for (var attempt = 0; ; attempt++)
            {
                using var response = await _http.GetAsync(new Uri($"/v1/authorizations?idempotencyKey={topUpId:D}", UriKind.Relative));
                if (response.IsSuccessStatusCode)
                {
                    return (await response.Content.ReadFromJsonAsync<CreditAuthorization>(ProtocolJson.Options))!;
                }

                Assert.True(response.StatusCode == HttpStatusCode.NotFound && attempt < 200, $"The authorizer answered {response.StatusCode}, or never recorded an authorization for {topUpId}.");
                await Task.Delay(50);
            }
        }

        public ILogger CreateLogger(string categoryName) => new Capture(Logs);

        void IDisposable.Dispose()
        {
        }

        public async ValueTask DisposeAsync()
        {
            _http.Dispose();
            await _app.StopAsync();
            await _app.DisposeAsync();
            Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
            if (!KeepDirectory)
            {
                Directory.Delete(_directory, recursive: true);
            }
        }

        private sealed class Capture(ConcurrentQueue<string> lines) : ILogger
        {
            public IDisposable? BeginScope<TState>(TState state)
                where TState : notnull => null;

            public bool IsEnabled(LogLevel logLevel) => true;

            public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
                lines.Enqueue(formatter(state, exception));
        }
    }
}

/// <summary>Top-ups on the embedded default registry, SQLite.</summary>
public sealed class TopUpOnSqliteTest : TopUpTest
{
    private protected override Task<PostgresDatabase?> CreateDatabaseAsync() => Task.FromResult<PostgresDatabase?>(null);
}

/// <summary>Top-ups on PostgreSQL: one private cluster for the class, a fresh database per test.</summary>
[UsesComponents(Components.PostgreSql)]
public sealed class TopUpOnPostgreSqlTest(SharedPostgresCluster postgres) : TopUpTest, IClassFixture<SharedPostgresCluster>
{
    private protected override async Task<PostgresDatabase?> CreateDatabaseAsync() => await postgres.CreateDatabaseAsync();
}
