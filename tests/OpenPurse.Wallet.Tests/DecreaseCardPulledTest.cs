using OpenPurse.Protocol;
using OpenPurse.Protocol.Apdu;
using OpenPurse.Protocol.Purse;
using OpenPurse.Wallet.Http;
using OpenPurse.Wallet.Purchase;
using OpenPurse.Wallet.Tests.Fakes;

namespace OpenPurse.Wallet.Tests;

/// <summary>
/// A transfer or cash-out whose card leaves the reader once its DEBIT was reported: the operator
/// holds it as debited, so the wallet must report it done — an error there would have the person
/// give the value a second time.
/// </summary>
public sealed class DecreaseCardPulledTest : IDisposable
{
    private static readonly CardId s_payee = CardId.FromSerial(940_000_000_000_456);

    private readonly WalletKit _kit = new();

    [Fact]
    public async Task Transfer_CardPulledAfterTheDebitWasReported_TheTransferIsDone_WithTheBalanceTheDebitLeft()
    {
        var flow = new DecreaseFlow(new OperatorApi(new HttpClient(_kit.Operator, disposeHandler: false) { BaseAddress = WalletKit.OperatorUri }), new PulledAfterDebit(_kit.Reader), new AutoPrompt());

        var result = await flow.TransferAsync(WalletKit.Eur(2_500), s_payee.Digits, CancellationToken.None);

        Assert.Equal(WalletKit.Eur(7_500), result.Balance);
        Assert.Equal(WalletKit.Eur(7_500), _kit.Balance());
        Assert.Equal(1, _kit.Operator.DecreaseCompletions);
    }

    [Fact]
    public async Task CashOut_CardPulledAfterTheDebitWasReported_TheCashOutIsDone_WithTheBalanceTheDebitLeft()
    {
        var flow = new DecreaseFlow(new OperatorApi(new HttpClient(_kit.Operator, disposeHandler: false) { BaseAddress = WalletKit.OperatorUri }), new PulledAfterDebit(_kit.Reader), new AutoPrompt());

        var result = await flow.CashOutAsync(WalletKit.Eur(3_000), "DE89370400440532013000", "Erika Mustermann", CancellationToken.None);

        Assert.Equal(WalletKit.Eur(7_000), result.Balance);
        Assert.Equal(WalletKit.Eur(7_000), _kit.Balance());
        Assert.Equal(1, _kit.Operator.DecreaseCompletions);
    }

    public void Dispose() => _kit.Dispose();

    // The card leaves the reader after its DEBIT: the GET DATA that reads the balance back finds no card.
    private sealed class PulledAfterDebit(ICardReader inner) : ICardReader
    {
        private bool _debited;

        public string Name => inner.Name;

        public ResponseApdu Transmit(CommandApdu command)
        {
            if (_debited)
            {
                throw new CardRemovedException("The card left the reader.");
            }

            _debited = command.Ins == PurseInstruction.Debit;
            return inner.Transmit(command);
        }
    }
}
