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
    private const string ValueUpdateName = "value_update";

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

        var keys = await operatorApi.OperatorKeysAsync(refresh: false, cancellationToken).ConfigureAwait(false);
        var update = SignedMessage.Verify<ValueUpdate>(credit.ValueUpdate, keys, MessageTypes.ValueUpdate, out var error);
        if (update is null && error == "signature.unknown_key")
        {
            keys = await operatorApi.OperatorKeysAsync(refresh: true, cancellationToken).ConfigureAwait(false);
            update = SignedMessage.Verify<ValueUpdate>(credit.ValueUpdate, keys, MessageTypes.ValueUpdate, out error);
        }

        if (update is null)
        {
            throw new WalletException(WalletErrors.Signature(ValueUpdateName, error ?? "signature.malformed"), $"The value update (SIG5) is not signed by the operator ({error}). Nothing was written to the card.");
        }

        var externalAuthenticate = Decode(credit.ExternalAuthenticate, PurseInstruction.ExternalAuthenticate, "EXTERNAL AUTHENTICATE");
        var creditBytes = Convert.FromBase64String(credit.Credit);
        var creditCommand = Decode(credit.Credit, PurseInstruction.Credit, "CREDIT");
        var balance = greeting.Status.BalanceOf(update.Amount.Currency) ?? Money.Zero(update.Amount.Currency);
        if (update.ValueUpdateId != credit.ValueUpdateId || update.Purpose != ValueUpdatePurposes.Return || update.CardId != greeting.CardId.Digits || !update.Amount.IsPositive || update.Balance != balance
            || update.CreditDigest != Base64Url.EncodeToString(SHA256.HashData(creditBytes)) || !Base64Url.IsValid(update.OrderDigest, out var digestLength) || digestLength != Approval.DigestLength)
        {
            throw new WalletException(WalletErrors.ValueUpdateMismatch, "The value update (SIG5) does not describe the CREDIT it came with, for this card and balance. Nothing was written to the card.");
        }

        prompt.Progress($"The operator returns {update.Amount} for settlement {update.SourceId}, which your card paid but which did not complete");
        var approval = new Approval(update.Amount, Base64Url.DecodeFromChars(update.OrderDigest));
        var answer = prompt.WhileCardWorks("Your card takes the value back; keep it in the reader", () =>
        {
            WalletCard.Require(card.Send(externalAuthenticate, "EXTERNAL AUTHENTICATE"), "EXTERNAL AUTHENTICATE");
            try
            {
                return reader.Transmit(CardHostSession.WithApproval(creditCommand, approval));
            }
            catch (CardRemovedException e)
            {
                throw new WalletException(
                    WalletErrors.CardRemoved,
                    $"The card left the reader during the CREDIT: whether it took the {update.Amount} back is unknown. Sync again (openpurse sync): the operator resolves it from the card's log, and never credits twice.",
                    innerException: e);
            }
        });
        WalletCard.Require(answer, "the CREDIT");

        prompt.Progress("Reporting the card's answer to the operator");
        var reversed = await operatorApi.CompleteCreditAsync(credit.ValueUpdateId, new CompleteSettlementRequest(Convert.ToBase64String(answer.ToBytes())), cancellationToken).ConfigureAwait(false);
        return new CardSyncResult([.. sync.Resolved, reversed], update.Amount, update.SourceId, prompt.WhileCardWorks("Reading your balance", card.Status));
    }

    private static CommandApdu Decode(string text, byte instruction, string name)
    {
        byte[] bytes;
        try
        {
            bytes = Convert.FromBase64String(text);
        }
        catch (FormatException e)
        {
            throw new WalletException(WalletErrors.OperatorMalformed, $"The operator's {name} is not base64.", innerException: e);
        }

        return CommandApdu.TryParse(bytes, out var command) && command.Cla == PurseInstruction.ClaSecured && command.Ins == instruction
            ? command
            : throw new WalletException(WalletErrors.OperatorMalformed, $"The operator's {name} is not a secured {name} command.");
    }
}
