using OpenPurse.Protocol.Apdu;
using OpenPurse.Protocol.Purse;
using OpenPurse.Wallet.Purchase;
using OpenPurse.Wallet.Readers;

namespace OpenPurse.Wallet.Tests;

/// <summary>The wallet's own card commands: history paging and its bound, and refusals named.</summary>
public sealed class WalletCardTest : IDisposable
{
    private readonly WalletKit _kit = new(topUpMinor: 0);

    [Theory]
    [InlineData(1)]
    [InlineData(3)]
    [InlineData(4)]
    [InlineData(WalletCard.HistoryRecordsMax)]
    [InlineData(WalletCard.HistoryRecordsMax + 2)]
    public void History_ManyTransactions_NewestFirstUpToTheCardsLog(int transactions)
    {
        for (var i = 0; i < transactions; i++)
        {
            _kit.Operator.TopUp(c => ResponseApdu.Parse(_kit.Card.Transmit(c.ToBytes())), WalletKit.Eur(100 + i));
        }

        var card = new WalletCard(_kit.Reader);
        card.Select();
        var history = card.History();

        Assert.Equal(Math.Min(transactions, WalletCard.HistoryRecordsMax), history.Count);
        Assert.Equal((uint)transactions, history[0].Counter);
        Assert.Equal(Enumerable.Range(0, history.Count).Select(i => (uint)(transactions - i)), history.Select(r => r.Counter));
        Assert.All(history, r => Assert.Equal(ValueKind.Credit, r.Kind));
    }

    [Fact]
    public void History_EmptyCard_NoRecordsOneCommand()
    {
        var card = new WalletCard(_kit.Reader);
        card.Select();

        Assert.Empty(card.History());
        Assert.Equal([PurseInstruction.Select, PurseInstruction.ReadLog], _kit.Reader.Instructions);
    }

    [Fact]
    public void Status_BeforeSelect_RefusedWithTheCardsMeaning()
    {
        var card = new WalletCard(_kit.Reader);
        _kit.Card.Reset();

        var error = Assert.Throws<WalletException>(card.Status);

        Assert.Equal("card.refused:6985", error.Code);
        Assert.Contains("out of order", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Send_CardRemoved_TypedError()
    {
        var card = new WalletCard(new RemovedReader());

        var error = Assert.Throws<WalletException>(card.Select);

        Assert.Equal("card.removed", error.Code);
    }

    [Theory]
    [InlineData(StatusWord.ApprovalMismatch, "9403", "other than what you approved")]
    [InlineData(StatusWord.InsufficientValue, "9401", "less than the bill")]
    [InlineData(StatusWord.CounterMismatch, "9404", "stale or replayed")]
    [InlineData(StatusWord.AuthenticationFailed, "6300", "does not match this card")]
    [InlineData((StatusWord)0x6F00, "6F00", "does not know")]
    public void Refusal_EachStatusWord_CodeAndMeaning(StatusWord status, string hex, string meaning)
    {
        var error = WalletCard.Refusal(status, "the DEBIT");

        Assert.Equal("card.refused:" + hex, error.Code);
        Assert.Contains(meaning, error.Message, StringComparison.Ordinal);
        Assert.False(error.CardDebited);
    }

    public void Dispose() => _kit.Dispose();

    private sealed class RemovedReader : ICardReader
    {
        public string Name => "empty reader";

        public ResponseApdu Transmit(CommandApdu command) => throw new CardRemovedException("No card.");
    }
}
