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

/// <summary>What a sync did: the settlements the card's greeting resolved, and the value the card took.</summary>
/// <param name="Resolved">Each settlement and its new state.</param>
/// <param name="Credits">Each CREDIT the card took, as its value update (SIG5) described it, in order.</param>
/// <param name="Balance">The card's purse status after the sync.</param>
public sealed record CardSyncResult(IReadOnlyList<SettlementOutcome> Resolved, IReadOnlyList<ValueUpdate> Credits, PurseStatus Balance)
{
    /// <summary>What the return of a debit added to the card, or null.</summary>
    public Money? Returned => Credits.FirstOrDefault(c => c.Purpose == ValueUpdatePurposes.Return)?.Amount;

    /// <summary>The settlement whose debit a CREDIT returned, or null.</summary>
    public Guid? ReturnedFor => Credits.FirstOrDefault(c => c.Purpose == ValueUpdatePurposes.Return)?.SourceId;
}

/// <summary>
/// The card online outside a purchase (docs/reliability.md): SELECT, INITIALIZE UPDATE with a fresh
/// host challenge, the greeting to the operator, which resolves what the card left unfinished from
/// its counter and newest log record. When the operator owes the card value (a debit whose
/// settlement did not complete, a refund, a transfer, points), it answers with one CREDIT and SIG5;
/// the wallet checks SIG5 against the CREDIT it carries, the card's answer goes back to the
/// operator, and the wallet syncs again until nothing more is owed.
/// </summary>
internal sealed class CardSyncFlow(OperatorApi operatorApi, ICardReader reader, IPurchasePrompt prompt)
{
    /// <summary>At most this many CREDITs in one sync: a card owed more takes the rest at its next sync.</summary>
    private const int CreditsMax = 16;

    /// <summary>The purposes of a CREDIT a sync may carry (a top-up comes only when the person asks for one).</summary>
    private static readonly ExpectedCredit s_owed = new([ValueUpdatePurposes.Return, ValueUpdatePurposes.Refund, ValueUpdatePurposes.Transfer, ValueUpdatePurposes.Points, ValueUpdatePurposes.Replacement]);

    /// <summary>What each purpose is, for the person.</summary>
    public static string Describe(ValueUpdate update)
    {
        ArgumentNullException.ThrowIfNull(update);
        return update.Purpose switch
        {
            ValueUpdatePurposes.Return => $"the operator returns {update.Amount} for settlement {update.SourceId}, which your card paid but which did not complete",
            ValueUpdatePurposes.Refund => $"a store refunds {update.Amount} (refund {update.SourceId})",
            ValueUpdatePurposes.Transfer => $"another card sent {update.Amount} (transfer {update.SourceId})",
            ValueUpdatePurposes.Points => $"a store awarded {update.Amount} (purchase {update.SourceId})",
            ValueUpdatePurposes.Replacement => $"the card you replaced passes on {update.Amount}",
            _ => $"{update.Amount} ({update.Purpose} {update.SourceId})",
        };
    }

    public async Task<CardSyncResult> RunAsync(CancellationToken cancellationToken)
    {
        using var trace = WalletTrace.Start("sync");
        var card = new WalletCard(reader);
        List<SettlementOutcome> resolved = [];
        List<ValueUpdate> credits = [];
        for (var round = 0; round < CreditsMax; round++)
        {
            var hostChallenge = RandomNumberGenerator.GetBytes(8);
            var (greeting, greetingData) = prompt.WhileCardWorks("Reading your card", () =>
            {
                card.Select();
                return card.InitializeUpdate(hostChallenge);
            });

            prompt.Progress(round == 0 ? "Asking the operator what the card left unfinished" : "Asking the operator whether the card is owed more");
            var sync = await operatorApi.SyncAsync(new CardSyncRequest(Convert.ToBase64String(hostChallenge), Convert.ToBase64String(greetingData)), cancellationToken).ConfigureAwait(false);
            foreach (var outcome in sync.Resolved)
            {
                prompt.Progress($"Settlement {outcome.SettlementId} is now {outcome.State}");
            }

            resolved.AddRange(sync.Resolved);
            if (sync.Credit is not { } credit)
            {
                break;
            }

            var verified = await CreditOnCard.VerifyAsync(operatorApi, credit, greeting, s_owed, cancellationToken).ConfigureAwait(false);
            var update = verified.Update;
            var description = Describe(update);
            prompt.Progress(char.ToUpperInvariant(description[0]) + description[1..]);
            var answer = CreditOnCard.Run(
                card,
                reader,
                prompt,
                verified,
                "Your card takes the value; keep it in the reader",
                $"The card left the reader during the CREDIT: whether it took the {update.Amount} is unknown. Sync again (openpurse sync): the operator resolves it from the card's log, and never credits twice.");

            prompt.Progress("Reporting the card's answer to the operator");
            var taken = await operatorApi.CompleteCreditAsync(credit.ValueUpdateId, new CompleteSettlementRequest(Convert.ToBase64String(answer.ToBytes())), cancellationToken).ConfigureAwait(false);
            if (update.Purpose == ValueUpdatePurposes.Return)
            {
                resolved.Add(taken);
            }

            credits.Add(update);
        }

        return new CardSyncResult(resolved, credits, prompt.WhileCardWorks("Reading your balance", card.Status));
    }
}
