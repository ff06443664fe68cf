using OpenPurse.Authorizer.Cards;
using OpenPurse.Operator.Credit;
using OpenPurse.Protocol;
using OpenPurse.Protocol.Messages;

namespace OpenPurse.Authorizer.Tests;

/// <summary>The operator's client against the authorizer in-process: every outcome it reports.</summary>
public sealed class CreditAuthorizerClientTest : IAsyncLifetime
{
    private static readonly TimeSpan s_timeout = TimeSpan.FromSeconds(30);

    private TestAuthorizer _authorizer = null!;
    private HttpClient _http = null!;

    public async Task InitializeAsync()
    {
        _authorizer = await TestAuthorizer.StartAsync();
        _http = new HttpClient { BaseAddress = _authorizer.Address };
    }

    public async Task DisposeAsync()
    {
        _http.Dispose();
        await _authorizer.DisposeAsync();
    }

    private HttpCreditAuthorizer Client(string apiKey = TestAuthorizer.ApiKey, TimeSpan? timeout = null) => new(_http, apiKey, timeout ?? s_timeout);

    private async Task<AuthorizeRequest> RequestAsync(string pan, string amount = "25.00 EUR")
    {
        // As the wallet will: the card data encrypted to the key the operator's client fetched.
        var keys = await Client().GetKeysAsync(CancellationToken.None);
        return new AuthorizeRequest(Money.Parse(amount), "topup-" + Guid.NewGuid().ToString("N")[..8], Protocol.Jose.Jwe.Encrypt(ProtocolJson.ToUtf8(new CardData(pan, TestAuthorizer.ValidExpiry, TestCards.Pin)), keys.Keys.Single()));
    }

    [Fact]
    public async Task Approved_ThenCaptured_ThenCapturedAgainIsTheSameCapture()
    {
        var client = Client();

        var authorized = await client.AuthorizeAsync(await RequestAsync(TestCards.Approves), "client-approve", CancellationToken.None);
        var id = authorized.Authorization!.Id;
        var captured = await client.CaptureAsync(id, new CaptureRequest(Money.Parse("25.00 EUR")), CancellationToken.None);
        var again = await client.CaptureAsync(id, new CaptureRequest(Money.Parse("25.00 EUR")), CancellationToken.None);
        var read = await client.GetAsync(id, CancellationToken.None);

        Assert.True(authorized.IsApproved);
        Assert.Equal(CreditResult.Answered, captured.Result);
        Assert.Equal(Money.Parse("25.00 EUR"), captured.Authorization!.Captured);
        Assert.Equal(captured.Authorization, again.Authorization);
        Assert.Equal(captured.Authorization, read.Authorization);
    }

    [Fact]
    public async Task Find_ByTheIdempotencyKey_AnswersTheAuthorization_OrRefusesWithNotFound()
    {
        var client = Client();
        var authorized = await client.AuthorizeAsync(await RequestAsync(TestCards.Approves), "client-find", CancellationToken.None);

        var found = await client.FindAsync("client-find", CancellationToken.None);
        var none = await client.FindAsync("client-find-none", CancellationToken.None);

        Assert.Equal((CreditResult.Answered, authorized.Authorization), (found.Result, found.Authorization));
        Assert.Equal((CreditResult.Refused, ProblemCode.AuthorizationNotFound), (none.Result, none.Problem));
    }

    [Fact]
    public async Task Declined_IsAnsweredNotApproved()
    {
        var outcome = await Client().AuthorizeAsync(await RequestAsync(TestCards.Declines), "client-decline", CancellationToken.None);

        Assert.Equal(CreditResult.Answered, outcome.Result);
        Assert.False(outcome.IsApproved);
        Assert.Equal(TestCards.DoNotHonor, outcome.Authorization!.DeclineCode);
    }

    [Fact]
    public async Task Refusals_AreMappedToTheirCode()
    {
        var client = Client();
        var approved = await client.AuthorizeAsync(await RequestAsync(TestCards.Approves), "client-refusals", CancellationToken.None);

        var voided = await client.VoidAsync(approved.Authorization!.Id, new VoidRequest("card_not_loaded"), CancellationToken.None);
        var captureAfterVoid = await client.CaptureAsync(approved.Authorization.Id, new CaptureRequest(Money.Parse("25.00 EUR")), CancellationToken.None);
        var conflict = await client.AuthorizeAsync(await RequestAsync(TestCards.Approves), "client-refusals", CancellationToken.None);
        var luhn = await client.AuthorizeAsync(await RequestAsync("4242424242424241"), "client-luhn", CancellationToken.None);

        Assert.Equal(CreditResult.Answered, voided.Result);
        Assert.NotNull(voided.Authorization!.VoidedAt);
        Assert.Equal((CreditResult.Refused, ProblemCode.AuthorizationVoided), (captureAfterVoid.Result, captureAfterVoid.Problem));
        Assert.Equal((CreditResult.Refused, ProblemCode.IdempotencyConflict), (conflict.Result, conflict.Problem));
        Assert.Equal((CreditResult.Refused, ProblemCode.CardNumberInvalid), (luhn.Result, luhn.Problem));
    }

    [Fact]
    public async Task WrongApiKey_IsRefusedAsUnauthorized()
    {
        var outcome = await Client(apiKey: "not-a-configured-key-000").AuthorizeAsync(await RequestAsync(TestCards.Approves), "client-key", CancellationToken.None);

        Assert.Equal((CreditResult.Refused, ProblemCode.AuthorizerUnauthorized), (outcome.Result, outcome.Problem));
    }

    [Fact]
    public async Task FailOnce_IsUnavailable_ThenTheRetryWithTheSameKeyApproves()
    {
        var client = Client();
        var request = await RequestAsync(TestCards.FailsOnce);

        var first = await client.AuthorizeAsync(request, "client-fail-once", CancellationToken.None);
        var retry = await client.AuthorizeAsync(request, "client-fail-once", CancellationToken.None);

        Assert.Equal((CreditResult.Unavailable, ProblemCode.AuthorizerUnavailable), (first.Result, first.Problem));
        Assert.True(retry.IsApproved);
    }

    [Fact]
    public async Task TimeoutCard_TheClientGivesUpAfterItsTimeout_AndSaysSo_ThenTheRetryFindsTheApproval()
    {
        var request = await RequestAsync(TestCards.TimesOut);

        // The authorizer holds this card's answer for 30 s; the client waits 5 s: long enough for the
        // request to reach the authorizer on a busy machine (half a second was not, once), far too short for the answer.
        var first = await Client(timeout: TimeSpan.FromSeconds(5)).AuthorizeAsync(request, "client-time-out", CancellationToken.None);
        await TestAuthorizer.WaitForDecisionAsync(request.Reference);
        var retry = await Client().AuthorizeAsync(request, "client-time-out", CancellationToken.None);

        Assert.Equal(CreditResult.TimedOut, first.Result);
        Assert.Null(first.Authorization);
        Assert.True(retry.IsApproved);
    }

    [Fact]
    public async Task CallersCancellation_IsNotATimeout()
    {
        using var cancel = new CancellationTokenSource();
        var request = await RequestAsync(TestCards.TimesOut);
        var call = Client(timeout: TimeSpan.FromMinutes(1)).AuthorizeAsync(request, "client-cancel", cancel.Token);

        await cancel.CancelAsync();

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => call);
    }

    [Fact]
    public async Task NoAuthorizerListening_IsUnavailable()
    {
        using var nowhere = new HttpClient { BaseAddress = new Uri("http://127.0.0.1:9/") };

        var outcome = await new HttpCreditAuthorizer(nowhere, TestAuthorizer.ApiKey, s_timeout).GetAsync(Guid.NewGuid(), CancellationToken.None);

        Assert.Contains(outcome.Result, new[] { CreditResult.Unavailable, CreditResult.TimedOut });
    }
}
