using System.Net;
using System.Net.Http.Json;
using OpenPurse.Authorizer.Cards;
using OpenPurse.Protocol;
using OpenPurse.Protocol.Messages;

namespace OpenPurse.Authorizer.Tests;

/// <summary>The authorizer over HTTP: every test card, the card checks, the API key, idempotency, captures and voids.</summary>
public sealed class AuthorizationTest : IAsyncLifetime
{
    private TestAuthorizer _authorizer = null!;

    public async Task InitializeAsync() => _authorizer = await TestAuthorizer.StartAsync();

    public async Task DisposeAsync() => await _authorizer.DisposeAsync();

    [Fact]
    public async Task ApprovingCard_IsApproved_WithTokenLastFourAndExpiry()
    {
        var authorization = await _authorizer.AuthorizeCardAsync(TestCards.Approves);

        Assert.Equal(AuthorizationStatus.Approved, authorization.Status);
        Assert.Null(authorization.DeclineCode);
        Assert.Equal(Money.Parse("25.00 EUR"), authorization.Amount);
        Assert.Equal("4242", authorization.LastFour);
        Assert.StartsWith("tok_", authorization.CardToken, StringComparison.Ordinal);
        Assert.DoesNotContain("4242424242424242", authorization.CardToken, StringComparison.Ordinal);
        Assert.Equal(authorization.CreatedAt + _authorizer.Options.AuthorizationLifetime, authorization.ExpiresAt);
        Assert.Null(authorization.Captured);
    }

    [Fact]
    public async Task SameCard_HasTheSameToken_AnotherCardAnother()
    {
        var first = await _authorizer.AuthorizeCardAsync(TestCards.Approves);
        var second = await _authorizer.AuthorizeCardAsync(TestCards.Approves);
        var other = await _authorizer.AuthorizeCardAsync(TestCards.Declines);

        Assert.Equal(first.CardToken, second.CardToken);
        Assert.NotEqual(first.CardToken, other.CardToken);
    }

    [Theory]
    [InlineData(TestCards.Declines, "25.00 EUR", TestCards.DoNotHonor)]
    [InlineData(TestCards.FailsPin, "25.00 EUR", TestCards.IncorrectPin)]
    [InlineData(TestCards.ExceedsLimit, "100.01 EUR", TestCards.LimitExceeded)]
    [InlineData("5105105105105100", "25.00 EUR", TestCards.DoNotHonor)]
    public async Task DecliningCards_AreDeclined_WithTheirCode(string pan, string amount, string declineCode)
    {
        var authorization = await _authorizer.AuthorizeCardAsync(pan, amount);

        Assert.Equal(AuthorizationStatus.Declined, authorization.Status);
        Assert.Equal(declineCode, authorization.DeclineCode);
        Assert.Null(authorization.ExpiresAt);
        Assert.Equal(pan[^4..], authorization.LastFour);
    }

    [Fact]
    public async Task LimitCard_ApprovesUpToItsLimit()
    {
        var authorization = await _authorizer.AuthorizeCardAsync(TestCards.ExceedsLimit, "100.00 EUR");

        Assert.Equal(AuthorizationStatus.Approved, authorization.Status);
    }

    [Fact]
    public async Task WrongPin_IsDeclined_OnAnApprovingCard()
    {
        using var response = await _authorizer.AuthorizeAsync(TestAuthorizer.Request(await _authorizer.EncryptCardAsync(TestCards.Approves, pin: "9999")), "wrong-pin");

        Assert.Equal(HttpStatusCode.Created, response.StatusCode);
        Assert.Equal(TestCards.IncorrectPin, (await TestAuthorizer.ReadAsync<CreditAuthorization>(response)).DeclineCode);
    }

    [Fact]
    public async Task FailOnceCard_Answers503First_ThenTheRetryWithTheSameKeyApproves()
    {
        var request = TestAuthorizer.Request(await _authorizer.EncryptCardAsync(TestCards.FailsOnce));

        using var first = await _authorizer.AuthorizeAsync(request, "fail-once");
        using var retry = await _authorizer.AuthorizeAsync(request, "fail-once");
        using var again = await _authorizer.AuthorizeAsync(request, "fail-once");

        Assert.Equal(ProblemCode.AuthorizerUnavailable.Code, await TestAuthorizer.ProblemCodeOf(first, ProblemCode.AuthorizerUnavailable));
        Assert.Equal(HttpStatusCode.Created, retry.StatusCode);
        var approved = await TestAuthorizer.ReadAsync<CreditAuthorization>(retry);
        Assert.Equal(AuthorizationStatus.Approved, approved.Status);
        Assert.Equal(HttpStatusCode.OK, again.StatusCode);
        Assert.Equal(approved, await TestAuthorizer.ReadAsync<CreditAuthorization>(again));
    }

    [Fact]
    public async Task LookUpByIdempotencyKey_FindsTheAuthorization_OrNone_AndChangesNothing()
    {
        var request = TestAuthorizer.Request(await _authorizer.EncryptCardAsync(TestCards.FailsOnce), reference: "topup-look-up");
        using var first = await _authorizer.AuthorizeAsync(request, "look-up");

        // The fail-once card's first attempt made nothing: none under the key, and the look-up does not stop the retry.
        using (var none = await _authorizer.Http.GetAsync(new Uri("/v1/authorizations?idempotencyKey=look-up", UriKind.Relative)))
        {
            Assert.Equal(ProblemCode.AuthorizationNotFound.Code, await TestAuthorizer.ProblemCodeOf(none, ProblemCode.AuthorizationNotFound));
        }

        using var retry = await _authorizer.AuthorizeAsync(request, "look-up");
        var approved = await TestAuthorizer.ReadAsync<CreditAuthorization>(retry);
        using (var found = await _authorizer.Http.GetAsync(new Uri("/v1/authorizations?idempotencyKey=look-up", UriKind.Relative)))
        {
            Assert.Equal(HttpStatusCode.OK, found.StatusCode);
            Assert.Equal(approved, await TestAuthorizer.ReadAsync<CreditAuthorization>(found));
        }

        // Voided, it is found voided; a key that is not a key is malformed.
        using (await _authorizer.VoidAsync(approved.Id))
        {
        }

        using (var voided = await _authorizer.Http.GetAsync(new Uri("/v1/authorizations?idempotencyKey=look-up", UriKind.Relative)))
        {
            Assert.NotNull((await TestAuthorizer.ReadAsync<CreditAuthorization>(voided)).VoidedAt);
        }

        foreach (var query in new[] { "", "?idempotencyKey=", "?idempotencyKey=a%20b", "?idempotencyKey=" + new string('k', 256) })
        {
            using var malformed = await _authorizer.Http.GetAsync(new Uri("/v1/authorizations" + query, UriKind.Relative));
            Assert.Equal(ProblemCode.RequestMalformed.Code, await TestAuthorizer.ProblemCodeOf(malformed, ProblemCode.RequestMalformed));
        }
    }

    [Fact]
    public async Task FailOnceCard_RetryWithAnotherBody_IsAConflict()
    {
        using var first = await _authorizer.AuthorizeAsync(TestAuthorizer.Request(await _authorizer.EncryptCardAsync(TestCards.FailsOnce)), "fail-once-other");
        using var other = await _authorizer.AuthorizeAsync(TestAuthorizer.Request(await _authorizer.EncryptCardAsync(TestCards.Approves)), "fail-once-other");

        Assert.Equal(HttpStatusCode.ServiceUnavailable, first.StatusCode);
        Assert.Equal(ProblemCode.IdempotencyConflict.Code, await TestAuthorizer.ProblemCodeOf(other, ProblemCode.IdempotencyConflict));
    }

    [Fact]
    public async Task TimeoutCard_HoldsTheAnswerBeyondTheCaller_AndTheRetryFindsTheApproval()
    {
        var request = TestAuthorizer.Request(await _authorizer.EncryptCardAsync(TestCards.TimesOut), reference: "time-out-http");
        using var wait = new CancellationTokenSource();
        var first = _authorizer.AuthorizeAsync(request, "time-out", wait.Token);

        // The authorization is made and kept, its answer held: the caller gives up.
        await TestAuthorizer.WaitForDecisionAsync("time-out-http");
        await wait.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => first);
        using var retry = await _authorizer.AuthorizeAsync(request, "time-out");

        Assert.Equal(HttpStatusCode.OK, retry.StatusCode);
        Assert.Equal("true", retry.Headers.GetValues("Idempotent-Replayed").Single());
        Assert.Equal(AuthorizationStatus.Approved, (await TestAuthorizer.ReadAsync<CreditAuthorization>(retry)).Status);
    }

    [Theory]
    [InlineData("4242424242424241")]
    [InlineData("4000000000000001")]
    public async Task LuhnFailure_IsRefused(string pan)
    {
        using var response = await _authorizer.AuthorizeAsync(TestAuthorizer.Request(await _authorizer.EncryptCardAsync(pan)), Guid.NewGuid().ToString());

        Assert.Equal(ProblemCode.CardNumberInvalid.Code, await TestAuthorizer.ProblemCodeOf(response, ProblemCode.CardNumberInvalid));
    }

    [Fact]
    public async Task PastExpiry_IsRefused_AndThisMonthIsStillValid()
    {
        var now = DateTimeOffset.UtcNow;
        using var past = await _authorizer.AuthorizeAsync(TestAuthorizer.Request(await _authorizer.EncryptCardAsync(TestCards.Approves, expiry: now.AddMonths(-1).ToString("MM/yy", System.Globalization.CultureInfo.InvariantCulture))), "past");
        using var current = await _authorizer.AuthorizeAsync(TestAuthorizer.Request(await _authorizer.EncryptCardAsync(TestCards.Approves, expiry: now.ToString("MM/yy", System.Globalization.CultureInfo.InvariantCulture))), "current");

        Assert.Equal(ProblemCode.CardExpired.Code, await TestAuthorizer.ProblemCodeOf(past, ProblemCode.CardExpired));
        Assert.Equal(HttpStatusCode.Created, current.StatusCode);
    }

    [Fact]
    public async Task Expiry_IsJudgedByTheAuthorizersClock()
    {
        await using var late = await TestAuthorizer.StartAsync(new ManualTime(new DateTimeOffset(2050, 1, 1, 0, 0, 0, TimeSpan.Zero)));

        using var response = await late.AuthorizeAsync(TestAuthorizer.Request(await late.EncryptCardAsync(TestCards.Approves, expiry: "12/49")), "late");

        Assert.Equal(ProblemCode.CardExpired.Code, await TestAuthorizer.ProblemCodeOf(response, ProblemCode.CardExpired));
    }

    [Theory]
    [InlineData("424242424242", "13/30", "1234")]
    [InlineData("4242 4242 4242 4242", "12/49", "1234")]
    [InlineData("4242424242424242", "1249", "1234")]
    [InlineData("4242424242424242", "12/49", "12")]
    [InlineData("4242424242424242", "12/49\n", "1234")]
    public async Task MalformedCardData_IsRefused(string pan, string expiry, string pin)
    {
        using var response = await _authorizer.AuthorizeAsync(TestAuthorizer.Request(await _authorizer.EncryptCardAsync(pan, expiry, pin)), Guid.NewGuid().ToString());

        Assert.Equal(ProblemCode.CardDataInvalid.Code, await TestAuthorizer.ProblemCodeOf(response, ProblemCode.CardDataInvalid));
    }

    [Fact]
    public async Task TamperedCardData_IsRefused_AndNotRecorded()
    {
        var parts = (await _authorizer.EncryptCardAsync(TestCards.Approves)).Split('.');
        var ciphertext = System.Buffers.Text.Base64Url.DecodeFromChars(parts[3]);
        ciphertext[^1] ^= 0x20;
        parts[3] = System.Buffers.Text.Base64Url.EncodeToString(ciphertext);

        using var response = await _authorizer.AuthorizeAsync(TestAuthorizer.Request(string.Join('.', parts)), "tampered");

        Assert.Equal(ProblemCode.CardDataInvalid.Code, await TestAuthorizer.ProblemCodeOf(response, ProblemCode.CardDataInvalid));
        // Nothing was recorded: the key is free for the untampered request.
        using var clean = await _authorizer.AuthorizeAsync(TestAuthorizer.Request(await _authorizer.EncryptCardAsync(TestCards.Approves)), "tampered");
        Assert.Equal(HttpStatusCode.Created, clean.StatusCode);
    }

    [Theory]
    [InlineData("0.00 EUR")]
    [InlineData("-1.00 EUR")]
    [InlineData("100 PTS")]
    public async Task AmountNotAboveZeroOrNotMoney_IsRefused(string amount)
    {
        using var response = await _authorizer.AuthorizeAsync(TestAuthorizer.Request(await _authorizer.EncryptCardAsync(TestCards.Approves), amount), Guid.NewGuid().ToString());

        Assert.Equal(ProblemCode.AuthorizationAmountInvalid.Code, await TestAuthorizer.ProblemCodeOf(response, ProblemCode.AuthorizationAmountInvalid));
    }

    [Theory]
    [InlineData(null)]
    [InlineData("")]
    [InlineData("has space")]
    public async Task MissingOrBadIdempotencyKey_IsRefused(string? key)
    {
        using var message = new HttpRequestMessage(HttpMethod.Post, "/v1/authorizations")
        {
            Content = JsonContent.Create(TestAuthorizer.Request(await _authorizer.EncryptCardAsync(TestCards.Approves)), options: ProtocolJson.Options),
        };
        if (key is not null)
        {
            message.Headers.TryAddWithoutValidation("Idempotency-Key", key);
        }

        using var response = await _authorizer.Http.SendAsync(message);

        Assert.Equal(ProblemCode.IdempotencyKeyRequired.Code, await TestAuthorizer.ProblemCodeOf(response, ProblemCode.IdempotencyKeyRequired));
    }

    [Fact]
    public async Task SameKeySameBody_AnswersTheSameAuthorization_AndAnotherBodyIsAConflict()
    {
        var cardData = await _authorizer.EncryptCardAsync(TestCards.Approves);
        using var first = await _authorizer.AuthorizeAsync(TestAuthorizer.Request(cardData), "same-key");
        using var again = await _authorizer.AuthorizeAsync(TestAuthorizer.Request(cardData), "same-key");
        using var otherAmount = await _authorizer.AuthorizeAsync(TestAuthorizer.Request(cardData, amount: "26.00 EUR"), "same-key");
        using var otherReference = await _authorizer.AuthorizeAsync(TestAuthorizer.Request(cardData, reference: "topup-2"), "same-key");

        Assert.Equal(HttpStatusCode.Created, first.StatusCode);
        Assert.Equal(HttpStatusCode.OK, again.StatusCode);
        Assert.Equal(await TestAuthorizer.ReadAsync<CreditAuthorization>(first), await TestAuthorizer.ReadAsync<CreditAuthorization>(again));
        Assert.Equal(ProblemCode.IdempotencyConflict.Code, await TestAuthorizer.ProblemCodeOf(otherAmount, ProblemCode.IdempotencyConflict));
        Assert.Equal(ProblemCode.IdempotencyConflict.Code, await TestAuthorizer.ProblemCodeOf(otherReference, ProblemCode.IdempotencyConflict));
    }

    [Fact]
    public async Task SameKeySentTogether_MakesOneAuthorization()
    {
        var request = TestAuthorizer.Request(await _authorizer.EncryptCardAsync(TestCards.Approves));

        var answers = await Task.WhenAll(Enumerable.Range(0, 8).Select(async _ =>
        {
            using var response = await _authorizer.AuthorizeAsync(request, "together");
            return await TestAuthorizer.ReadAsync<CreditAuthorization>(response);
        }));

        Assert.Single(answers.Select(a => a.Id).Distinct());
    }

    public static TheoryData<string?> WrongAuthorizations() => [null, "Bearer not-the-key-0123456789", "Basic dGVzdA==", "Bearer " + TestAuthorizer.ApiKey + "x"];

    [Theory]
    [MemberData(nameof(WrongAuthorizations))]
    public async Task MissingOrWrongApiKey_Is401_OnEveryAuthorizationEndpoint(string? authorization)
    {
        using var http = new HttpClient { BaseAddress = _authorizer.Address };
        if (authorization is not null)
        {
            http.DefaultRequestHeaders.TryAddWithoutValidation("Authorization", authorization);
        }

        var id = Guid.NewGuid();
        using var authorize = await http.PostAsJsonAsync("/v1/authorizations", TestAuthorizer.Request("x"), ProtocolJson.Options);
        using var read = await http.GetAsync(new Uri($"/v1/authorizations/{id}", UriKind.Relative));
        using var lookUp = await http.GetAsync(new Uri($"/v1/authorizations?idempotencyKey={id}", UriKind.Relative));
        using var capture = await http.PostAsJsonAsync($"/v1/authorizations/{id}/capture", new CaptureRequest(Money.Parse("1.00 EUR")), ProtocolJson.Options);
        using var cancel = await http.PostAsJsonAsync($"/v1/authorizations/{id}/void", new VoidRequest("x"), ProtocolJson.Options);

        foreach (var response in new[] { authorize, read, lookUp, capture, cancel })
        {
            Assert.Equal(ProblemCode.AuthorizerUnauthorized.Code, await TestAuthorizer.ProblemCodeOf(response, ProblemCode.AuthorizerUnauthorized));
            Assert.Equal("Bearer", response.Headers.WwwAuthenticate.Single().Scheme);
        }
    }

    [Fact]
    public async Task OpenEndpoints_NeedNoApiKey()
    {
        using var http = new HttpClient { BaseAddress = _authorizer.Address };

        using var keys = await http.GetAsync(new Uri("/v1/keys", UriKind.Relative));
        using var health = await http.GetAsync(new Uri("/health", UriKind.Relative));
        using var document = await http.GetAsync(new Uri("/openapi/v1.json", UriKind.Relative));

        Assert.Equal(HttpStatusCode.OK, keys.StatusCode);
        Assert.Equal("application/jwk-set+json", keys.Content.Headers.ContentType?.MediaType);
        var set = Protocol.Jose.JsonWebKeySet.Parse(await keys.Content.ReadAsStringAsync());
        Assert.Equal(["ECDH-ES"], set.Keys.Select(k => k.Alg));
        Assert.Equal(HttpStatusCode.OK, health.StatusCode);
        Assert.Equal(HttpStatusCode.OK, document.StatusCode);
        var text = await document.Content.ReadAsStringAsync();
        foreach (var path in new[] { "/v1/keys", "/v1/authorizations", "/v1/authorizations/{id}", "/v1/authorizations/{id}/capture", "/v1/authorizations/{id}/void", "/health" })
        {
            Assert.Contains($"\"{path}\"", text, StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task Capture_UpToTheAmount_Once()
    {
        var authorization = await _authorizer.AuthorizeCardAsync(TestCards.Approves, "25.00 EUR");

        using var tooMuch = await _authorizer.CaptureAsync(authorization.Id, "25.01 EUR");
        using var otherCurrency = await _authorizer.CaptureAsync(authorization.Id, "20.00 USD");
        using var captured = await _authorizer.CaptureAsync(authorization.Id, "20.00 EUR");
        using var again = await _authorizer.CaptureAsync(authorization.Id, "20.00 EUR");
        using var otherAmount = await _authorizer.CaptureAsync(authorization.Id, "25.00 EUR");
        using var read = await _authorizer.Http.GetAsync(new Uri($"/v1/authorizations/{authorization.Id}", UriKind.Relative));

        Assert.Equal(ProblemCode.CaptureExceedsAuthorization.Code, await TestAuthorizer.ProblemCodeOf(tooMuch, ProblemCode.CaptureExceedsAuthorization));
        Assert.Equal(ProblemCode.CaptureExceedsAuthorization.Code, await TestAuthorizer.ProblemCodeOf(otherCurrency, ProblemCode.CaptureExceedsAuthorization));
        Assert.Equal(HttpStatusCode.OK, captured.StatusCode);
        var first = await TestAuthorizer.ReadAsync<CreditAuthorization>(captured);
        Assert.Equal(Money.Parse("20.00 EUR"), first.Captured);
        Assert.NotNull(first.CapturedAt);
        Assert.Equal(first, await TestAuthorizer.ReadAsync<CreditAuthorization>(again));
        Assert.Equal(ProblemCode.AuthorizationCaptured.Code, await TestAuthorizer.ProblemCodeOf(otherAmount, ProblemCode.AuthorizationCaptured));
        Assert.Equal(first, await TestAuthorizer.ReadAsync<CreditAuthorization>(read));
    }

    [Fact]
    public async Task Void_IsIdempotent_AndCaptureAfterVoidIsRefused()
    {
        var authorization = await _authorizer.AuthorizeCardAsync(TestCards.Approves);

        using var voided = await _authorizer.VoidAsync(authorization.Id);
        using var again = await _authorizer.VoidAsync(authorization.Id, "another_reason");
        using var capture = await _authorizer.CaptureAsync(authorization.Id, "25.00 EUR");

        Assert.Equal(HttpStatusCode.OK, voided.StatusCode);
        var first = await TestAuthorizer.ReadAsync<CreditAuthorization>(voided);
        Assert.NotNull(first.VoidedAt);
        Assert.Equal(first, await TestAuthorizer.ReadAsync<CreditAuthorization>(again));
        Assert.Equal(ProblemCode.AuthorizationVoided.Code, await TestAuthorizer.ProblemCodeOf(capture, ProblemCode.AuthorizationVoided));
    }

    [Fact]
    public async Task VoidAfterCapture_IsRefused()
    {
        var authorization = await _authorizer.AuthorizeCardAsync(TestCards.Approves);
        using var captured = await _authorizer.CaptureAsync(authorization.Id, "25.00 EUR");

        using var voided = await _authorizer.VoidAsync(authorization.Id);

        Assert.Equal(HttpStatusCode.OK, captured.StatusCode);
        Assert.Equal(ProblemCode.AuthorizationCaptured.Code, await TestAuthorizer.ProblemCodeOf(voided, ProblemCode.AuthorizationCaptured));
    }

    [Fact]
    public async Task DeclinedAuthorization_CannotBeCapturedOrVoided()
    {
        var authorization = await _authorizer.AuthorizeCardAsync(TestCards.Declines);

        using var capture = await _authorizer.CaptureAsync(authorization.Id, "25.00 EUR");
        using var voided = await _authorizer.VoidAsync(authorization.Id);

        Assert.Equal(ProblemCode.AuthorizationDeclined.Code, await TestAuthorizer.ProblemCodeOf(capture, ProblemCode.AuthorizationDeclined));
        Assert.Equal(ProblemCode.AuthorizationDeclined.Code, await TestAuthorizer.ProblemCodeOf(voided, ProblemCode.AuthorizationDeclined));
    }

    [Fact]
    public async Task UnknownAuthorization_IsNotFound()
    {
        var id = Guid.NewGuid();
        using var read = await _authorizer.Http.GetAsync(new Uri($"/v1/authorizations/{id}", UriKind.Relative));
        using var capture = await _authorizer.CaptureAsync(id, "1.00 EUR");
        using var voided = await _authorizer.VoidAsync(id);

        foreach (var response in new[] { read, capture, voided })
        {
            Assert.Equal(ProblemCode.AuthorizationNotFound.Code, await TestAuthorizer.ProblemCodeOf(response, ProblemCode.AuthorizationNotFound));
        }
    }

    [Fact]
    public async Task CaptureAfterTheAuthorizationExpired_IsRefused()
    {
        var time = new ManualTime(DateTimeOffset.UtcNow);
        await using var authorizer = await TestAuthorizer.StartAsync(time);
        var authorization = await authorizer.AuthorizeCardAsync(TestCards.Approves);

        time.Advance(authorizer.Options.AuthorizationLifetime);
        using var capture = await authorizer.CaptureAsync(authorization.Id, "25.00 EUR");
        using var voided = await authorizer.VoidAsync(authorization.Id);

        Assert.Equal(ProblemCode.AuthorizationExpired.Code, await TestAuthorizer.ProblemCodeOf(capture, ProblemCode.AuthorizationExpired));
        Assert.Equal(HttpStatusCode.OK, voided.StatusCode);
    }

    [Theory]
    [InlineData("{\"amount\":{\"minorUnits\":100,\"currency\":\"EUR\"},\"reference\":\"r\"}")]
    [InlineData("{\"amount\":{\"minorUnits\":1.5,\"currency\":\"EUR\"},\"reference\":\"r\",\"cardData\":\"x\"}")]
    [InlineData("{\"amount\":{\"minorUnits\":100,\"currency\":\"EUR\"},\"reference\":\"r\",\"cardData\":\"x\",\"pan\":\"4242424242424242\"}")]
    [InlineData("[]")]
    public async Task BodyOutsideTheContract_IsMalformed_AndNotEchoed(string body)
    {
        using var message = new HttpRequestMessage(HttpMethod.Post, "/v1/authorizations") { Content = new StringContent(body, System.Text.Encoding.UTF8, "application/json") };
        message.Headers.Add("Idempotency-Key", Guid.NewGuid().ToString());

        using var response = await _authorizer.Http.SendAsync(message);

        Assert.Equal(ProblemCode.RequestMalformed.Code, await TestAuthorizer.ProblemCodeOf(response, ProblemCode.RequestMalformed));
        // The detail is the only text made from the request; the rest of the problem (its traceId,
        // random hex) may hold "4242" by chance, and did once, but never the card number.
        using var problem = System.Text.Json.JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        Assert.DoesNotContain("4242", problem.RootElement.GetProperty("detail").GetString(), StringComparison.Ordinal);
        Assert.DoesNotContain("4242424242424242", problem.RootElement.GetRawText(), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("")]
    [InlineData("with space")]
    public async Task BadReference_IsMalformed(string reference)
    {
        using var response = await _authorizer.AuthorizeAsync(TestAuthorizer.Request(await _authorizer.EncryptCardAsync(TestCards.Approves), reference: reference), Guid.NewGuid().ToString());

        Assert.Equal(ProblemCode.RequestMalformed.Code, await TestAuthorizer.ProblemCodeOf(response, ProblemCode.RequestMalformed));
    }
}
