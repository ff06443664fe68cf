using Dapper;
using OpenPurse.Operator.Registry;
using OpenPurse.Protocol;
using OpenPurse.Storage;

namespace OpenPurse.Operator.Issuance;

/// <summary>The states of a card's life at the operator (the <c>cards.status</c> column).</summary>
internal enum CardState
{
    /// <summary>Issued: the operator takes its settlements, top-ups, transfers and cash-outs.</summary>
    Active,

    /// <summary>Blocked by an administrator (a lost card) or by the issuing station (a card never made): every movement is refused.</summary>
    Blocked,
}

/// <summary>What a transition of a card's life did.</summary>
internal enum CardChange
{
    /// <summary>The card is now in the transition's state.</summary>
    Done,

    /// <summary>No card of that number.</summary>
    Unknown,

    /// <summary>The card is in none of the states the transition starts from.</summary>
    Refused,

    /// <summary>The card was replaced by another: it stays blocked for good.</summary>
    Replaced,
}

/// <summary>
/// The one place of a card's life: block and unblock are transitions of one machine over the
/// <c>cards</c> table, like the movements' (<see cref="StateMachine{TState}"/>). Neither moves
/// money: a blocked card keeps its value, which the ledger goes on owing to it.
/// </summary>
/// <remarks>
/// <code>
/// active ─block─▶ blocked ─unblock─▶ active
///                    └─(replaced: never unblocked; its value went to its replacement)
/// </code>
/// <c>cards.blocked_at</c> is set by block and cleared by unblock; who did either, and why, is in the admin audit trail.
/// </remarks>
internal static class CardStates
{
    /// <summary>active → blocked: a lost or stolen card, or a number the issuing station could not make into a card.</summary>
    public static readonly Transition<CardState> Block =
        new("block", [CardState.Active], CardState.Blocked);

    /// <summary>blocked → active: a card blocked by mistake, or found again; never a replaced card (<see cref="CardReplacements"/>), whose value its replacement took.</summary>
    public static readonly Transition<CardState> Unblock =
        new("unblock", [CardState.Blocked], CardState.Active);

    /// <summary>Every card state, its stored text, and the transition table.</summary>
    public static StateMachine<CardState> Machine { get; } = new(
        "cards",
        "card_id",
        new Dictionary<CardState, string>
        {
            [CardState.Active] = "active",
            [CardState.Blocked] = "blocked",
        },
        [Block, Unblock],
        column: "status");

    /// <summary>The state's stored text, also on the wire (<see cref="CardView.State"/>).</summary>
    public static string ToText(this CardState state) => Machine.Text(state);

    /// <summary>
    /// Runs <paramref name="transition"/> on the card in a transaction of its own: <see cref="CardChange.Refused"/>
    /// when the card is in none of the states it starts from, <see cref="CardChange.Unknown"/> when there is no such card,
    /// <see cref="CardChange.Replaced"/> when an unblock finds the card replaced.
    /// </summary>
    public static async Task<CardChange> RunAsync(Database database, CardId cardId, Transition<CardState> transition, DateTimeOffset at, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(database);
        ArgumentNullException.ThrowIfNull(transition);
        var set = transition.To == CardState.Blocked ? "blocked_at = @at" : "blocked_at = NULL";
        await using var write = await database.BeginWriteAsync(cancellationToken).ConfigureAwait(false);
        var movement = new Movement(cardId.Digits, cardId.Digits, null, default);
        // A replaced card stays blocked: the guard holds in the transition's own statement, whatever replaces it meanwhile.
        var guard = transition == Unblock ? "NOT EXISTS (SELECT 1 FROM card_replacements r WHERE r.old_card_id = cards.card_id)" : null;
        if (await Machine.RunAsync(write.Connection, write.Inner, transition, movement, at, set, guard, parameters: new { at = StoredTime.Format(at) }).ConfigureAwait(false))
        {
            await write.CommitAsync(cancellationToken).ConfigureAwait(false);
            return CardChange.Done;
        }

        var exists = await write.Connection.ExecuteScalarAsync<long>("SELECT COUNT(*) FROM cards WHERE card_id = @id", new { id = cardId.Digits }, write.Inner).ConfigureAwait(false);
        var replaced = exists == 1 && transition == Unblock && await CardReplacements.IsReplacedAsync(write.Connection, write.Inner, cardId.Digits).ConfigureAwait(false);
        await write.CommitAsync(cancellationToken).ConfigureAwait(false);
        return exists == 0 ? CardChange.Unknown : replaced ? CardChange.Replaced : CardChange.Refused;
    }
}
