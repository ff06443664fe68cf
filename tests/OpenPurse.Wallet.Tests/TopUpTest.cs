using OpenPurse.Protocol;
using OpenPurse.Protocol.Apdu;
using OpenPurse.Protocol.Messages;
using OpenPurse.Protocol.Purse;
using OpenPurse.Wallet.Cli;
using OpenPurse.Wallet.Http;
using OpenPurse.Wallet.Purchase;
using OpenPurse.Wallet.Tests.Fakes;
using Spectre.Console.Testing;

namespace OpenPurse.Wallet.Tests;

/// <summary><c>openpurse topup</c> against the fake operator (which plays the authorizer too), on a real emulated card holding 100.00 EUR.</summary>
public sealed class TopUpTest : IDisposable
{
    private const string Number = "4242 4242 4242 4242";
    private const string Digits = "4242424242424242";
    private const string Expiry = "12/49";

    // Six digits, so that the PIN cannot turn up by chance in an id or an amount of the output.
    private const string Pin = "852963";

    private readonly WalletKit _kit = new();
    private readonly TestConsole _console = new();
    private readonly StringWriter _output = new();
    private readonly StringWriter _error = new();

    public TopUpTest() => _console.Width(80);

    [Fact]
    public async Task TopUp_CardDetailsAsThreeLinesOnStdin_AddsTheAmount_CardDataReachesTheAuthorizerOnly()
    {
        var exit = await TopUpAsync($"{Number}\n{Expiry}\n{Pin}\n", "--yes");

        Assert.Equal(WalletCli.ExitOk, exit);
        Assert.Equal(WalletKit.Eur(12_000), _kit.Balance());
        Assert.Equal(new CardData(Digits, Expiry, Pin), Assert.Single(_kit.Operator.CardData));
        Assert.Contains("Top up 20.00 EUR, charged to the credit card ending 4242: balance 100.00 EUR → 120.00 EUR.", Flat(), StringComparison.Ordinal);
        Assert.Contains("Balance: 120.00 EUR", _console.Output, StringComparison.Ordinal);
        Assert.Equal(1, _kit.Operator.Count("POST v1/topups/"));

        // The card number travels only inside the JWE.
        var request = Assert.Single(_kit.Operator.TopUpRequests);
        Assert.DoesNotContain(Digits, request.CardData, StringComparison.Ordinal);
    }

    [Fact]
    public async Task TopUp_ThenCard_HistoryShowsTheTopUpWithDateAndCardEnding_WithinEightyColumns()
    {
        Assert.Equal(WalletCli.ExitOk, await TopUpAsync($"{Number}\n{Expiry}\n{Pin}\n", "--yes"));
        using var console = new TestConsole();
        console.Width(80);

        var exit = await WalletCli.RunAsync(["card", "--card", _kit.CardPath], Context(console, input: null));

        Assert.Equal(WalletCli.ExitOk, exit);
        var line = Assert.Single(console.Lines, l => l.Contains("card …4242", StringComparison.Ordinal));
        Assert.Contains(DateTimeOffset.UtcNow.ToString("yyyy-MM-dd", System.Globalization.CultureInfo.InvariantCulture), line, StringComparison.Ordinal);
        Assert.Contains("top-up", line, StringComparison.Ordinal);
        Assert.Contains("+20.00 EUR", line, StringComparison.Ordinal);
        Assert.Contains("120.00 EUR", line, StringComparison.Ordinal);
        Assert.All(console.Lines, l => Assert.True(l.Length <= 80, $"Wider than 80 columns: {l}"));
        Assert.DoesNotContain(Digits, await File.ReadAllTextAsync(PurchaseJournal.PathFor(_kit.CardPath)), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("4242 4242 4242 4241", Expiry, Pin, WalletErrors.CreditCardNumberInvalid)]
    [InlineData("4242", Expiry, Pin, WalletErrors.CreditCardNumberInvalid)]
    [InlineData("4242-4242-4242-424x", Expiry, Pin, WalletErrors.CreditCardNumberInvalid)]
    [InlineData(Number, "01/20", Pin, WalletErrors.CreditCardExpired)]
    [InlineData(Number, "13/49", Pin, WalletErrors.CreditCardExpiryInvalid)]
    [InlineData(Number, "1249", Pin, WalletErrors.CreditCardExpiryInvalid)]
    [InlineData(Number, Expiry, "12a4", WalletErrors.CreditCardPinInvalid)]
    [InlineData(Number, Expiry, "12", WalletErrors.CreditCardPinInvalid)]
    public async Task TopUp_MistypedNumberExpiryOrPin_RefusedBeforeAnyRequestOrCardCommand(string number, string expiry, string pin, string code)
    {
        var exit = await TopUpAsync($"{number}\n{expiry}\n{pin}\n", "--yes");

        Assert.Equal(WalletCli.ExitFailed, exit);
        Assert.Contains($"({code})", _console.Output, StringComparison.Ordinal);
        Assert.Contains("Nothing was sent.", Flat(), StringComparison.Ordinal);
        Assert.Empty(_kit.Operator.Requests);
        Assert.Empty(_kit.Reader.Instructions);
    }

    [Fact]
    public async Task TopUp_FewerThanThreeLinesOnStdin_RefusedBeforeAnyRequest()
    {
        var exit = await TopUpAsync($"{Number}\n{Expiry}\n", "--yes");

        Assert.Equal(WalletCli.ExitFailed, exit);
        Assert.Contains($"({WalletErrors.CreditCardMissing})", _console.Output, StringComparison.Ordinal);
        Assert.Empty(_kit.Operator.Requests);
    }

    [Fact]
    public void CreditCardEntry_ExpiryIsValidToTheEndOfItsMonth()
    {
        var lastDay = new DateTimeOffset(2029, 12, 31, 23, 0, 0, TimeSpan.Zero);

        Assert.Equal(Digits, CreditCardEntry.Check(Number, "12/29", "1234", lastDay).Pan);
        Assert.Equal(WalletErrors.CreditCardExpired, Assert.Throws<WalletException>(() => CreditCardEntry.Check(Number, "12/29", "1234", lastDay.AddHours(2))).Code);
    }

    public static TheoryData<string, Func<ValueUpdate, ValueUpdate>> ValueUpdateLies => new()
    {
        { "purpose return", u => u with { Purpose = ValueUpdatePurposes.Return } },
        { "another source", u => u with { SourceId = Guid.NewGuid() } },
        { "another amount", u => u with { Amount = u.Amount + WalletKit.Eur(1) } },
        { "another balance", u => u with { Balance = u.Balance + WalletKit.Eur(1) } },
        { "another value update id", u => u with { ValueUpdateId = Guid.NewGuid() } },
        { "another card", u => u with { CardId = CardId.FromSerial(940_000_000_000_999).Digits } },
        { "another CREDIT", u => u with { CreditDigest = u.OrderDigest } },
    };

    [Theory]
    [MemberData(nameof(ValueUpdateLies))]
    public async Task TopUp_ValueUpdateThatDoesNotDescribeTheTopUp_Refused_CardUnchanged(string lie, Func<ValueUpdate, ValueUpdate> edit)
    {
        _kit.Operator.EditValueUpdate = edit;

        var exit = await TopUpAsync($"{Number}\n{Expiry}\n{Pin}\n", "--yes");

        Assert.True(exit == WalletCli.ExitFailed, lie);
        Assert.Contains($"({WalletErrors.ValueUpdateMismatch})", _console.Output, StringComparison.Ordinal);
        AssertNothingCredited();
    }

    [Fact]
    public async Task TopUp_AuthorizerKeysNotSignedByTheOperator_RefusedBeforeTheCardDataIsSent()
    {
        _kit.Operator.TamperAuthorizerKeys = Tamper.OneByte;

        var exit = await TopUpAsync($"{Number}\n{Expiry}\n{Pin}\n", "--yes");

        Assert.Equal(WalletCli.ExitFailed, exit);
        Assert.Contains("(authorizer_keys.signature.", _console.Output, StringComparison.Ordinal);
        Assert.Empty(_kit.Operator.TopUpRequests);
        AssertNothingCredited();
    }

    [Fact]
    public async Task TopUp_NotAgreedAtThePrompt_SyncRunsAtOnce_NothingWrittenToTheCard()
    {
        // No --yes on a console that cannot ask: the wallet does not agree for the person.
        var exit = await TopUpAsync($"{Number}\n{Expiry}\n{Pin}\n");

        Assert.Equal(WalletCli.ExitFailed, exit);
        Assert.Contains($"({WalletErrors.TopUpNotConfirmed})", _console.Output, StringComparison.Ordinal);
        Assert.Contains("nothing was added to the card, and the credit card is not charged", Flat(), StringComparison.Ordinal);
        Assert.Equal(1, _kit.Operator.Count("POST v1/cards/sync"));
        AssertNothingCredited();
    }

    [Fact]
    public async Task TopUpFlow_PersonDeclines_SyncFollowsTheTopUpRequest()
    {
        var prompt = new AutoPrompt(approve: false);

        var e = await Assert.ThrowsAsync<WalletException>(() => Flow(prompt).RunAsync(WalletKit.Eur(2_000), new CardData(Digits, Expiry, Pin), CancellationToken.None));

        Assert.Equal(WalletErrors.TopUpNotConfirmed, e.Code);
        Assert.Equal(new TopUpConfirmation(WalletKit.Eur(2_000), "4242", WalletKit.Eur(10_000), WalletKit.Eur(12_000), WalletKit.TestCardId.Masked), prompt.TopUpConfirmation);
        var requests = _kit.Operator.Requests;
        Assert.True(requests.ToList().IndexOf("POST v1/cards/sync") > requests.ToList().IndexOf("POST v1/topups"));
        AssertNothingCredited();
    }

    [Theory]
    [InlineData("topup.declined", "declined the charge")]
    [InlineData("topup.pin_incorrect", "is not the credit card's PIN")]
    [InlineData("topup.card_limit", "above what the credit card allows")]
    [InlineData("topup.limit_exceeded", "5.00 EUR is left today")]
    [InlineData("card.sync_required", "run openpurse sync")]
    [InlineData("card.busy", "run openpurse sync")]
    public async Task TopUp_OperatorRefuses_PersonsWordsAndTheCode_ExitOne_NothingWritten(string code, string words)
    {
        _kit.Operator.RefuseTopUpWith = code;

        var exit = await TopUpAsync($"{Number}\n{Expiry}\n{Pin}\n", "--yes");

        Assert.Equal(WalletCli.ExitFailed, exit);
        Assert.Contains(words, Flat(), StringComparison.Ordinal);
        Assert.Contains(code, _console.Output, StringComparison.Ordinal);
        Assert.Contains("Nothing was added to the card or charged.", Flat(), StringComparison.Ordinal);
        AssertNothingCredited();
    }

    [Fact]
    public async Task TopUpFlow_AuthorizerUnavailable_SendsTheSameTopUpAgain_ThenCredits()
    {
        _kit.Operator.UnavailableTopUps = 2;

        var result = await Flow(new AutoPrompt()).RunAsync(WalletKit.Eur(2_000), new CardData(Digits, Expiry, Pin), CancellationToken.None);

        Assert.Equal(WalletKit.Eur(12_000), result.Balance);
        Assert.Equal(WalletKit.Eur(12_000), _kit.Balance());
        var requests = _kit.Operator.TopUpRequests;
        Assert.Equal(3, requests.Count);
        Assert.All(requests, r => Assert.Equal(requests[0], r with { CardData = requests[0].CardData }));
    }

    [Fact]
    public async Task TopUpFlow_AuthorizerStaysUnavailable_GivesUpAfterAFewAttempts_NothingWritten()
    {
        _kit.Operator.UnavailableTopUps = 100;

        var e = await Assert.ThrowsAsync<WalletException>(() => Flow(new AutoPrompt()).RunAsync(WalletKit.Eur(2_000), new CardData(Digits, Expiry, Pin), CancellationToken.None));

        Assert.Equal("operator.unavailable:authorizer.unavailable", e.Code);
        Assert.Equal(TopUpFlow.AttemptsMax, _kit.Operator.TopUpRequests.Count);
        Assert.Single(_kit.Operator.TopUpRequests.Select(r => r.TopUpId).Distinct());
        AssertNothingCredited();
    }

    [Fact]
    public async Task TopUpFlow_CardPulledDuringTheCredit_SaysSyncResolvesIt_NothingReported()
    {
        var flow = new TopUpFlow(new OperatorApi(new HttpClient(_kit.Operator, disposeHandler: false) { BaseAddress = WalletKit.OperatorUri }), new PulledAtCredit(_kit.Reader), new AutoPrompt());

        var e = await Assert.ThrowsAsync<WalletException>(() => flow.RunAsync(WalletKit.Eur(2_000), new CardData(Digits, Expiry, Pin), CancellationToken.None));

        Assert.Equal(WalletErrors.CardRemoved, e.Code);
        Assert.Contains("openpurse sync", e.Message, StringComparison.Ordinal);
        Assert.Contains("never credits or charges twice", e.Message, StringComparison.Ordinal);
        Assert.Equal(0, _kit.Operator.Count("POST v1/topups/"));
    }

    [Fact]
    public async Task TopUpFlow_CardPulledAfterTheCreditWasReported_TheTopUpIsDone_WithTheBalanceTheCreditGave()
    {
        var flow = new TopUpFlow(new OperatorApi(new HttpClient(_kit.Operator, disposeHandler: false) { BaseAddress = WalletKit.OperatorUri }), new PulledAfter(PurseInstruction.Credit, _kit.Reader), new AutoPrompt());

        var result = await flow.RunAsync(WalletKit.Eur(2_000), new CardData(Digits, Expiry, Pin), CancellationToken.None);

        Assert.Equal(WalletKit.Eur(12_000), result.Balance);
        Assert.Equal(WalletKit.Eur(12_000), _kit.Balance());
        Assert.Equal(1, _kit.Operator.Count("POST v1/topups/"));
    }

    [Fact]
    public async Task TopUpFlow_CreditNotReported_SaysTheCardTookTheValueAndThatSyncRecordsIt()
    {
        var flow = new TopUpFlow(new OperatorApi(new HttpClient(new NoCompletion(_kit.Operator), disposeHandler: false) { BaseAddress = WalletKit.OperatorUri }), _kit.Reader, new AutoPrompt());

        var e = await Assert.ThrowsAsync<WalletException>(() => flow.RunAsync(WalletKit.Eur(2_000), new CardData(Digits, Expiry, Pin), CancellationToken.None));

        Assert.Contains("Your card took the 20.00 EUR", e.Message, StringComparison.Ordinal);
        Assert.Contains("openpurse sync", e.Message, StringComparison.Ordinal);
        Assert.Equal(WalletKit.Eur(12_000), _kit.Balance());
    }

    [Fact]
    public async Task TopUp_NeitherPinNorCardNumberInAnyOutputLine()
    {
        Assert.Equal(WalletCli.ExitOk, await TopUpAsync($"{Number}\n{Expiry}\n{Pin}\n", "--yes"));
        _kit.Operator.RefuseTopUpWith = "topup.pin_incorrect";
        Assert.Equal(WalletCli.ExitFailed, await TopUpAsync($"{Number}\n{Expiry}\n{Pin}\n", "--yes"));
        Assert.Equal(WalletCli.ExitFailed, await TopUpAsync($"4242 4242 4242 4241\n{Expiry}\n{Pin}\n", "--yes"));

        var everything = _console.Output + _output + _error;
        Assert.Contains("4242", everything, StringComparison.Ordinal);
        foreach (var secret in new[] { Digits, Number, "424242424242", "4242424242424241", Pin })
        {
            Assert.DoesNotContain(secret, everything, StringComparison.Ordinal);
        }
    }

    public void Dispose()
    {
        _console.Dispose();
        _output.Dispose();
        _error.Dispose();
        _kit.Dispose();
    }

    // The card leaves the reader as the CREDIT reaches it.
    private sealed class PulledAtCredit(ICardReader inner) : ICardReader
    {
        public string Name => inner.Name;

        public ResponseApdu Transmit(CommandApdu command) =>
            command.Ins == PurseInstruction.Credit ? throw new CardRemovedException("The card left the reader.") : inner.Transmit(command);
    }


    private TopUpFlow Flow(ITopUpPrompt prompt) =>
        new(new OperatorApi(new HttpClient(_kit.Operator, disposeHandler: false) { BaseAddress = WalletKit.OperatorUri }), _kit.Reader, prompt) { RetryDelay = TimeSpan.Zero };

    private Task<int> TopUpAsync(string stdin, params string[] more) =>
        WalletCli.RunAsync(["topup", "--amount", "20.00 EUR", "--operator", WalletKit.OperatorUri.ToString(), "--card", _kit.CardPath, .. more], Context(_console, new StringReader(stdin)));

    // The console's lines joined: Spectre wraps long sentences at the console's width.
    private string Flat() => string.Join(' ', _console.Lines.Select(l => l.Trim()));

    private void AssertNothingCredited()
    {
        Assert.Equal(WalletKit.Eur(10_000), _kit.Balance());
        Assert.DoesNotContain(PurseInstruction.Credit, _kit.Reader.Instructions);
        Assert.Equal(0, _kit.Operator.Count("POST v1/topups/"));
    }

    private WalletCliContext Context(TestConsole console, TextReader? input) => new()
    {
        Console = console,
        Output = _output,
        Error = _error,
        Environment = _ => null,
        HomeDirectory = "/nonexistent-home",
        HttpHandler = new RouterHandler(new Dictionary<string, HttpMessageHandler> { [WalletKit.OperatorUri.Host] = _kit.Operator }),
        OpenReader = _ => _kit.Reader,
        Input = input,
    };
}
