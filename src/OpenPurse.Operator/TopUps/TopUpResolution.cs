using System.Data.Common;
using Dapper;
using OpenPurse.Operator.Credit;
using OpenPurse.Operator.Registry;
using OpenPurse.Operator.Settlement;
using OpenPurse.Protocol;
using OpenPurse.Protocol.Messages;
using OpenPurse.Protocol.Purse;
using OpenPurse.Storage;

namespace OpenPurse.Operator.TopUps;

/// <summary>
/// How a top-up's CREDIT is settled when its own completion did not say (docs/reliability.md,
/// "Top-up"): the card's next authentic greeting proves it ran (credited) or never ran (voiding),
/// inside the transaction of the session that brought it (a sync, a purchase start, a new top-up);
/// after that commit, and in the sweeper for what the authorizer did not take then, a credited
/// top-up's charge is captured and a voiding one's authorization voided. The authorizer is never
/// ahead of the ledger. The sweeper also abandons a top-up left authorizing (its authorizer's answer
/// lost, its wallet gone) and voids whatever the authorizer approved under its id.
/// </summary>
internal sealed class TopUpResolution(Database database, TimeProvider time, TopUpEvents events, OperatorOptions options, ICreditAuthorizer? authorizer = null)
{
    /// <summary>At most this many top-ups per step of one sweep, so one sweep stays short.</summary>
    private const int BatchMax = 100;

    /// <summary>Why a void is asked for, for the authorizer's records.</summary>
    private const string VoidReason = "card_not_loaded";

    /// <summary>Why an abandoned top-up's authorization is voided.</summary>
    private const string AbandonedReason = "topup_abandoned";

    /// <summary>
    /// The card's top-up CREDIT still open, judged from its authentic greeting inside the caller's
    /// transaction (a sync, a purchase start, a new top-up): ran → credited (topups → card), never
    /// ran → voiding. The caller commits, then calls <see cref="SettleAsync"/> with the id.
    /// </summary>
    /// <returns>The top-up and its state now, or null when the card has no top-up crediting.</returns>
    public static async Task<(Guid Id, TopUpState State)?> ResolveAsync(DbConnection connection, DbTransaction transaction, CardGreeting greeting, DateTimeOffset now)
    {
        ArgumentNullException.ThrowIfNull(greeting);
        var row = await TopUpRow.LoadAsync(connection, transaction, $"card_id = @cardId AND state {TopUpStates.In(TopUpState.Crediting)}", new { cardId = greeting.CardId.Digits }).ConfigureAwait(false);
        if (row is null)
        {
            return null;
        }

        var evidence = row.CreditGreeting is { } stored && CardGreeting.TryParse(stored, out var creditGreeting)
            ? CardRecovery.Judge(greeting, row.Id, ValueKind.Credit, creditGreeting.Status.Counter, creditGreeting.SessionCounter)
            : CardEvidence.NeverRan;
        switch (evidence)
        {
            case CardEvidence.Ran when greeting.LastRecord!.Amount == row.Amount:
                return await CreditedAsync(connection, transaction, row, greeting.LastRecord, cardAnswer: null, now).ConfigureAwait(false)
                    ? (row.Id, TopUpState.Credited)
                    : throw new ConcurrentChangeException();
            case CardEvidence.NeverRan:
                return await TopUpStates.Machine.RunAsync(connection, transaction, TopUpStates.GiveUp, row.Movement, now, TopUpRow.Touch, parameters: new { now = StoredTime.Format(now) }).ConfigureAwait(false)
                    ? (row.Id, TopUpState.Voiding)
                    : throw new ConcurrentChangeException();
            default:
                return (row.Id, TopUpState.Crediting);
        }
    }

    /// <summary>
    /// After the commit that resolved a top-up: captures a credited one, voids a voiding one. A call
    /// the authorizer does not answer leaves the top-up as it is, for the sweeper.
    /// </summary>
    public async Task SettleAsync(Guid topUpId, CancellationToken cancellationToken)
    {
        await using var connection = await database.OpenAsync(cancellationToken).ConfigureAwait(false);
        if (await TopUpRow.LoadAsync(connection, null, topUpId).ConfigureAwait(false) is not { } row)
        {
            return;
        }

        if (row.State == TopUpState.Credited)
        {
            events.Entered(row.Id, TopUpState.Credited, row.Amount, row.LastFour);
            await CaptureAsync(row, cancellationToken).ConfigureAwait(false);
        }
        else if (row.State == TopUpState.Voiding)
        {
            events.Entered(row.Id, TopUpState.Voiding, row.Amount, row.LastFour);
            await VoidAsync(row, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// After the commit of a session that may have resolved the card's top-up: captures what is
    /// credited and voids what is voiding, of this card. Nothing when no authorizer is configured.
    /// </summary>
    public async Task SettleCardAsync(CardId cardId, CancellationToken cancellationToken)
    {
        if (authorizer is null)
        {
            return;
        }

        IReadOnlyList<TopUpRow> open;
        await using (var connection = await database.OpenAsync(cancellationToken).ConfigureAwait(false))
        {
            open = await TopUpRow.ListAsync(connection, $"card_id = @cardId AND state {TopUpStates.In(TopUpState.Credited, TopUpState.Voiding)}", new { cardId = cardId.Digits }).ConfigureAwait(false);
        }

        foreach (var row in open)
        {
            await SettleAsync(row.Id, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// One sweep: abandons what was left authorizing, then captures what is credited and voids what
    /// is voiding, a bounded batch each.
    /// </summary>
    /// <returns>How many top-ups were captured or voided.</returns>
    public async Task<int> SweepAsync(CancellationToken cancellationToken)
    {
        if (authorizer is null)
        {
            return 0;
        }

        await AbandonAsync(cancellationToken).ConfigureAwait(false);
        IReadOnlyList<TopUpRow> open;
        await using (var connection = await database.OpenAsync(cancellationToken).ConfigureAwait(false))
        {
            open = await TopUpRow.ListAsync(connection, $"state {TopUpStates.In(TopUpState.Credited, TopUpState.Voiding)} ORDER BY updated_at LIMIT {BatchMax}", new { }).ConfigureAwait(false);
        }

        var done = 0;
        foreach (var row in open)
        {
            var settled = row.State == TopUpState.Credited
                ? await CaptureAsync(row, cancellationToken).ConfigureAwait(false)
                : await VoidAsync(row, cancellationToken).ConfigureAwait(false);
            done += settled is null ? 0 : 1;
        }

        return done;
    }

    /// <summary>Captures a credited top-up's charge, after the commit that posted its credit.</summary>
    /// <returns>The top-up as captured, or null when the authorizer did not take it (the sweeper asks again).</returns>
    public async Task<TopUpRow?> CaptureAsync(TopUpRow row, CancellationToken cancellationToken)
    {
        if (row.AuthorizationId is null)
        {
            return null;
        }

        var outcome = await authorizer!.CaptureAsync(Guid.Parse(row.AuthorizationId), new CaptureRequest(row.Amount), cancellationToken).ConfigureAwait(false);
        if (outcome.Result != CreditResult.Answered)
        {
            events.SettleFailed(row.Id, "capture", outcome.Code ?? outcome.Result.ToString());
            return null;
        }

        return await MoveAsync(row, TopUpStates.Capture, cancellationToken).ConfigureAwait(false) ? row with { State = TopUpState.Captured } : null;
    }

    /// <summary>
    /// An approval that came back for a top-up abandoned meanwhile: its approve was refused, so no
    /// CREDIT was made, and the authorization is voided now. A top-up still voiding keeps the
    /// authorization's id, so that the sweeper voids it when the authorizer does not take the void
    /// now; one already voided (its look-up came before this approval) is voided at the authorizer.
    /// </summary>
    public async Task VoidLateApprovalAsync(Guid topUpId, Guid authorizationId, CancellationToken cancellationToken)
    {
        var now = time.GetUtcNow();
        TopUpRow? row;
        await using (var write = await database.BeginWriteAsync(cancellationToken).ConfigureAwait(false))
        {
            await write.Connection.ExecuteAsync(
                $"UPDATE topups SET authorization_id = @authorizationId, {TopUpRow.Touch} WHERE topup_id = @id AND state {TopUpStates.In(TopUpState.Voiding)} AND authorization_id IS NULL",
                new { id = topUpId.ToString(), authorizationId = authorizationId.ToString(), now = StoredTime.Format(now) }, write.Inner).ConfigureAwait(false);
            row = await TopUpRow.LoadAsync(write.Connection, write.Inner, topUpId).ConfigureAwait(false);
            await write.CommitAsync(cancellationToken).ConfigureAwait(false);
        }

        if (row is { State: TopUpState.Voiding } && row.AuthorizationId == authorizationId.ToString())
        {
            await VoidAsync(row, cancellationToken).ConfigureAwait(false);
        }
        else if (row is { State: TopUpState.Voided })
        {
            var outcome = await authorizer!.VoidAsync(authorizationId, new VoidRequest(AbandonedReason), cancellationToken).ConfigureAwait(false);
            if (outcome.Result != CreditResult.Answered && outcome.Problem != ProblemCode.AuthorizationExpired)
            {
                events.LateApprovalHeld(topUpId, authorizationId, outcome.Code ?? outcome.Result.ToString());
            }
        }
    }

    // authorizing → voiding for what no request asked for within TopUpAuthorizingMax, each in its
    // own transaction; the guard leaves a top-up whose wallet asked again since it was listed.
    private async Task AbandonAsync(CancellationToken cancellationToken)
    {
        var now = time.GetUtcNow();
        var parameters = new { now = StoredTime.Format(now), before = StoredTime.Format(now - options.TopUpAuthorizingMax) };
        IReadOnlyList<TopUpRow> stale;
        await using (var connection = await database.OpenAsync(cancellationToken).ConfigureAwait(false))
        {
            stale = await TopUpRow.ListAsync(connection, $"state {TopUpStates.In(TopUpState.Authorizing)} AND updated_at < @before ORDER BY updated_at LIMIT {BatchMax}", parameters).ConfigureAwait(false);
        }

        foreach (var row in stale)
        {
            await using var write = await database.BeginWriteAsync(cancellationToken).ConfigureAwait(false);
            if (await TopUpStates.Machine.RunAsync(write.Connection, write.Inner, TopUpStates.Abandon, row.Movement, now, TopUpRow.Touch, "updated_at < @before", parameters).ConfigureAwait(false))
            {
                await write.CommitAsync(cancellationToken).ConfigureAwait(false);
                events.Abandoned(row.Id, row.UpdatedAt);
                events.Entered(row.Id, TopUpState.Voiding, row.Amount, row.LastFour);
            }
        }
    }

    // Voids a voiding top-up's authorization; the top-up as voided, or null when the authorizer did not take it.
    private async Task<TopUpRow?> VoidAsync(TopUpRow row, CancellationToken cancellationToken)
    {
        var authorizationId = row.AuthorizationId;
        var reason = VoidReason;
        if (authorizationId is null)
        {
            // Abandoned while authorizing: the operator has no card data to ask again with, so it asks
            // what the authorizer made under the top-up id (the idempotency key). Only once a call
            // that was under way when the top-up was abandoned has ended: an approval it brings back
            // is then either found here, or seen by its own request (VoidLateApprovalAsync).
            if (time.GetUtcNow() - row.UpdatedAt < (options.Authorizer?.Timeout ?? TimeSpan.Zero))
            {
                return null;
            }

            var found = await authorizer!.FindAsync(row.TopUpId, cancellationToken).ConfigureAwait(false);
            if (found.Result == CreditResult.Refused && found.Problem == ProblemCode.AuthorizationNotFound)
            {
                return await MoveAsync(row, TopUpStates.Void, cancellationToken).ConfigureAwait(false) ? row with { State = TopUpState.Voided } : null;
            }

            if (found.Authorization is not { } authorization)
            {
                events.SettleFailed(row.Id, "look-up", found.Code ?? found.Result.ToString());
                return null;
            }

            if (authorization.Status != AuthorizationStatus.Approved || authorization.VoidedAt is not null)
            {
                // Declined, or voided before: nothing is held.
                return await MoveAsync(row, TopUpStates.Void, cancellationToken, authorization.Id).ConfigureAwait(false) ? row with { State = TopUpState.Voided } : null;
            }

            authorizationId = authorization.Id.ToString();
            reason = AbandonedReason;
        }

        var outcome = await authorizer!.VoidAsync(Guid.Parse(authorizationId), new VoidRequest(reason), cancellationToken).ConfigureAwait(false);
        // An authorization that expired holds nothing any more: as good as voided. One that was
        // captured is refused and stays voiding, for a person to look at: nothing captures a voiding top-up.
        if (outcome.Result != CreditResult.Answered && outcome.Problem != ProblemCode.AuthorizationExpired)
        {
            events.SettleFailed(row.Id, "void", outcome.Code ?? outcome.Result.ToString());
            return null;
        }

        return await MoveAsync(row, TopUpStates.Void, cancellationToken, Guid.Parse(authorizationId)).ConfigureAwait(false) ? row with { State = TopUpState.Voided } : null;
    }

    // Runs the transition; with an authorization, records its id on a row that had none (an abandoned top-up's).
    private async Task<bool> MoveAsync(TopUpRow row, Transition<TopUpState> transition, CancellationToken cancellationToken, Guid? authorizationId = null)
    {
        var now = time.GetUtcNow();
        await using var write = await database.BeginWriteAsync(cancellationToken).ConfigureAwait(false);
        if (!await TopUpStates.Machine.RunAsync(write.Connection, write.Inner, transition, row.Movement, now,
                "authorization_id = COALESCE(authorization_id, @authorizationId), " + TopUpRow.Touch,
                parameters: new { authorizationId = authorizationId?.ToString(), now = StoredTime.Format(now) }).ConfigureAwait(false))
        {
            return false;
        }

        await write.CommitAsync(cancellationToken).ConfigureAwait(false);
        events.Entered(row.Id, transition.To, row.Amount, row.LastFour);
        return true;
    }

    /// <summary>crediting → credited: topups → card for what the card's log says it took, and the card's shadow follows.</summary>
    public static async Task<bool> CreditedAsync(DbConnection connection, DbTransaction transaction, TopUpRow row, CardLogRecord record, byte[]? cardAnswer, DateTimeOffset now) =>
        record.Amount == row.Amount
        && await TopUpStates.Machine.RunAsync(connection, transaction, TopUpStates.Credit, row.Movement, now,
            "card_answer = @cardAnswer, balance_after_minor = @balanceAfter, " + TopUpRow.Touch,
            parameters: new { cardAnswer, balanceAfter = record.BalanceAfter.MinorUnits, now = StoredTime.Format(now) }).ConfigureAwait(false)
        && await CardRecovery.FollowCardAsync(connection, transaction, row.CardId, record, CardLogSources.TopUp, now).ConfigureAwait(false);
}
