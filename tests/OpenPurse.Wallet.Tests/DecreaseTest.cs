using OpenPurse.Protocol;
using OpenPurse.Protocol.Apdu;
using OpenPurse.Protocol.Messages;
using OpenPurse.Protocol.Purse;
using OpenPurse.Wallet.Cli;
using OpenPurse.Wallet.Purchase;
using OpenPurse.Wallet.Tests.Fakes;
using Spectre.Console.Testing;

namespace OpenPurse.Wallet.Tests;

/// <summary>
/// <c>openpurse transfer</c> and <c>openpurse cashout</c> against the fake operator, on a real
/// emulated card holding 100.00 EUR: what the person asked for is what the card gives, or nothing is
/// written to the card.
/// </summary>
public sealed class DecreaseTest : IDisposable
{
    private const string Iban = "DE89 3704 0044 0532 0130 00";
    private static readonly CardId s_payee = CardId.FromSerial(940_000_000_000_456);

    private readonly WalletKit _kit = new();
    private readonly TestConsole _console = new();
    private readonly StringWriter _output = new();
    private readonly StringWriter _error = new();

    public DecreaseTest() => _console.Width(80);

    [Fact]
    public async Task Transfer_Agreed_TheCardGivesTheAmount_ReportedToTheOperator_InTheHistory()
    {
        var exit = await RunAsync("transfer", "--to", s_payee.Digits, "--amount", "25.00 EUR", "--yes");

        Assert.Equal(WalletCli.ExitOk, exit);
        Assert.Equal(WalletKit.Eur(7_500), _kit.Balance());
        Assert.Contains($"Take 25.00 EUR off card {WalletKit.TestCardId.Masked} to card {s_payee.Masked}: balance 100.00 EUR → 75.00 EUR.", Flat(), StringComparison.Ordinal);
        Assert.Contains("Balance: 75.00 EUR", _console.Output, StringComparison.Ordinal);
        Assert.Equal(1, _kit.Operator.DecreaseCompletions);

        using var console = new TestConsole();
        console.Width(80);
        Assert.Equal(WalletCli.ExitOk, await WalletCli.RunAsync(["card", "--card", _kit.CardPath], Context(console)));
        var line = Assert.Single(console.Lines, l => l.Contains("transfer", StringComparison.Ordinal));
        Assert.Contains(s_payee.Masked, line, StringComparison.Ordinal);
        Assert.Contains("-25.00 EUR", line, StringComparison.Ordinal);
        Assert.DoesNotContain(s_payee.Digits, await File.ReadAllTextAsync(PurchaseJournal.PathFor(_kit.CardPath)), StringComparison.Ordinal);
    }

    [Fact]
    public async Task CashOut_Agreed_TheCardGivesTheAmount_TheIbanMaskedInOutputAndHistory()
    {
        var exit = await RunAsync("cashout", "--iban", Iban, "--holder", "Erika Mustermann", "--amount", "30.00 EUR", "--yes");

        Assert.Equal(WalletCli.ExitOk, exit);
        Assert.Equal(WalletKit.Eur(7_000), _kit.Balance());
        Assert.Contains("to the bank account DE…3000 of Erika Mustermann", Flat(), StringComparison.Ordinal);
        Assert.DoesNotContain("DE89370400440532013000", _console.Output, StringComparison.Ordinal);
        using var console = new TestConsole();
        console.Width(80);
        Assert.Equal(WalletCli.ExitOk, await WalletCli.RunAsync(["card", "--card", _kit.CardPath], Context(console)));
        Assert.Single(console.Lines, l => l.Contains("cash-out", StringComparison.Ordinal) && l.Contains("DE…3000", StringComparison.Ordinal));
    }

    [Theory]
    [InlineData("DE89 3704 0044 0532 0130 01", "check digits")]
    [InlineData("XX89 3704 0044 0532 0130 00", "country")]
    [InlineData("DE89 3704 0044 0532 0130", "length")]
    public async Task CashOut_MistypedIban_RefusedBeforeAnyRequestOrCardCommand(string iban, string detail)
    {
        var exit = await RunAsync("cashout", "--iban", iban, "--holder", "Erika Mustermann", "--amount", "30.00 EUR", "--yes");

        Assert.Equal(WalletCli.ExitFailed, exit);
        Assert.Contains($"({WalletErrors.IbanInvalid})", _console.Output, StringComparison.Ordinal);
        Assert.Contains(detail, Flat(), StringComparison.Ordinal);
        AssertNothingWritten(requests: 0);
        Assert.Empty(_kit.Reader.Instructions);
    }

    [Fact]
    public async Task Transfer_NotACardNumber_OrItself_OrAboveTheBalance_Refused_NothingWritten()
    {
        Assert.Equal(WalletCli.ExitFailed, await RunAsync("transfer", "--to", "9400000000000457", "--amount", "1.00 EUR", "--yes"));
        Assert.Contains($"({WalletErrors.PayeeInvalid})", _console.Output, StringComparison.Ordinal);
        Assert.Equal(WalletCli.ExitFailed, await RunAsync("transfer", "--to", WalletKit.TestCardId.Digits, "--amount", "1.00 EUR", "--yes"));
        Assert.Equal(WalletCli.ExitFailed, await RunAsync("transfer", "--to", s_payee.Digits, "--amount", "100.01 EUR", "--yes"));
        Assert.Contains($"({WalletErrors.CardInsufficientValue})", _console.Output, StringComparison.Ordinal);
        AssertNothingWritten(requests: 0);
    }

    public static TheoryData<string> Lies => ["amount", "balance", "payee", "purpose", "source", "card", "order digest", "debit digest"];

    [Theory]
    [MemberData(nameof(Lies))]
    public async Task ValueDecreaseThatLies_Refused_NothingWrittenToTheCard(string lie)
    {
        _kit.Operator.EditValueDecrease = decrease => lie switch
        {
            "amount" => decrease with { Amount = WalletKit.Eur(100) },
            "balance" => decrease with { Balance = WalletKit.Eur(1_000_000) },
            "payee" => decrease with { Payee = "•••• 9999" },
            "purpose" => decrease with { Purpose = ValueDecreasePurposes.CashOut },
            "source" => decrease with { SourceId = Guid.NewGuid() },
            "card" => decrease with { CardId = s_payee.Digits },
            "order digest" => decrease with { OrderDigest = decrease.DebitDigest },
            _ => decrease with { DebitDigest = decrease.OrderDigest },
        };

        var exit = await RunAsync("transfer", "--to", s_payee.Digits, "--amount", "25.00 EUR", "--yes");

        Assert.Equal(WalletCli.ExitFailed, exit);
        Assert.Contains($"({WalletErrors.ValueDecreaseMismatch})", _console.Output, StringComparison.Ordinal);
        AssertNothingWritten(requests: 1);
    }

    [Fact]
    public async Task DebitMadeForAnotherPayee_SignedAsSuch_RefusedByTheWalletsOwnDigest()
    {
        // The operator makes the DEBIT for another card and signs the digest of that DEBIT: the
        // wallet computes the digest of what the person asked for, and it differs.
        _kit.Operator.DebitForPayee = CardId.FromSerial(940_000_000_000_789).Digits;

        var exit = await RunAsync("transfer", "--to", s_payee.Digits, "--amount", "25.00 EUR", "--yes");

        Assert.Equal(WalletCli.ExitFailed, exit);
        Assert.Contains($"({WalletErrors.ValueDecreaseMismatch})", _console.Output, StringComparison.Ordinal);
        AssertNothingWritten(requests: 1);
    }

    [Fact]
    public async Task NotAgreed_NothingWritten_NoAnswerReported_ThenAgreed_ItRuns()
    {
        using var http = new HttpClient(_kit.Operator, disposeHandler: false) { BaseAddress = WalletKit.OperatorUri };
        var operatorApi = new Http.OperatorApi(http);
        var declined = new DecreaseFlow(operatorApi, _kit.Reader, new AutoPrompt(approve: false));

        var refused = await Assert.ThrowsAsync<WalletException>(() => declined.TransferAsync(WalletKit.Eur(500), s_payee.Digits, CancellationToken.None));

        Assert.Equal(WalletErrors.DecreaseNotConfirmed, refused.Code);
        AssertNothingWritten(requests: 1);
        var prompt = new AutoPrompt();
        var result = await new DecreaseFlow(operatorApi, _kit.Reader, prompt).TransferAsync(WalletKit.Eur(500), s_payee.Digits, CancellationToken.None);
        Assert.Equal(("debited", WalletKit.Eur(9_500)), (result.State, result.Balance));
        Assert.Equal(new DecreaseConfirmation(ValueDecreasePurposes.Transfer, WalletKit.Eur(500), s_payee.Masked, null, WalletKit.Eur(10_000), WalletKit.Eur(9_500), WalletKit.TestCardId.Masked),
            prompt.DecreaseConfirmation);
    }

    [Fact]
    public async Task Transfer_DebitNotReported_SaysTheCardGaveTheValueAndThatSyncRecordsIt()
    {
        // The card ran the DEBIT, and the network cut its completion: a message that reads like
        // "nothing happened" would have the person send the value again.
        using var http = new HttpClient(new NoCompletion(_kit.Operator), disposeHandler: false) { BaseAddress = WalletKit.OperatorUri };
        var flow = new DecreaseFlow(new Http.OperatorApi(http), _kit.Reader, new AutoPrompt());

        var e = await Assert.ThrowsAsync<WalletException>(() => flow.TransferAsync(WalletKit.Eur(2_500), s_payee.Digits, CancellationToken.None));

        Assert.Contains("Your card gave the 25.00 EUR", e.Message, StringComparison.Ordinal);
        Assert.Contains("openpurse sync", e.Message, StringComparison.Ordinal);
        Assert.Equal(WalletKit.Eur(7_500), _kit.Balance());
    }

    [Fact]
    public async Task CashOut_CardPulledAfterTheDebitWasReported_TheCashOutIsDone_WithTheBalanceTheDebitLeft()
    {
        using var http = new HttpClient(_kit.Operator, disposeHandler: false) { BaseAddress = WalletKit.OperatorUri };
        var flow = new DecreaseFlow(new Http.OperatorApi(http), new PulledAfter(PurseInstruction.Debit, _kit.Reader), new AutoPrompt());

        var result = await flow.CashOutAsync(WalletKit.Eur(3_000), Iban, "Erika Mustermann", CancellationToken.None);

        Assert.Equal(("debited", WalletKit.Eur(7_000)), (result.State, result.Balance));
        Assert.Equal(WalletKit.Eur(7_000), _kit.Balance());
        Assert.Equal(1, _kit.Operator.DecreaseCompletions);
    }

    private void AssertNothingWritten(int requests)
    {
        Assert.Equal(WalletKit.Eur(10_000), _kit.Balance());
        Assert.DoesNotContain(PurseInstruction.Debit, _kit.Reader.Instructions);
        Assert.Equal(requests, _kit.Operator.Count("POST v1/transfers") + _kit.Operator.Count("POST v1/cashouts"));
        Assert.Equal(0, _kit.Operator.DecreaseCompletions);
    }

    public void Dispose()
    {
        _kit.Dispose();
        _console.Dispose();
        _output.Dispose();
        _error.Dispose();
    }


    private Task<int> RunAsync(params string[] args) =>
        WalletCli.RunAsync([.. args, "--operator", WalletKit.OperatorUri.ToString(), "--card", _kit.CardPath], Context(_console));

    // The console's lines joined: Spectre wraps long sentences at the console's width.
    private string Flat() => string.Join(' ', _console.Lines.Select(l => l.Trim()));

    private WalletCliContext Context(TestConsole console) => new()
    {
        Console = console,
        Output = _output,
        Error = _error,
        Environment = _ => null,
        HomeDirectory = "/nonexistent-home",
        HttpHandler = new RouterHandler(new Dictionary<string, HttpMessageHandler> { [WalletKit.OperatorUri.Host] = _kit.Operator }),
        OpenReader = _ => _kit.Reader,
    };
}
