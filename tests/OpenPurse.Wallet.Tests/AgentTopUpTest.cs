using System.Net;
using Microsoft.Extensions.Logging;
using OpenPurse.Protocol.Messages;
using OpenPurse.Protocol.Purse;

namespace OpenPurse.Wallet.Tests;

/// <summary>Top-ups through a real agent: the operator's page asks, the person types the credit card on the agent's page (FIG. 29).</summary>
public sealed class AgentTopUpTest
{
    private const string Number = "4242 4242 4242 4242";
    private const string Digits = "4242424242424242";
    private const string Expiry = "12/49";
    private const string Pin = "852963";

    [Fact]
    public async Task TopUp_ThroughTheForm_WithTheTestCard_Completes_AndTheCardDataIsInNoLog()
    {
        var logs = new RecordingLoggerProvider();
        await using var kit = await AgentKit.StartAsync(configure: builder =>
        {
            builder.Logging.SetMinimumLevel(LogLevel.Trace);
            builder.Logging.AddProvider(logs);
        });

        var id = await OpenAsync(kit);
        var (page, html) = await kit.PageAsync(id);
        Assert.Equal(HttpStatusCode.OK, page.StatusCode);
        Assert.Contains("id=\"fig-29\"", html, StringComparison.Ordinal);
        Assert.Contains("20.00 EUR", html, StringComparison.Ordinal);
        Assert.Contains(WalletKit.TestCardId.Digits[^4..], html, StringComparison.Ordinal);
        Assert.Contains("autocomplete=\"cc-number\"", html, StringComparison.Ordinal);

        using var decided = await kit.DecideAsync(id, "approve", fields: CardFields(Number, Expiry, Pin));
        Assert.Equal(HttpStatusCode.SeeOther, decided.StatusCode);

        var done = await kit.WaitForAsync("topups", id, "completed", AgentKit.OperatorOrigin);
        Assert.Equal("120.00 EUR", done.GetProperty("result").GetProperty("balanceAfter").GetString());
        Assert.Equal(WalletKit.Eur(12_000), kit.Wallet.Balance());
        Assert.Equal(new CardData(Digits, Expiry, Pin), Assert.Single(kit.Wallet.Operator.CardData));
        Assert.NotEmpty(logs.Lines);
        Assert.All(logs.Lines, line =>
        {
            Assert.DoesNotContain(Digits, line, StringComparison.Ordinal);
            Assert.DoesNotContain("4242 4242", line, StringComparison.Ordinal);
            Assert.DoesNotContain(Pin, line, StringComparison.Ordinal);
        });
        Assert.DoesNotContain(Pin, (await kit.PageAsync(id)).Html, StringComparison.Ordinal);
    }

    [Fact]
    public async Task TopUp_BadCardData_ShowsTheCode_ChargesNothing_AndAsksAgain()
    {
        await using var kit = await AgentKit.StartAsync();
        var id = await OpenAsync(kit);

        using var decided = await kit.DecideAsync(id, "approve", fields: CardFields("4242 4242 4242 4241", Expiry, Pin));
        Assert.Equal(HttpStatusCode.SeeOther, decided.StatusCode);

        var html = (await kit.PageAsync(id)).Html;
        Assert.Contains("data-code=\"credit_card.number_invalid\"", html, StringComparison.Ordinal);
        Assert.DoesNotContain("4241", html, StringComparison.Ordinal);
        await kit.WaitForAsync("topups", id, "awaiting-card-data", AgentKit.OperatorOrigin);
        Assert.Empty(kit.Wallet.Operator.TopUpRequests);
        Assert.DoesNotContain(PurseInstruction.Credit, kit.Wallet.Reader.Instructions);
        Assert.Equal(WalletKit.Eur(10_000), kit.Wallet.Balance());
    }

    [Fact]
    public async Task TopUp_FromAShopsOrigin_IsRefused()
    {
        await using var kit = await AgentKit.StartAsync();

        var (status, body) = await kit.SendAsync(AgentKit.Api(HttpMethod.Post, "/v1/topups", AgentKit.StoreOrigin, new { amount = "20.00 EUR" }));

        Assert.Equal(HttpStatusCode.Forbidden, status);
        Assert.Equal("agent.origin_refused", body.GetProperty("code").GetString());
    }

    [Fact]
    public async Task UseOperator_TopUpsComeFromTheNewOperatorsOriginOnly()
    {
        await using var kit = await AgentKit.StartAsync();
        const string later = "http://operator-started-later.test";
        kit.Agent.Allow(later);

        kit.Agent.UseOperator(new Uri(later + "/"));

        var (before, refused) = await kit.SendAsync(AgentKit.Api(HttpMethod.Post, "/v1/topups", AgentKit.OperatorOrigin, new { amount = "20.00 EUR" }));
        var (now, _) = await kit.SendAsync(AgentKit.Api(HttpMethod.Post, "/v1/topups", later, new { amount = "20.00 EUR" }));
        Assert.Equal(HttpStatusCode.Forbidden, before);
        Assert.Equal("agent.origin_refused", refused.GetProperty("code").GetString());
        Assert.Equal(HttpStatusCode.Created, now);
        Assert.Equal(new Uri(later + "/"), kit.Agent.OperatorUrl);
        Assert.Throws<ArgumentException>(() => kit.Agent.UseOperator(new Uri("ftp://operator.test/")));
    }

    [Fact]
    public async Task TopUp_Declined_ChargesNothing()
    {
        await using var kit = await AgentKit.StartAsync();
        var id = await OpenAsync(kit);

        using var decided = await kit.DecideAsync(id, "decline");

        Assert.Equal(HttpStatusCode.SeeOther, decided.StatusCode);
        var (status, body) = await kit.SendAsync(AgentKit.Api(HttpMethod.Get, $"/v1/topups/{id:D}", AgentKit.OperatorOrigin));
        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal("declined", body.GetProperty("state").GetString());
        Assert.Empty(kit.Wallet.Operator.TopUpRequests);
    }

    private static async Task<Guid> OpenAsync(AgentKit kit)
    {
        var (status, body) = await kit.SendAsync(AgentKit.Api(HttpMethod.Post, "/v1/topups", AgentKit.OperatorOrigin, new { amount = "20.00 EUR" }));
        Assert.Equal(HttpStatusCode.Created, status);
        Assert.Equal("awaiting-card-data", body.GetProperty("state").GetString());
        return body.GetProperty("topUpId").GetGuid();
    }

    private static KeyValuePair<string, string>[] CardFields(string number, string expiry, string pin) =>
        [new("number", number), new("expiry", expiry), new("pin", pin)];
}
