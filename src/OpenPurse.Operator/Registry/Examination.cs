using System.Data.Common;
using System.Globalization;
using Dapper;
using OpenPurse.Operator.Settlement;
using OpenPurse.Protocol;
using OpenPurse.Protocol.Purse;

namespace OpenPurse.Operator.Registry;

/// <summary>
/// The careful examination (<c>openpurse-operator examine</c>, <c>GET /v1/admin/examination</c>):
/// every record of the operator's card log against the transaction it names, each card's chain of
/// records, each card's last recorded balance against its shadow and its ledger account, every
/// finished transaction that should have left a record, and — through the same code as
/// <c>reconcile</c> — the ledger's invariants and the stores' statements. See docs/operations.md,
/// "The careful examination".
/// </summary>
/// <remarks>
/// The card log checks read the log and the transactions in one read-only snapshot; the ledger's
/// checks (<see cref="Ledger.ReconcileAsync"/>) take their own. What is read is held in memory for
/// the run: a record and a transaction are a few hundred bytes each.
/// </remarks>
internal sealed class Examination(Database database, Ledger ledger, StoreStatements? statements = null)
{
    /// <summary>A record whose transaction is another card's, of another kind, amount, currency or counter.</summary>
    public const string RecordMismatch = "record.mismatch";

    /// <summary>A record whose reference names no transaction of the operator.</summary>
    public const string RecordUnknown = "record.unknown_ref";

    /// <summary>A record of a transaction the operator holds as never run by the card (voided, abandoned, failed, …).</summary>
    public const string RecordStateMismatch = "record.state_mismatch";

    /// <summary>A record that differs from the one kept for the same card and counter.</summary>
    public const string RecordConflict = "record.conflict";

    /// <summary>A transaction the operator finished as run by the card, with no record of it.</summary>
    public const string RecordMissing = "record.missing";

    /// <summary>Consecutive records whose balances after do not follow from the amounts.</summary>
    public const string ChainBreak = "chain.break";

    /// <summary>A card's last recorded balance differs from its shadow or its ledger account.</summary>
    public const string CardBalanceMismatch = "card.balance_mismatch";

    /// <summary>Not a mismatch: counters of a card whose records the operator never received.</summary>
    public const string ChainGap = "chain.gap";

    /// <summary>Not a mismatch: a record of a transaction still open (its outcome is decided at the card's next session).</summary>
    public const string RecordOpen = "record.transaction_open";

    /// <summary>Not a mismatch: a transaction finished before the operator kept card logs.</summary>
    public const string RecordBeforeLog = "record.before_log";

    /// <summary>Not a mismatch: a disputed settlement waiting for the operator's decision.</summary>
    public const string SettlementDisputed = "settlement.disputed";

    private const int QueryTimeoutSeconds = 600;

    /// <summary>Kinds that are listed for a person's information, not as mismatches.</summary>
    public static readonly IReadOnlySet<string> Notes = new HashSet<string>(StringComparer.Ordinal)
    {
        ChainGap, RecordOpen, RecordBeforeLog, SettlementDisputed, StoreStatements.Unavailable,
    };

    /// <summary>Runs every check; with <paramref name="card"/>, only what concerns that card (the per-currency invariant and the stores' statements are the whole registry's, and left out).</summary>
    public async Task<ExaminationReport> RunAsync(CardId? card, CancellationToken cancellationToken)
    {
        var findings = new List<ExaminationFinding>();
        var books = await ledger.ReconcileAsync(cancellationToken).ConfigureAwait(false);
        foreach (var difference in books.Differences.Where(d => card is not { } only || (d.Kind == LedgerDifference.CardShadowMismatch && d.Subject == only.Digits)))
        {
            findings.Add(ExaminationFinding.FromLedger(difference));
        }

        var storesCompared = 0;
        if (card is null)
        {
            findings.AddRange(books.Disputed.Select(d => new ExaminationFinding(SettlementDisputed, null, [d.SettlementId], "a decision", "disputed", d.ToText())));
            if (statements is not null)
            {
                var (differences, compared) = await statements.CompareAsync(cancellationToken).ConfigureAwait(false);
                storesCompared = compared;
                findings.AddRange(differences.Select(ExaminationFinding.FromLedger));
            }
        }

        var (cards, records) = await CardLogAsync(card, findings, cancellationToken).ConfigureAwait(false);
        return new ExaminationReport(findings)
        {
            Cards = cards,
            Records = records,
            StoresCompared = storesCompared,
            Currencies = card is null ? books.Currencies : [],
        };
    }

    private async Task<(int Cards, int Records)> CardLogAsync(CardId? card, List<ExaminationFinding> findings, CancellationToken cancellationToken)
    {
        var only = card?.Digits;
        var filter = only is null ? "" : "WHERE card_id = @only";
        await using var connection = await database.OpenAsync(cancellationToken).ConfigureAwait(false);
        await using var transaction = await database.BeginReadAsync(connection, cancellationToken).ConfigureAwait(false);
        CommandDefinition Command(string sql) => new(sql, new { only }, transaction, QueryTimeoutSeconds, cancellationToken: cancellationToken);

        var log = (await connection.QueryAsync<CardLogRow>(Command($"SELECT {CardLogRow.Select} FROM card_log {filter} ORDER BY card_id, counter")).ConfigureAwait(false)).ToList();
        var conflicts = await connection.QueryAsync<CardLogRow>(Command($"SELECT {CardLogRow.Select} FROM card_log_conflicts {filter} ORDER BY card_id, counter")).ConfigureAwait(false);
        var starts = (await connection.QueryAsync<(string CardId, long Counter)>(Command($"SELECT card_id, counter FROM card_log_start {filter}")).ConfigureAwait(false))
            .ToDictionary(s => s.CardId, s => s.Counter, StringComparer.Ordinal);
        var shadows = (await connection.QueryAsync<(string CardId, string Currency, long Balance)>(Command($"SELECT card_id, currency, balance_minor FROM card_purses {filter}")).ConfigureAwait(false))
            .ToDictionary(s => (s.CardId, s.Currency), s => s.Balance);
        var prefix = Account.PrefixOf(AccountKind.Card);
        var accounts = (await connection.QueryAsync<(string Account, string Currency, long Balance)>(Command(
                $"SELECT account, currency, CAST(SUM(amount_minor) AS BIGINT) FROM journal WHERE SUBSTR(account, 1, {prefix.Length}) = '{prefix}' GROUP BY account, currency")).ConfigureAwait(false))
            .ToDictionary(a => (a.Account[prefix.Length..], a.Currency), a => a.Balance);
        // A replaced card's account gave its replacement what it held (card_carries, source balance)
        // while its chip, blocked, kept it: for its records, what was carried counts as still its own,
        // as the ledger's shadow check counts it.
        var carried = await connection.QueryAsync<(string CardId, string Currency, long Minor)>(Command(
            $"SELECT card_id, currency, CAST(SUM(amount_minor) AS BIGINT) FROM ({Ledger.CarriedBalances}) AS carried GROUP BY card_id, currency")).ConfigureAwait(false);
        foreach (var (cardId, currency, minor) in carried)
        {
            accounts[(cardId, currency)] = checked(accounts.GetValueOrDefault((cardId, currency)) + minor);
        }

        var orders = await OrdersAsync(connection, Command, filter).ConfigureAwait(false);
        await transaction.CommitAsync(cancellationToken).ConfigureAwait(false);

        var byRef = new Dictionary<string, Order>(StringComparer.Ordinal);
        foreach (var order in orders)
        {
            byRef.TryAdd(order.Ref, order);
        }

        var recorded = new HashSet<string>(StringComparer.Ordinal);
        foreach (var record in log)
        {
            CheckRecord(record, byRef, recorded, findings);
        }

        foreach (var conflict in conflicts)
        {
            var kept = log.FirstOrDefault(r => r.CardId == conflict.CardId && r.Counter == conflict.Counter);
            findings.Add(new ExaminationFinding(RecordConflict, Ledger.MaskCard(conflict.CardId), Refs(kept?.TransactionRef, conflict.TransactionRef),
                kept is null ? "the kept record" : $"the kept record: {Describe(kept)} ({kept.Source})",
                $"{Describe(conflict)} ({conflict.Source}, {conflict.ReceivedAt})",
                "two authenticated records for one counter: the card's log cannot hold both; find out which transaction the card ran"));
        }

        foreach (var order in orders.Where(o => o.Outcome == Outcome.Ran && !recorded.Contains(o.Ref)))
        {
            var start = starts.GetValueOrDefault(order.CardId);
            var beforeLog = order.RecordCounter is { } counter ? counter <= start : start > 0;
            findings.Add(new ExaminationFinding(beforeLog ? RecordBeforeLog : RecordMissing, Ledger.MaskCard(order.CardId), order.Transactions,
                $"a {order.Kind.ToString().ToLowerInvariant()} record of {Ledger.FormatAmount(order.AmountMinor, order.Currency)}{(order.RecordCounter is { } at ? $" at counter {at}" : "")}",
                "none",
                beforeLog
                    ? $"{order.Name} {order.State} before the card log was kept for this card (from counter {start + 1})"
                    : $"{order.Name} {order.State}: the operator posted it as run by the card, and holds no record of the card's"));
        }

        foreach (var chain in log.GroupBy(r => r.CardId, StringComparer.Ordinal))
        {
            CheckChain(chain.Key, [.. chain], starts.GetValueOrDefault(chain.Key), findings);
            CheckBalances(chain.Key, [.. chain], shadows, accounts, orders, findings);
        }

        return (log.Select(r => r.CardId).Distinct(StringComparer.Ordinal).Count(), log.Count);
    }

    private static void CheckRecord(CardLogRow record, Dictionary<string, Order> byRef, HashSet<string> recorded, List<ExaminationFinding> findings)
    {
        var card = Ledger.MaskCard(record.CardId);
        if (!byRef.TryGetValue(record.TransactionRef, out var order))
        {
            findings.Add(new ExaminationFinding(RecordUnknown, card, [record.TransactionRef], "a transaction of the operator with this reference", Describe(record),
                $"the card wrote it (delivered by {record.Source}); no settlement, top-up, card credit, load, transfer or cash-out has this reference"));
            return;
        }

        var expected = $"{order.Kind.ToString().ToLowerInvariant()} {Ledger.FormatAmount(order.AmountMinor, order.Currency)}"
            + (order.RecordCounter is { } counter ? $" at counter {counter}" : "") + (order.CardId == record.CardId ? "" : $" on card {Ledger.MaskCard(order.CardId)}");
        var differences = new List<string>();
        if (order.CardId != record.CardId)
        {
            differences.Add("another card's");
        }

        if (!string.Equals(order.Kind == ValueKind.Debit ? CardLogRow.Debit : CardLogRow.Credit, record.Kind, StringComparison.Ordinal))
        {
            differences.Add("another kind");
        }

        if (order.AmountMinor != record.AmountMinor || order.Currency != record.Currency)
        {
            differences.Add("another amount");
        }

        if (order.RecordCounter is { } at && at != record.Counter)
        {
            differences.Add("another counter");
        }

        // The transaction has a record, right or wrong: a wrong one is not also listed as missing.
        recorded.Add(order.Ref);
        if (differences.Count > 0)
        {
            findings.Add(new ExaminationFinding(RecordMismatch, card, order.Transactions, expected, Describe(record),
                $"{order.Name} {order.State}; the card's record is {string.Join(", ", differences)}"));
            return;
        }

        if (order.Outcome == Outcome.NeverRan)
        {
            findings.Add(new ExaminationFinding(RecordStateMismatch, card, order.Transactions, $"no record: the operator holds {order.Name} as {order.State}", Describe(record),
                "the card ran what the operator holds as never run: its value moved on the card but not in the books"));
        }
        else if (order.Outcome == Outcome.Open)
        {
            findings.Add(new ExaminationFinding(RecordOpen, card, order.Transactions, $"{order.Name} resolved", $"{order.Name} {order.State}, {Describe(record)}",
                "the card's next session resolves it"));
        }
    }

    // Each record's balance after follows from the one before it in the same currency, as long as no
    // counter between them is missing. Before a card's first record the purses are empty only when its
    // log starts at its beginning.
    private static void CheckChain(string cardId, IReadOnlyList<CardLogRow> records, long start, List<ExaminationFinding> findings)
    {
        var card = Ledger.MaskCard(cardId);
        var balances = new Dictionary<string, CardLogRow>(StringComparer.Ordinal);
        var fromBeginning = start == 0;
        var previous = start;
        foreach (var record in records)
        {
            if (record.Counter > previous + 1)
            {
                findings.Add(new ExaminationFinding(ChainGap, card, [],
                    $"records {previous + 1}{(record.Counter - 1 > previous + 1 ? $" to {record.Counter - 1}" : "")}", "not received",
                    "the card ran value changes whose records did not reach the operator; its log (openpurse history) shows them"));
                balances.Clear();
                fromBeginning = false;
            }

            var before = balances.TryGetValue(record.Currency, out var last) ? last.BalanceAfterMinor : fromBeginning ? 0 : (long?)null;
            if (before is { } balance && balance + record.SignedAmount != record.BalanceAfterMinor)
            {
                findings.Add(new ExaminationFinding(ChainBreak, card, Refs(last?.TransactionRef, record.TransactionRef),
                    $"balance after counter {record.Counter}: {Ledger.FormatAmount(balance + record.SignedAmount, record.Currency)}",
                    Ledger.FormatAmount(record.BalanceAfterMinor, record.Currency),
                    $"{(last is null ? "an empty purse" : $"counter {last.Counter} left {Ledger.FormatAmount(balance, record.Currency)}")}, then {Describe(record)}"));
            }

            balances[record.Currency] = record;
            previous = record.Counter;
        }
    }

    // The card's last record in each currency says what that purse holds now: its shadow and its
    // ledger account must say the same. What is open for the card is listed with it.
    private static void CheckBalances(string cardId, IReadOnlyList<CardLogRow> records, Dictionary<(string, string), long> shadows,
        Dictionary<(string, string), long> accounts, IReadOnlyList<Order> orders, List<ExaminationFinding> findings)
    {
        foreach (var last in records.GroupBy(r => r.Currency, StringComparer.Ordinal).Select(g => g.MaxBy(r => r.Counter)!))
        {
            var shadow = shadows.TryGetValue((cardId, last.Currency), out var s) ? s : (long?)null;
            var account = accounts.GetValueOrDefault((cardId, last.Currency));
            if (shadow == last.BalanceAfterMinor && account == last.BalanceAfterMinor)
            {
                continue;
            }

            var open = orders.Where(o => o.CardId == cardId && o.Outcome == Outcome.Open).Select(o => $"{o.Name} {o.Transactions[0]} {o.State}, {Ledger.FormatAmount(o.AmountMinor, o.Currency)}").ToList();
            findings.Add(new ExaminationFinding(CardBalanceMismatch, Ledger.MaskCard(cardId), [last.TransactionRef],
                $"{Ledger.FormatAmount(last.BalanceAfterMinor, last.Currency)} (the card's record at counter {last.Counter})",
                $"shadow {(shadow is { } held ? Ledger.FormatAmount(held, last.Currency) : "none")}, ledger account {Ledger.FormatAmount(account, last.Currency)}",
                open.Count == 0 ? "nothing is open for the card" : "open for the card: " + string.Join("; ", open)));
        }
    }

    private static IReadOnlyList<string> Refs(params string?[] refs) => [.. refs.OfType<string>().Distinct(StringComparer.Ordinal)];

    private static string Describe(CardLogRow record) =>
        $"{record.Kind} {Ledger.FormatAmount(record.AmountMinor, record.Currency)} at counter {record.Counter}, balance after {Ledger.FormatAmount(record.BalanceAfterMinor, record.Currency)}";

    // Every order the operator gave a card, with the record it expects of it.
    private static async Task<IReadOnlyList<Order>> OrdersAsync(DbConnection connection, Func<string, CommandDefinition> command, string filter)
    {
        var orders = new List<Order>();
        foreach (var s in await connection.QueryAsync<(string Id, string CardId, long AmountMinor, string Currency, string State, long ExpectedCounter, string? ReversalId, byte[]? ReversalGreeting)>(command(
            $"SELECT settlement_id, card_id, amount_minor, currency, state, expected_counter, reversal_id, reversal_greeting FROM settlements {filter}")).ConfigureAwait(false))
        {
            orders.Add(new Order("settlement", s.Id, s.Id, s.CardId, ValueKind.Debit, s.AmountMinor, s.Currency, s.State,
                Classify(s.State, ["completed", "disputed", "reversing", "reversed"], ["authorized", "expired"]), s.ExpectedCounter + 1));
            if (s.ReversalId is { } reversal)
            {
                orders.Add(new Order("settlement return", s.Id, reversal, s.CardId, ValueKind.Credit, s.AmountMinor, s.Currency, s.State,
                    Classify(s.State, ["reversed"], ["reversing"]), CounterAfter(s.ReversalGreeting)));
            }
        }

        foreach (var t in await connection.QueryAsync<(string Id, string CardId, long AmountMinor, string Currency, string State, byte[]? Greeting)>(command(
            $"SELECT topup_id, card_id, amount_minor, currency, state, credit_greeting FROM topups {filter}")).ConfigureAwait(false))
        {
            orders.Add(new Order("top-up", t.Id, t.Id, t.CardId, ValueKind.Credit, t.AmountMinor, t.Currency, t.State,
                Classify(t.State, ["credited", "captured"], ["crediting"]), CounterAfter(t.Greeting)));
        }

        foreach (var c in await connection.QueryAsync<(string Id, string CardId, long AmountMinor, string Currency, string State, string? ValueUpdateId, byte[]? Greeting)>(command(
            $"SELECT credit_id, card_id, amount_minor, currency, state, value_update_id, credit_greeting FROM card_credits {filter}")).ConfigureAwait(false))
        {
            if (c.ValueUpdateId is { } valueUpdateId)
            {
                orders.Add(new Order("card credit", c.Id, valueUpdateId, c.CardId, ValueKind.Credit, c.AmountMinor, c.Currency, c.State,
                    Classify(c.State, ["credited"], ["crediting"]), CounterAfter(c.Greeting)));
            }
        }

        foreach (var l in await connection.QueryAsync<(string Id, string CardId, long AmountMinor, string Currency, string State, long ExpectedCounter)>(command(
            $"SELECT load_id, card_id, amount_minor, currency, state, expected_counter FROM card_loads {filter}")).ConfigureAwait(false))
        {
            orders.Add(new Order("load", l.Id, l.Id, l.CardId, ValueKind.Credit, l.AmountMinor, l.Currency, l.State, Classify(l.State, ["loaded"], ["pending"]), l.ExpectedCounter + 1));
        }

        foreach (var (table, name, ran) in new[] { ("transfers", "transfer", new[] { "debited" }), ("cashouts", "cash-out", new[] { "debited", "paid", "returned" }) })
        {
            foreach (var d in await connection.QueryAsync<(string Id, string CardId, long AmountMinor, string Currency, string State, byte[]? Greeting)>(command(
                $"SELECT {(table == "transfers" ? "transfer_id" : "cashout_id")}, card_id, amount_minor, currency, state, debit_greeting FROM {table} {filter}")).ConfigureAwait(false))
            {
                orders.Add(new Order(name, d.Id, d.Id, d.CardId, ValueKind.Debit, d.AmountMinor, d.Currency, d.State, Classify(d.State, ran, ["debiting"]), CounterAfter(d.Greeting)));
            }
        }

        return orders;
    }

    private static Outcome Classify(string state, string[] ran, string[] open) =>
        ran.Contains(state, StringComparer.Ordinal) ? Outcome.Ran : open.Contains(state, StringComparer.Ordinal) ? Outcome.Open : Outcome.NeverRan;

    // An order acts at the counter of the greeting it was made for; its record is at the next one.
    private static long? CounterAfter(byte[]? greeting) =>
        greeting is not null && CardGreeting.TryParse(greeting, out var parsed) ? parsed.Status.Counter + 1L : null;

    private enum Outcome
    {
        Ran,
        Open,
        NeverRan,
    }

    /// <summary>
    /// An order the operator gave a card (<c>Name</c> for a person, <c>Id</c> the transaction's id),
    /// and the record the card writes when it runs it: <c>Ref</c> its reference (a settlement's
    /// return: its CREDIT's), of <c>Kind</c>, the amount, at <c>RecordCounter</c> when known.
    /// </summary>
    private sealed record Order(string Name, string Id, string Ref, string CardId, ValueKind Kind, long AmountMinor, string Currency, string State, Outcome Outcome, long? RecordCounter)
    {
        public IReadOnlyList<string> Transactions => Id == Ref ? [Id] : [Id, Ref];
    }
}

/// <summary>One thing the examination found.</summary>
/// <param name="Kind">Stable: one of the constants of <see cref="Examination"/>, <see cref="LedgerDifference"/> or <see cref="StoreStatements"/>.</param>
/// <param name="Card">The card concerned, masked; null when none.</param>
/// <param name="Transactions">The transactions behind it: settlement, top-up, credit, load, transfer, cash-out ids, card log references.</param>
/// <param name="Expected">What the books or the card say it should be, as a person reads it.</param>
/// <param name="Actual">What was found.</param>
/// <param name="Detail">A sentence for the operator.</param>
internal sealed record ExaminationFinding(string Kind, string? Card, IReadOnlyList<string> Transactions, string Expected, string Actual, string Detail)
{
    /// <summary>A mismatch, rather than a note for the operator's information.</summary>
    public bool Mismatch => !Examination.Notes.Contains(Kind);

    /// <summary>One of the ledger's or the stores' differences, its card number masked.</summary>
    public static ExaminationFinding FromLedger(LedgerDifference difference)
    {
        ArgumentNullException.ThrowIfNull(difference);
        return difference.Kind == LedgerDifference.CardShadowMismatch
            ? new ExaminationFinding(difference.Kind, difference.DisplaySubject, [], difference.Expected, difference.Actual, difference.Detail)
            : new ExaminationFinding(difference.Kind, null, [difference.Subject], difference.Expected, difference.Actual, difference.Detail);
    }
}

/// <summary>What the examination found. Card numbers are masked throughout: the report may be shown and kept.</summary>
internal sealed record ExaminationReport(IReadOnlyList<ExaminationFinding> Findings)
{
    /// <summary>No mismatch (notes may be listed).</summary>
    public bool Clean => Findings.All(f => !f.Mismatch);

    /// <summary>Cards with records in the card log.</summary>
    public int Cards { get; init; }

    /// <summary>Records in the card log examined.</summary>
    public int Records { get; init; }

    /// <summary>Stores whose signed statements were compared.</summary>
    public int StoresCompared { get; init; }

    /// <summary>The books per currency (empty for one card's examination).</summary>
    public IReadOnlyList<LedgerCurrencyTotals> Currencies { get; init; } = [];

    /// <summary>The mismatches.</summary>
    public int Mismatches => Findings.Count(f => f.Mismatch);

    /// <summary>A summary line for a person.</summary>
    public string Summary => string.Create(CultureInfo.InvariantCulture,
        $"Examination: {(Clean ? "clean" : $"{Mismatches} mismatch{(Mismatches == 1 ? "" : "es")}")}; {Records} card log record{(Records == 1 ? "" : "s")} of {Cards} card{(Cards == 1 ? "" : "s")}, {StoresCompared} store statement{(StoresCompared == 1 ? "" : "s")} compared, {Findings.Count - Mismatches} note{(Findings.Count - Mismatches == 1 ? "" : "s")}.");
}
