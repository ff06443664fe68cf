using System.Diagnostics;
using System.Net;
using System.Net.Http.Json;
using System.Security.Cryptography;
using Microsoft.Extensions.DependencyInjection;
using OpenPurse.Card;
using OpenPurse.Operator.Issuance;
using OpenPurse.Operator.Security;
using OpenPurse.Protocol;
using OpenPurse.Protocol.Apdu;
using OpenPurse.Protocol.Jose;
using OpenPurse.Protocol.Messages;
using OpenPurse.Protocol.Purse;
using OpenPurse.Testing;

namespace OpenPurse.Operator.Tests;

/// <summary>The operator with its keys in a SoftHSM2 token: `vault init`, then a whole settlement.</summary>
[Collection(SoftHsmInProcess.Name)]
public sealed class Pkcs11OperatorTest : IDisposable
{
    private const string AdminToken = "test-admin-token";
    private const int CommandTimeoutMs = 60_000;

    private readonly SoftHsmToken _token = SoftHsmToken.Create();
    private readonly string _directory = Directory.CreateTempSubdirectory("openpurse-operator-pkcs11-").FullName;

    private static Money Eur(long minor) => new(minor, Currency.Eur);

    [IntegrationFact(Components.SoftHsm)]
    public async Task Settlement_KeysInToken_CompletesAndSignaturesVerify()
    {
        var app = await OperatorHost.BuildAsync(new OperatorOptions
        {
            DataDirectory = Path.Combine(_directory, "operator"),
            KeyVault = "pkcs11",
            Pkcs11 = new Pkcs11Options { Library = SoftHsmToken.Library, TokenLabel = _token.Label, PinEnvironmentVariable = _token.PinEnvironmentVariable },
            CreateVaultIfMissing = true,
            Urls = "http://127.0.0.1:0",
            AdminUrls = "http://127.0.0.1:0",
            AdminToken = AdminToken,
        });
        // The host registers the vault (in its key ring) as an instance, which the container does not dispose: the test does.
        using var ring = (OperatorKeyRing)app.Services.GetRequiredService<ISecurityModule>();
        var vault = (Pkcs11KeyVault)ring.Vault;
        await using (app)
        {
            await app.StartAsync();
            var listeners = app.Services.GetRequiredService<Api.Listeners>();
            using var http = new HttpClient { BaseAddress = Assert.Single(listeners.PublicUrls) };
            using var admin = new HttpClient { BaseAddress = Assert.Single(listeners.AdminUrls) };
            var operatorKeys = JsonWebKeySet.Parse(await http.GetStringAsync(new Uri("/.well-known/jwks.json", UriKind.Relative)));
            Assert.Equal(vault.OperatorKey.KeyId, Assert.Single(operatorKeys.Keys).Kid);
            using var storeKey = EcdsaSigningKey.Generate();
            await RegisterStoreAsync(admin, storeKey);

            var issuer = app.Services.GetRequiredService<CardIssuer>();
            var keys = await issuer.IssueAsync(CancellationToken.None);
            using var card = EmulatedCard.Create(Path.Combine(_directory, "card.bin"), new CardPersonalization(keys.CardId, keys.KeyVersion, keys.EncKey, keys.MacKey, 1_000_000));
            CryptographicOperations.ZeroMemory(keys.EncKey);
            CryptographicOperations.ZeroMemory(keys.MacKey);
            var reader = new OperatorKit.CardReader(card);
            Assert.Equal(Eur(10_000), await issuer.LoadAsync(reader, Eur(10_000), CancellationToken.None));

            var bill = SignedMessage.Sign(storeKey, new Bill("shop-000001", "shop", null, Eur(1_250), [new BillItem("ebook-1", "An e-book", 1, Eur(1_250))], DateTimeOffset.UtcNow, DateTimeOffset.UtcNow.AddMinutes(15)), MessageTypes.Bill);
            Assert.True(reader.Transmit(CardHostSession.Select()).IsOk);
            var greeting = reader.Transmit(CardHostSession.InitializeUpdate(SignedMessage.HostChallengeFor(bill)));
            using var startResponse = await http.PostAsJsonAsync(new Uri("/v1/settlements", UriKind.Relative), new StartSettlementRequest(bill, SettlementProfile.Signed, Convert.ToBase64String(greeting.Data)), ProtocolJson.Options);
            Assert.True(startResponse.IsSuccessStatusCode, await startResponse.Content.ReadAsStringAsync());
            var started = (await startResponse.Content.ReadFromJsonAsync<StartSettlementResponse>(ProtocolJson.Options))!;
            var info = SignedMessage.Verify<SettlementInfo>(started.SettlementInfo, operatorKeys, MessageTypes.SettlementInfo, out var infoError);
            Assert.True(info is not null, $"SIG2 does not verify: {infoError}.");

            Assert.True(CommandApdu.TryParse(Convert.FromBase64String(started.ExternalAuthenticate), out var externalAuthenticate));
            Assert.True(CommandApdu.TryParse(Convert.FromBase64String(started.Debit), out var debit));
            Assert.Equal(StatusWord.Ok, reader.Transmit(externalAuthenticate).Status);
            var answer = reader.Transmit(CardHostSession.WithApproval(debit, new Approval(Eur(1_250), SignedMessage.DigestBytes(bill))));
            Assert.Equal(StatusWord.Ok, answer.Status);
            using var completed = await http.PostAsJsonAsync(new Uri($"/v1/settlements/{started.SettlementId}/completion", UriKind.Relative), new CompleteSettlementRequest(Convert.ToBase64String(answer.ToBytes())), ProtocolJson.Options);

            Assert.Equal(HttpStatusCode.OK, completed.StatusCode);
            var body = (await completed.Content.ReadFromJsonAsync<CompleteSettlementResponse>(ProtocolJson.Options))!;
            var notice = SignedMessage.Verify<CompletionNotice>(body.CompletionNotice, operatorKeys, MessageTypes.CompletionNotice, out var noticeError);
            Assert.True(notice is not null, $"SIG3 does not verify: {noticeError}.");
            Assert.Equal((started.SettlementId, Eur(1_250)), (notice.SettlementId, notice.Amount));
            reader.Transmit(CardHostSession.Select());
            Assert.True(PurseStatus.TryParse(reader.Transmit(CardHostSession.GetData()).Data, out var status));
            // Value is conserved: what left the card is what the notice settles.
            Assert.Equal(Eur(10_000 - 1_250), status.BalanceOf(Currency.Eur));
            await app.StopAsync();
        }
    }

    [IntegrationFact(Components.SoftHsm)]
    public async Task VaultInit_Command_CreatesKeysOnceAndNeverPrintsThePin()
    {
        var first = await RunOperatorAsync(["vault", "init"], _token.PinEnvironmentVariable, _token.Pin);
        var second = await RunOperatorAsync(["vault", "init"], _token.PinEnvironmentVariable, _token.Pin);
        var wrong = await RunOperatorAsync(["vault", "init"], _token.PinEnvironmentVariable, "not-" + _token.Pin);

        Assert.True(first.ExitCode == 0, first.Output);
        Assert.Equal(2, first.Output.Split("generated").Length - 1);
        Assert.True(second.ExitCode == 0, second.Output);
        Assert.DoesNotContain("generated", second.Output, StringComparison.Ordinal);
        Assert.Equal(2, wrong.ExitCode);
        Assert.Contains("refused the PIN", wrong.Output, StringComparison.Ordinal);
        Assert.All(new[] { first, second, wrong }, run => Assert.DoesNotContain(_token.Pin, run.Output, StringComparison.Ordinal));
        using var vault = Pkcs11KeyVault.Open(new Pkcs11Options { Library = SoftHsmToken.Library, TokenLabel = _token.Label, PinEnvironmentVariable = _token.PinEnvironmentVariable }, createIfMissing: false);
        Assert.Contains(vault.OperatorKey.KeyId, first.Output, StringComparison.Ordinal);
    }

    public void Dispose()
    {
        _token.Dispose();
        Directory.Delete(_directory, recursive: true);
    }

    private static async Task RegisterStoreAsync(HttpClient http, EcdsaSigningKey key)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, new Uri("v1/admin/stores", UriKind.Relative))
        {
            Content = JsonContent.Create(new
            {
                storeId = "shop",
                name = "shop",
                mallId = (string?)null,
                notifyUrl = (string?)null,
                jwks = System.Text.Json.JsonDocument.Parse(new JsonWebKeySet([key.PublicKey]).ToJson()).RootElement,
            }),
        };
        request.Headers.Authorization = new("Bearer", AdminToken);
        using var response = await http.SendAsync(request);
        Assert.True(response.IsSuccessStatusCode, await response.Content.ReadAsStringAsync());
    }

    // The built openpurse-operator, configured through the environment as in production.
    private async Task<(int ExitCode, string Output)> RunOperatorAsync(string[] arguments, string pinVariable, string pin)
    {
        var start = new ProcessStartInfo("dotnet", ["exec", Path.Combine(AppContext.BaseDirectory, "openpurse-operator.dll"), .. arguments])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        start.Environment["SOFTHSM2_CONF"] = SoftHsmToken.ConfigurationPath;
        start.Environment["OpenPurse__Operator__DataDirectory"] = Path.Combine(_directory, "cli");
        start.Environment["OpenPurse__Operator__KeyVault"] = "pkcs11";
        start.Environment["OpenPurse__Operator__Pkcs11__Library"] = SoftHsmToken.Library;
        start.Environment["OpenPurse__Operator__Pkcs11__TokenLabel"] = _token.Label;
        start.Environment["OpenPurse__Operator__Pkcs11__PinEnvironmentVariable"] = pinVariable;
        start.Environment[pinVariable] = pin;
        using var process = Process.Start(start) ?? throw new InvalidOperationException("openpurse-operator did not start.");
        using var timeout = new CancellationTokenSource(CommandTimeoutMs);
        var output = process.StandardOutput.ReadToEndAsync(timeout.Token);
        var error = process.StandardError.ReadToEndAsync(timeout.Token);
        await process.WaitForExitAsync(timeout.Token);
        return (process.ExitCode, await output + await error);
    }
}
