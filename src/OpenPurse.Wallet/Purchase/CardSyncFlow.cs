using System.Buffers.Text;
using System.Security.Cryptography;
using OpenPurse.Protocol;
using OpenPurse.Protocol.Apdu;
using OpenPurse.Protocol.Jose;
using OpenPurse.Protocol.Messages;
using OpenPurse.Protocol.Purse;
using OpenPurse.Wallet.Http;
using OpenPurse.Wallet.Readers;

namespace OpenPurse.Wallet.Purchase;

/// <summary>What a sync did: the settlements the card's greeting resolved, and the value it got back.</summary>
/// <param name="Resolved">Each settlement and its new state.</param>
/// <param name="Returned">What a CREDIT added to the card, or null.</param>
/// <param name="ReturnedFor">The settlement whose debit the CREDIT returned.</param>
/// <param name="Balance">The card's purse status after the sync.</param>
public sealed record CardSyncResult(IReadOnlyList<SettlementOutcome> Resolved, Money? Returned, Guid? ReturnedFor, PurseStatus Balance);

/// <summary>
/// The card online outside a purchase (docs/reliability.md): SELECT, INITIALIZE UPDATE with a fresh
/// host challenge, the greeting to the operator, which resolves what the card left unfinished from
/// its counter and newest log record. When the operator owes the card value (a debit whose
/// settlement did not complete), it answers with a CREDIT and SIG5; the wallet checks SIG5 against
/// the CREDIT it carries, and the card's answer goes back to the operator.
/// </summary>
internal sealed class CardSyncFlow(OperatorApi operatorApi, ICardReader reader, IPurchasePrompt prompt)
{
    public async Task<CardSyncResult> RunAsync(CancellationToken cancellationToken)
    {
        using var trace = WalletTrace.Start("sync");
        var card = new WalletCard(reader);
        var hostChallenge = RandomNumberGenerator.GetBytes(8);
        var (greeting, greetingData) = prompt.WhileCardWorks("Reading your card", () =>
        {
            card.Select();
            return card.InitializeUpdate(hostChallenge);
        });

        prompt.Progress("Asking the operator what the card left unfinished");
        var sync = await operatorApi.SyncAsync(new CardSyncRequest(Convert.ToBase64String(hostChallenge), Convert.ToBase64String(greetingData)), cancellationToken).ConfigureAwait(false);
        foreach (var outcome in sync.Resolved)
        {
            prompt.Progress($"Settlement {outcome.SettlementId} is now {outcome.State}");
        }

        if (sync.Credit is not { } credit)
        {
            return new CardSyncResult(sync.Resolved, null, null, prompt.WhileCardWorks("Reading your balance", card.Status));
        }

        var verified = await CreditOnCard.VerifyAsync(operatorApi, credit, greeting, new ExpectedCredit(ValueUpdatePurposes.Return), cancellationToken).ConfigureAwait(false);
        var update = verified.Update;
        prompt.Progress($"The operator returns {update.Amount} for settlement {update.SourceId}, which your card paid but which did not complete");
        var answer = CreditOnCard.Run(
            card,
            reader,
            prompt,
            verified,
            "Your card takes the value back; keep it in the reader",
            $"The card left the reader during the CREDIT: whether it took the {update.Amount} back is unknown. Sync again (openpurse sync): the operator resolves it from the card's log, and never credits twice.");

        prompt.Progress("Reporting the card's answer to the operator");
        var reversed = await operatorApi.CompleteCreditAsync(credit.ValueUpdateId, new CompleteSettlementRequest(Convert.ToBase64String(answer.ToBytes())), cancellationToken).ConfigureAwait(false);
        return new CardSyncResult([.. sync.Resolved, reversed], update.Amount, update.SourceId, prompt.WhileCardWorks("Reading your balance", card.Status));
    }
}
