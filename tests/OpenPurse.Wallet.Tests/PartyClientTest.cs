using System.Net;
using System.Text;
using OpenPurse.Protocol.Messages;
using OpenPurse.Wallet.Http;
using OpenPurse.Wallet.Purchase;

namespace OpenPurse.Wallet.Tests;

/// <summary>How the wallet reads another party's HTTP answers: bounded, and every failure a typed error.</summary>
public sealed class PartyClientTest
{
    [Fact]
    public async Task GetAsync_ProblemDetailsWithCode_RefusedWithThatCode()
    {
        var client = Client(_ => new HttpResponseMessage(HttpStatusCode.UnprocessableEntity)
        {
            Content = new StringContent("""{"type":"https://openpurse.org/problems/bill.expired","title":"Expired","status":422,"detail":"The bill expired.","code":"bill.expired"}""", Encoding.UTF8, "application/problem+json"),
        });

        var error = await Assert.ThrowsAsync<WalletException>(() => client.GetAsync<SettlementView>("v1/x", CancellationToken.None));

        Assert.Equal("operator.refused:bill.expired", error.Code);
        Assert.Contains("The bill expired.", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task GetAsync_ServerErrorWithoutBody_UnavailableWithHttpCode()
    {
        var client = Client(_ => new HttpResponseMessage(HttpStatusCode.BadGateway));

        var error = await Assert.ThrowsAsync<WalletException>(() => client.GetAsync<SettlementView>("v1/x", CancellationToken.None));

        Assert.Equal("operator.unavailable:http_502", error.Code);
    }

    [Fact]
    public async Task GetAsync_ConnectionFails_Unreachable()
    {
        var client = Client(_ => throw new HttpRequestException("Connection refused"));

        var error = await Assert.ThrowsAsync<WalletException>(() => client.GetAsync<SettlementView>("v1/x", CancellationToken.None));

        Assert.Equal("operator.unreachable", error.Code);
    }

    [Fact]
    public async Task GetAsync_UnknownMember_Malformed()
    {
        var client = Client(_ => new HttpResponseMessage(HttpStatusCode.OK) { Content = new StringContent("""{"receipt":"x","extra":1}""") });

        var error = await Assert.ThrowsAsync<WalletException>(() => client.GetAsync<ReceiptDelivery>("v1/x", CancellationToken.None));

        Assert.Equal("operator.malformed", error.Code);
    }

    [Fact]
    public async Task GetTextAsync_BodyAtLimit_Read()
    {
        var client = Client(_ => new HttpResponseMessage(HttpStatusCode.OK) { Content = new StringContent(new string('a', 1000)) });

        var text = await client.GetTextAsync("v1/x", new Dictionary<string, string>(), 1000, CancellationToken.None);

        Assert.Equal(1000, text.Length);
    }

    [Fact]
    public async Task GetTextAsync_BodyOnePastLimitWithoutLength_Refused()
    {
        var client = Client(_ => new HttpResponseMessage(HttpStatusCode.OK) { Content = new StreamContent(new MemoryStream(new byte[1001])) });

        var error = await Assert.ThrowsAsync<WalletException>(() => client.GetTextAsync("v1/x", new Dictionary<string, string>(), 1000, CancellationToken.None));

        Assert.Equal("operator.malformed", error.Code);
    }

    [Fact]
    public async Task GetAsync_BaseWithPathAndNoSlash_KeepsThePath()
    {
        Uri? asked = null;
        var client = Client(r =>
        {
            asked = r.RequestUri;
            return new HttpResponseMessage(HttpStatusCode.OK) { Content = new StringContent("""{"receipt":"r"}""") };
        }, new Uri("http://operator.test/api"));

        await client.GetAsync<ReceiptDelivery>("v1/x", CancellationToken.None);

        Assert.Equal("http://operator.test/api/v1/x", asked!.ToString());
        Assert.Equal(1, client.Requests);
    }

    private static PartyClient Client(Func<HttpRequestMessage, HttpResponseMessage> answer, Uri? baseAddress = null) =>
        new(new HttpClient(new LambdaHandler(answer)) { BaseAddress = baseAddress ?? new Uri("http://operator.test/") }, "operator", ProtocolJson.Options);

    private sealed class LambdaHandler(Func<HttpRequestMessage, HttpResponseMessage> answer) : HttpMessageHandler
    {
        protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken) => Task.FromResult(answer(request));
    }
}
