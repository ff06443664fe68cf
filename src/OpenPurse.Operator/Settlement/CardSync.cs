using System.Buffers.Text;
using System.Security.Cryptography;
using Dapper;
using Microsoft.Extensions.Logging;
using OpenPurse.Hosting;
using OpenPurse.Operator.Api;
using OpenPurse.Operator.Registry;
using OpenPurse.Operator.Security;
using OpenPurse.Protocol;
using OpenPurse.Protocol.Apdu;
using OpenPurse.Protocol.Jose;
using OpenPurse.Protocol.Messages;
using OpenPurse.Protocol.Purse;

namespace OpenPurse.Operator.Settlement;

/// <summary>
/// The card online outside a purchase (<c>POST /v1/cards/sync</c>): its greeting resolves the
/// settlement it left unfinished, and a debit it ran for a settlement that did not complete comes
/// back as a CREDIT with SIG5 (<c>POST /v1/cards/credits/{id}/completion</c> reports the card's answer).
/// A CREDIT is one order like a debit: made for one session and one counter, resolved from the
/// card's next greeting if its answer is lost, and made again only when that greeting proves it never ran.
/// One CREDIT per sync: the return of a debit first, then what the card is owed (refunds, transfers,
/// points: <see cref="Credits.CardCredits"/>), oldest first; the wallet syncs again until none is left.
/// </summary>
internal sealed partial class CardSync(Database database, ISecurityModule security, CardRecovery recovery, TopUps.TopUpResolution topUps, Credits.CardCredits cardCredits, TimeProvider time, OperatorMetrics metrics, ILogger<CardSync> logger)
{
    /// <summary>How many times a sync decides again when a concurrent one changed the card's settlement first.</summary>
    private const int SyncAttemptsMax = 4;

    public async Task<Result<CardSyncResponse>> SyncAsync(CardSyncRequest request, CancellationToken cancellationToken)
    {
        byte[] hostChallenge;
        byte[] greetingBytes;
        try
        {
            hostChallenge = Convert.FromBase64String(request.HostChallenge);
            greetingBytes = Convert.FromBase64String(request.CardGreeting);
        }
        catch (FormatException)
        {
            return new Refusal(ProblemCode.RequestMalformed, "The host challenge and the card greeting are base64.");
        }

        if (hostChallenge.Length != Protocol.Channel.Scp03.ChallengeLength || !CardGreeting.TryParse(greetingBytes, out var greeting))
        {
            return new Refusal(ProblemCode.CardGreetingMalformed, "The card greeting is not an OpenPurse INITIALIZE UPDATE answer to an 8-byte host challenge.");
        }

        await using var connection = await database.OpenAsync(cancellationToken).ConfigureAwait(false);
        var card = await connection.QuerySingleOrDefaultAsync<(string Status, long Counter)?>(
            "SELECT status, counter FROM cards WHERE card_id = @id", new { id = greeting.CardId.Digits }).ConfigureAwait(false);
        if (card is not var (status, counter))
        {
            return new Refusal(ProblemCode.CardUnknown, $"Card {greeting.CardId.Masked} is not registered.");
        }

        if (greeting.Status.Counter < counter)
        {
            // A greeting from before what the operator has seen the card do proves nothing about its
            // open orders, and a CREDIT made for it could never run.
            return new Refusal(ProblemCode.CardAuthenticationFailed, "The card reports an older counter than the operator has seen: this greeting is not the card's latest.");
        }

        for (var attempt = 1; ; attempt++)
        {
            // A session per attempt: making a CREDIT moves the session's MAC chain.
            using var session = security.OpenCardSession(greeting.CardId, hostChallenge, greeting, out _);
            if (session is null)
            {
                return new Refusal(ProblemCode.CardAuthenticationFailed, "The card's greeting does not verify.");
            }

            try
            {
                var synced = await SyncOnceAsync(connection, session, greeting, hostChallenge, greetingBytes, status, cancellationToken).ConfigureAwait(false);
                // A top-up the greeting resolved is captured or voided only now, after the commit.
                await topUps.SettleCardAsync(greeting.CardId, cancellationToken).ConfigureAwait(false);
                return synced;
            }
            catch (ConcurrentChangeException) when (attempt < SyncAttemptsMax)
            {
                // Another sync of this card changed the settlement first: decide again on what it did.
            }
            catch (ConcurrentChangeException)
            {
                return new Refusal(ProblemCode.CardBusy, "Other syncs of this card are changing it at the same moment; try again.");
            }
        }
    }

    // One transaction: resolve the card's pending load and unfinished settlement, and make the CREDIT it is owed.
    private async Task<Result<CardSyncResponse>> SyncOnceAsync(System.Data.Common.DbConnection opened, CardHostSession session, CardGreeting greeting,
        byte[] hostChallenge, byte[] greetingBytes, string status, CancellationToken cancellationToken)
    {
        var now = time.GetUtcNow();
        await using var write = await database.BeginWriteAsync(opened, cancellationToken).ConfigureAwait(false);
        var (connection, transaction) = (write.Connection, write.Inner);
        await database.LockCardSyncAsync(connection, transaction, greeting.CardId.Digits).ConfigureAwait(false);
        var leftOpen = await recovery.ResolveLeftOpenAsync(connection, transaction, greeting, now).ConfigureAwait(false);
        var creditOpen = leftOpen.Credit;
        List<SettlementOutcome> resolved = [];
        CardCredit? credit = null;
        var returnOpen = false;
        if (leftOpen.Settlement is { } open)
        {
            if (leftOpen.SettlementWas is not null)
            {
                resolved.Add(new SettlementOutcome(open.Id, open.State.ToText()));
            }

            if (open.State == SettlementState.Reversing)
            {
                var issued = open.ReversalGreeting is { } earlier && CardGreeting.TryParse(earlier, out var creditGreeting)
                    ? CardRecovery.Judge(greeting, Guid.Parse(open.ReversalId!), ValueKind.Credit, creditGreeting.Status.Counter, creditGreeting.SessionCounter)
                    : CardEvidence.NeverRan;
                switch (issued)
                {
                    case CardEvidence.Ran:
                        if (!await CardRecovery.ReversedAsync(connection, transaction, open, greeting.LastRecord!, cardAnswer: null, now).ConfigureAwait(false))
                        {
                            throw new ConcurrentChangeException();
                        }

                        resolved.Add(new SettlementOutcome(open.Id, SettlementState.Reversed.ToText()));
                        break;
                    case CardEvidence.NeverRan when status == "active" && creditOpen is null:
                        credit = await IssueReturnAsync(connection, transaction, open, session, greeting, hostChallenge, greetingBytes).ConfigureAwait(false);
                        break;
                    default:
                        returnOpen = true;
                        break;
                }
            }
        }

        // The return of a debit goes first; while a CREDIT's outcome is open nothing else is made.
        if (credit is null && !returnOpen && status == "active" && creditOpen is null)
        {
            // A replacement takes what came back to the card it replaced since (docs/operations.md, "A card's life").
            await Issuance.CardReplacements.CarryToAsync(connection, transaction, greeting.CardId.Digits, now).ConfigureAwait(false);
            credit = await cardCredits.IssueNextAsync(connection, transaction, session, greeting, hostChallenge, greetingBytes, now).ConfigureAwait(false);
        }

        await write.CommitAsync(cancellationToken).ConfigureAwait(false);
        return new CardSyncResponse(resolved, credit);
    }

    public async Task<Result<SettlementOutcome>> CompleteCreditAsync(Guid valueUpdateId, CompleteSettlementRequest request, CancellationToken cancellationToken)
    {
        if (CardRecovery.ParseCardAnswer(request.CardAnswer) is not var (answerBytes, answer))
        {
            return new Refusal(ProblemCode.RequestMalformed, "The card answer is not a base64 response APDU.");
        }

        await using var write = await database.BeginWriteAsync(cancellationToken).ConfigureAwait(false);
        var (connection, transaction) = (write.Connection, write.Inner);
        var row = await SettlementRow.LoadAsync(connection, transaction, "s.reversal_id = @id", new { id = valueUpdateId.ToString() }).ConfigureAwait(false);
        if (row is null)
        {
            // Not the return of a debit: perhaps value the card was owed.
            if (await cardCredits.CompleteAsync(connection, transaction, valueUpdateId, answerBytes, answer, time.GetUtcNow()).ConfigureAwait(false) is not { } owed)
            {
                return new Refusal(ProblemCode.CreditNotFound, $"No credit {valueUpdateId}.");
            }

            await write.CommitAsync(cancellationToken).ConfigureAwait(false);
            return owed;
        }

        if (row.State == SettlementState.Reversed)
        {
            return row.ReversalAnswer is null || CryptographicOperations.FixedTimeEquals(row.ReversalAnswer, answerBytes)
                ? new SettlementOutcome(row.Id, row.State.ToText())
                : new Refusal(ProblemCode.SettlementReplayed, "The credit was taken; this card answer is not the one that reported it.");
        }

        if (!answer.IsOk)
        {
            return new Refusal(ProblemCode.CardRefused, $"The card answered {(ushort)answer.Status:X4} to the credit.");
        }

        var record = OpenCreditAnswer(row, answer);
        if (record is null || !await CardRecovery.ReversedAsync(connection, transaction, row, record, answerBytes, time.GetUtcNow()).ConfigureAwait(false))
        {
            return new Refusal(ProblemCode.CardAnswerInvalid, "The card's answer does not verify for this credit.");
        }

        await write.CommitAsync(cancellationToken).ConfigureAwait(false);
        LogReversed(row.Id, valueUpdateId);
        metrics.Entered(SettlementState.Reversed);
        return new SettlementOutcome(row.Id, SettlementState.Reversed.ToText());
    }

    // The CREDIT that returns the settlement's debit: its card's log names the settlement it returns.
    private static Credits.CreditOrder ReturnOrder(SettlementRow row, Guid valueUpdateId) =>
        new(valueUpdateId, Credits.CreditOrder.DigestOf("reversal", row.Id), row.Amount, ValueUpdatePurposes.Return, row.Id);

    private async Task<CardCredit> IssueReturnAsync(System.Data.Common.DbConnection connection, System.Data.Common.DbTransaction transaction, SettlementRow row,
        CardHostSession session, CardGreeting greeting, byte[] hostChallenge, byte[] greetingBytes)
    {
        var valueUpdateId = Guid.CreateVersion7(time.GetUtcNow());
        var credit = ReturnOrder(row, valueUpdateId).Make(security, session, greeting);
        // Only over the CREDIT this sync judged (none, or one the card provably never ran): a concurrent
        // sync that stored another one first makes this one decide again.
        var updated = await connection.ExecuteAsync(
            $"""
            UPDATE settlements SET reversal_id = @valueUpdateId, reversal_greeting = @greetingBytes, reversal_challenge = @hostChallenge
            WHERE settlement_id = @id AND state {SettlementStates.In(SettlementState.Reversing)} AND (reversal_id = @previous OR (reversal_id IS NULL AND @previous IS NULL))
            """,
            new { id = row.SettlementId, valueUpdateId = valueUpdateId.ToString(), greetingBytes, hostChallenge, previous = row.ReversalId }, transaction).ConfigureAwait(false);
        if (updated != 1)
        {
            throw new ConcurrentChangeException();
        }

        LogCreditIssued(row.Id, valueUpdateId, row.Amount);
        return credit;
    }

    // Rebuilds the CREDIT's session from its stored greeting and challenge and opens the card's answer.
    private CardLogRecord? OpenCreditAnswer(SettlementRow row, ResponseApdu answer) =>
        ReturnOrder(row, Guid.Parse(row.ReversalId!)).OpenAnswer(security, row.ReversalGreeting, row.ReversalChallenge, answer);

    [LoggerMessage(Level = LogLevel.Information, Message = "Settlement {SettlementId}: credit {ValueUpdateId} of {Amount} made to return its debit to the card")]
    private partial void LogCreditIssued(Guid settlementId, Guid valueUpdateId, Money amount);

    [LoggerMessage(Level = LogLevel.Information, Message = "Settlement {SettlementId} reversed: the card took credit {ValueUpdateId}")]
    private partial void LogReversed(Guid settlementId, Guid valueUpdateId);
}
