using System.Globalization;
using System.Net;
using OpenPurse.Authorizer.Cards;
using OpenPurse.Protocol.Messages;
using OpenPurse.Testing;

namespace OpenPurse.Authorizer.Tests;

/// <summary>The real program, <c>openpurse-authorizer serve</c>, killed between an authorization and its capture.</summary>
public sealed class ProcessTest
{
    private const string Program = "openpurse-authorizer";

    [Fact]
    public async Task KilledBetweenAuthorizeAndCapture_TheRestartedProcessKnowsTheAuthorizationItsKeyAndTheFailedFirstAttempt()
    {
        var directory = Directory.CreateTempSubdirectory("openpurse-authorizer-").FullName;
        try
        {
            var port = HaProxy.FreePort();
            var url = new Uri($"http://127.0.0.1:{port.ToString(CultureInfo.InvariantCulture)}/");
            using var http = new HttpClient { BaseAddress = url };
            http.DefaultRequestHeaders.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", TestAuthorizer.ApiKey);

            CreditAuthorization approved;
            AuthorizeRequest request, failingOnce;
            using (var first = Start(directory, port))
            {
                await first.WaitReadyAsync(new Uri(url, "health"), Program);
                request = TestAuthorizer.Request(await EncryptAsync(http, TestCards.Approves));
                using var response = await PostAsync(http, request, "restart-key");
                Assert.Equal(HttpStatusCode.Created, response.StatusCode);
                approved = await TestAuthorizer.ReadAsync<CreditAuthorization>(response);
                failingOnce = TestAuthorizer.Request(await EncryptAsync(http, TestCards.FailsOnce), reference: "fail-once");
                using var failed = await PostAsync(http, failingOnce, "fail-once-key");
                Assert.Equal(HttpStatusCode.ServiceUnavailable, failed.StatusCode);
                first.Kill();
                Assert.DoesNotContain(TestCards.Approves, first.Output, StringComparison.Ordinal);
            }

            using var second = Start(directory, port);
            await second.WaitReadyAsync(new Uri(url, "health"), Program);
            using var retried = await PostAsync(http, request, "restart-key");
            using var failedBefore = await PostAsync(http, failingOnce, "fail-once-key");
            using var captured = await http.PostAsync($"/v1/authorizations/{approved.Id:D}/capture", Json(new CaptureRequest(approved.Amount)));
            using var capturedAgain = await http.PostAsync($"/v1/authorizations/{approved.Id:D}/capture", Json(new CaptureRequest(approved.Amount)));
            using var voided = await http.PostAsync($"/v1/authorizations/{approved.Id:D}/void", Json(new VoidRequest("late")));

            Assert.Equal(HttpStatusCode.OK, retried.StatusCode);
            Assert.Equal(approved, await TestAuthorizer.ReadAsync<CreditAuthorization>(retried));
            Assert.Equal(HttpStatusCode.Created, failedBefore.StatusCode);
            Assert.Equal(AuthorizationStatus.Approved, (await TestAuthorizer.ReadAsync<CreditAuthorization>(failedBefore)).Status);
            Assert.Equal(HttpStatusCode.OK, captured.StatusCode);
            Assert.Equal(approved.Amount, (await TestAuthorizer.ReadAsync<CreditAuthorization>(captured)).Captured);
            Assert.Equal(HttpStatusCode.OK, capturedAgain.StatusCode);
            Assert.Equal(ProblemCode.AuthorizationCaptured.Code, await TestAuthorizer.ProblemCodeOf(voided, ProblemCode.AuthorizationCaptured));
            Assert.Contains("(loaded)", second.Output, StringComparison.Ordinal);
            second.Kill();
            Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
            SecretsTest.AssertPrivate(directory);
        }
        finally
        {
            TestAuthorizer.DeleteDirectory(directory);
        }
    }

    [Fact]
    public async Task Help_PrintsTheTestCards_AndExits0_NoCommandExits2()
    {
        var (helpExit, help) = await PartyProcess.RunAsync(Program, ["--help"], new Dictionary<string, string>());
        var (bareExit, bare) = await PartyProcess.RunAsync(Program, [], new Dictionary<string, string>());

        Assert.Equal(0, helpExit);
        Assert.Contains(TestCards.Approves, help, StringComparison.Ordinal);
        Assert.Contains("serve", help, StringComparison.Ordinal);
        Assert.Equal(2, bareExit);
        Assert.Contains("Say which command to run.", bare, StringComparison.Ordinal);
    }

    [Fact]
    public async Task ShortApiKey_OrANonLoopbackAddress_IsBadConfiguration_Exit2()
    {
        var directory = Directory.CreateTempSubdirectory("openpurse-authorizer-").FullName;
        try
        {
            var (shortExit, shortKey) = await PartyProcess.RunAsync(Program, ["serve", "--Authorizer:DataDirectory=" + directory, "--Authorizer:ApiKeys:0=short"], new Dictionary<string, string>());
            var (openExit, open) = await PartyProcess.RunAsync(Program, ["serve", "--Authorizer:DataDirectory=" + directory, "--Authorizer:Urls=http://0.0.0.0:5095"], new Dictionary<string, string>());

            Assert.Equal(2, shortExit);
            Assert.Contains("ApiKeys:0", shortKey, StringComparison.Ordinal);
            Assert.DoesNotContain("short", shortKey.Replace("shorter", "", StringComparison.Ordinal), StringComparison.Ordinal);
            Assert.Equal(2, openExit);
            Assert.Contains("loopback", open, StringComparison.Ordinal);
        }
        finally
        {
            TestAuthorizer.DeleteDirectory(directory);
        }
    }

    private static PartyProcess Start(string directory, int port) => PartyProcess.Start(
        Program,
        ["serve", "--Authorizer:DataDirectory=" + directory, "--Authorizer:Urls=http://127.0.0.1:" + port.ToString(CultureInfo.InvariantCulture)],
        // The key by environment, as in production: not on a command line that others can read.
        new Dictionary<string, string> { ["Authorizer__ApiKeys__0"] = TestAuthorizer.ApiKey });

    private static async Task<string> EncryptAsync(HttpClient http, string pan)
    {
        var keys = Protocol.Jose.JsonWebKeySet.Parse(await http.GetStringAsync(new Uri("v1/keys", UriKind.Relative)));
        return Protocol.Jose.Jwe.Encrypt(ProtocolJson.ToUtf8(new CardData(pan, TestAuthorizer.ValidExpiry, TestCards.Pin)), keys.Keys.Single());
    }

    private static async Task<HttpResponseMessage> PostAsync(HttpClient http, AuthorizeRequest request, string key)
    {
        using var message = new HttpRequestMessage(HttpMethod.Post, "v1/authorizations") { Content = Json(request) };
        message.Headers.Add("Idempotency-Key", key);
        return await http.SendAsync(message);
    }

    private static ByteArrayContent Json(object body)
    {
        var content = new ByteArrayContent(ProtocolJson.ToUtf8(body));
        content.Headers.ContentType = new System.Net.Http.Headers.MediaTypeHeaderValue("application/json");
        return content;
    }
}
