using System.Data.Common;
using Dapper;
using OpenPurse.Protocol;

namespace OpenPurse.Operator.Registry;

/// <summary>
/// A transition of a movement's state machine: allowed from any of <see cref="From"/>, it leaves the
/// movement in <see cref="To"/> and, when it moves money, posts <see cref="Posts"/>. Its
/// <see cref="Name"/> is for tests and messages.
/// </summary>
internal sealed record Transition<TState>(string Name, IReadOnlyList<TState> From, TState To, Posting? Posts = null)
    where TState : struct, Enum
{
    /// <summary>Whether the transition may start in <paramref name="state"/>.</summary>
    public bool AllowedFrom(TState state) => From.Contains(state);

    /// <inheritdoc/>
    public override string ToString() => $"{Name} ({string.Join(", ", From)} → {To})";
}

/// <summary>
/// A transition's journal entry, by kind of account: a card or store account is the one of the
/// movement's own card or store (<see cref="Movement"/>).
/// </summary>
internal readonly record struct Posting(AccountKind From, AccountKind To)
{
    /// <summary>The two accounts for a movement of this card (digits) and store.</summary>
    public (Account From, Account To) Between(string cardDigits, string? storeId) => (Of(From, cardDigits, storeId), Of(To, cardDigits, storeId));

    /// <summary>The entry that moves <paramref name="movement"/>'s amount.</summary>
    public JournalEntry For(Movement movement)
    {
        var (from, to) = Between(movement.CardDigits, movement.StoreId);
        return new JournalEntry(from, to, movement.Amount);
    }

    private static Account Of(AccountKind kind, string cardDigits, string? storeId) => kind switch
    {
        AccountKind.Issued => Account.Issued,
        AccountKind.Reversals => Account.Reversals,
        AccountKind.TopUps => Account.TopUps,
        AccountKind.Pending => Account.Pending,
        AccountKind.Payouts => Account.Payouts,
        AccountKind.Fees => Account.Fees,
        AccountKind.StorePayouts => Account.StorePayouts,
        AccountKind.Card => Account.Card(cardDigits),
        AccountKind.Store => Account.Store(storeId ?? throw new InvalidOperationException("This movement has no store to post to.")),
        _ => throw new ArgumentOutOfRangeException(nameof(kind), kind, "Not an account kind."),
    };
}

/// <summary>What a transition's journal entry needs of the movement: its id (the entry's reference), its card, its store if any, its amount.</summary>
internal readonly record struct Movement(string Id, string CardDigits, string? StoreId, Money Amount);

/// <summary>
/// The states of one kind of movement, stored as text in the <c>state</c> column of its table, and
/// the one way to change them. The text of each state is given once, here; SQL names states only
/// through <see cref="In"/>; a transition is one conditional <c>UPDATE</c> whose
/// <c>WHERE state …</c> is generated from <see cref="Transition{TState}.From"/>, so the table and
/// the SQL cannot disagree, and it posts its entry in the same transaction (<see cref="RunAsync"/>).
/// </summary>
/// <remarks>
/// A new way to move value (a top-up, a refund, a transfer, a cash-out) declares its states, a
/// machine over its table, and a transition table, as <c>SettlementStates</c> and <c>CardLoadStates</c> do;
/// its code runs only those transitions.
/// </remarks>
internal sealed class StateMachine<TState>
    where TState : struct, Enum
{
    private readonly string _table;
    private readonly string _key;
    private readonly string _column;
    private readonly Dictionary<TState, string> _texts;
    private readonly Dictionary<string, TState> _states;

    /// <param name="table">The movement's table.</param>
    /// <param name="key">Its primary key column, which is also the reference of the entries it posts.</param>
    /// <param name="texts">Every state with its stored text.</param>
    /// <param name="transitions">Every allowed transition.</param>
    /// <param name="column">The column that holds the state: <c>state</c> for the movements; a card's life is in <c>cards.status</c>.</param>
    public StateMachine(string table, string key, IReadOnlyDictionary<TState, string> texts, IReadOnlyList<Transition<TState>> transitions, string column = "state")
    {
        _table = table;
        _key = key;
        _column = column;
        _texts = new(texts);
        _states = texts.ToDictionary(t => t.Value, t => t.Key, StringComparer.Ordinal);
        if (Enum.GetValues<TState>().Any(state => !_texts.ContainsKey(state)))
        {
            throw new ArgumentException("Every state has a stored text.", nameof(texts));
        }

        Transitions = transitions;
    }

    /// <summary>The transition table.</summary>
    public IReadOnlyList<Transition<TState>> Transitions { get; }

    /// <summary>The state's text in the <c>state</c> column.</summary>
    public string Text(TState state) => _texts[state];

    /// <summary>Reads a stored state; false for text that is none of this machine's.</summary>
    public bool TryParse(string? text, out TState state) => _states.TryGetValue(text ?? "", out state);

    /// <summary>Reads a stored state.</summary>
    /// <exception cref="FormatException">Not a state of this machine.</exception>
    public TState Parse(string text) =>
        TryParse(text, out var state) ? state : throw new FormatException($"Not a {_table} state: '{text}'.");

    /// <summary>
    /// The SQL that follows the state column to match any of <paramref name="states"/>, with their
    /// texts inline (a partial index matches only its own literals): <c>= 'a'</c> or <c>IN ('a', 'b')</c>.
    /// </summary>
    public string In(params IReadOnlyList<TState> states) => states.Count switch
    {
        0 => throw new ArgumentException("At least one state.", nameof(states)),
        1 => $"= '{Text(states[0])}'",
        _ => $"IN ({string.Join(", ", states.Select(s => $"'{Text(s)}'"))})",
    };

    /// <summary>
    /// Runs <paramref name="transition"/> on <paramref name="movement"/> in the caller's transaction:
    /// <c>UPDATE … SET state = to[, set] WHERE key = id AND state IN (from)[ AND guard]</c>, and
    /// when that changed the row, the transition's entry. Refused (false, nothing written) when the
    /// movement is in none of the states it starts from, or the guard does not hold: another
    /// transaction changed it first.
    /// </summary>
    /// <remarks>
    /// <c>set</c> names more columns to set (e.g. <c>completed_at = @now</c>), <c>guard</c> more
    /// conditions (e.g. <c>store_attempts = @before</c>), <c>parameters</c> their parameters;
    /// <c>@id</c> is the movement's. The entry is posted at <c>at</c>, under the movement's id.
    /// </remarks>
    public async Task<bool> RunAsync(DbConnection connection, DbTransaction transaction, Transition<TState> transition, Movement movement, DateTimeOffset at,
        string? set = null, string? guard = null, object? parameters = null)
    {
        ArgumentNullException.ThrowIfNull(transition);
        var sql = $"UPDATE {_table} SET {_column} = '{Text(transition.To)}'{(set is null ? "" : ", " + set)} WHERE {_key} = @id AND {_column} {In(transition.From)}{(guard is null ? "" : " AND " + guard)}";
        var arguments = new DynamicParameters(parameters);
        arguments.Add("id", movement.Id);
        if (await connection.ExecuteAsync(sql, arguments, transaction).ConfigureAwait(false) != 1)
        {
            return false;
        }

        if (transition.Posts is { } posting)
        {
            await Journal.PostAsync(connection, transaction, movement.Id, at, posting.For(movement)).ConfigureAwait(false);
        }

        return true;
    }
}
