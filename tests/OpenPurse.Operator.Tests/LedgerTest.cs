using Dapper;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.DependencyInjection;
using OpenPurse.Operator.Issuance;
using OpenPurse.Operator.Registry;
using OpenPurse.Operator.Settlement;
using OpenPurse.Protocol;
using OpenPurse.Testing;

namespace OpenPurse.Operator.Tests;

/// <summary>
/// The ledger's invariant check on each engine, on rows written directly: a clean ledger, and each
/// kind of difference it must find. Card numbers never appear in full in the report's text.
/// </summary>
public abstract class LedgerTest : IAsyncLifetime
{
    private const string StoreId = "store-1";

    private static readonly DateTimeOffset s_at = new(2026, 1, 1, 12, 0, 0, TimeSpan.Zero);

    private int _orders;

    /// <summary>A connection string to a new, empty database on this class's engine.</summary>
    private protected abstract Task<string> CreateEmptyAsync();

    private protected abstract SqlDialect Dialect { get; }

    public Task InitializeAsync() => Task.CompletedTask;

    public abstract Task DisposeAsync();

    [SuiteFact]
    public async Task ReconcileAsync_LoadAndCompletedSettlement_IsCleanWithTotals()
    {
        var database = await RegistryAsync();
        var card = await AddCardAsync(database, 1);
        await LoadAsync(database, card, 10_000, Currency.Eur);
        await SettleAsync(database, card, 2_500, Currency.Eur);

        var report = await new Ledger(database).ReconcileAsync(CancellationToken.None);

        Assert.True(report.IsClean, report.ToText());
        Assert.Empty(report.Differences);
        var eur = Assert.Single(report.Currencies);
        Assert.Equal(new LedgerCurrencyTotals("EUR", 10_000, 7_500, 2_500, 0), eur);
        Assert.True(eur.IsBalanced);
        Assert.Contains("Ledger: clean.", report.ToText(), StringComparison.Ordinal);
        Assert.Matches(@"EUR\s+100\.00\s+75\.00\s+25\.00\s+0\.00\s+0\.00\s+yes", report.ToText());
    }

    [SuiteFact]
    public async Task ReconcileAsync_EmptyRegistry_IsClean()
    {
        var report = await new Ledger(await RegistryAsync()).ReconcileAsync(CancellationToken.None);

        Assert.True(report.IsClean);
        Assert.Empty(report.Currencies);
        Assert.Contains("The journal is empty.", report.ToText(), StringComparison.Ordinal);
    }

    [SuiteFact]
    public async Task ReconcileAsync_EntryLinesNotSummingToZero_EntryUnbalanced()
    {
        var database = await RegistryAsync();
        var card = await AddCardAsync(database, 1);
        await SetPurseAsync(database, card, "EUR", 100);
        await using (var connection = await database.OpenAsync())
        {
            await connection.ExecuteAsync(
                "INSERT INTO journal (entry_id, account, amount_minor, currency, reference, created_at) VALUES (@entryId, @account, @amount, 'EUR', 'hand-made', '2026-01-01T00:00:00.000Z')",
                new[] { new { entryId = "entry-1", account = "issued", amount = -93L }, new { entryId = "entry-1", account = "card:" + card.Digits, amount = 100L } });
        }

        var report = await new Ledger(database).ReconcileAsync(CancellationToken.None);

        Assert.False(report.IsClean);
        var unbalanced = Assert.Single(report.Differences, d => d.Kind == LedgerDifference.EntryUnbalanced);
        Assert.Equal("entry-1", unbalanced.Subject);
        Assert.Equal("0.00 EUR", unbalanced.Expected);
        Assert.Equal("0.07 EUR", unbalanced.Actual);
        Assert.Contains("hand-made", unbalanced.Detail, StringComparison.Ordinal);
        // Issued 0.93, owed to the card 1.00: the books do not balance either.
        var books = Assert.Single(report.Differences, d => d.Kind == LedgerDifference.LedgerNotBalanced);
        Assert.Equal(("EUR", "0.93 EUR", "1.00 EUR"), (books.Subject, books.Expected, books.Actual));
        Assert.DoesNotContain(report.Differences, d => d.Kind == LedgerDifference.CardShadowMismatch);
        Assert.DoesNotContain(card.Digits, report.ToText(), StringComparison.Ordinal);
    }

    [SuiteFact]
    public async Task ReconcileAsync_ShadowDiffersFromCardAccount_CardShadowMismatchMasked()
    {
        var database = await RegistryAsync();
        var card = await AddCardAsync(database, 1);
        await LoadAsync(database, card, 5_000, Currency.Eur);
        await SetPurseAsync(database, card, "EUR", 4_000);

        var report = await new Ledger(database).ReconcileAsync(CancellationToken.None);

        var mismatch = Assert.Single(report.Differences);
        Assert.Equal(LedgerDifference.CardShadowMismatch, mismatch.Kind);
        Assert.Equal(card.Digits, mismatch.Subject);
        Assert.Equal("40.00 EUR", mismatch.Expected);
        Assert.Equal("50.00 EUR", mismatch.Actual);
        var text = report.ToText();
        Assert.Contains(card.Masked, text, StringComparison.Ordinal);
        Assert.DoesNotContain(card.Digits, text, StringComparison.Ordinal);
        Assert.DoesNotContain(card.Digits, mismatch.ToString(), StringComparison.Ordinal);
        Assert.True(Assert.Single(report.Currencies).IsBalanced);
    }

    [SuiteFact]
    public async Task ReconcileAsync_CardOnOneSideOnly_CardShadowMismatchForEach()
    {
        var database = await RegistryAsync();
        var journalOnly = await AddCardAsync(database, 1);
        var shadowOnly = await AddCardAsync(database, 2);
        await PostAsync(database, Guid.NewGuid().ToString(), ("issued", -700), ("card:" + journalOnly.Digits, 700), Currency.Eur);
        await SetPurseAsync(database, shadowOnly, "EUR", 300);

        var report = await new Ledger(database).ReconcileAsync(CancellationToken.None);

        Assert.Equal(2, report.Differences.Count);
        Assert.All(report.Differences, d => Assert.Equal(LedgerDifference.CardShadowMismatch, d.Kind));
        var journalSide = Assert.Single(report.Differences, d => d.Subject == journalOnly.Digits);
        Assert.Equal(("0.00 EUR", "7.00 EUR"), (journalSide.Expected, journalSide.Actual));
        Assert.Contains("no card_purses row", journalSide.Detail, StringComparison.Ordinal);
        var shadowSide = Assert.Single(report.Differences, d => d.Subject == shadowOnly.Digits);
        Assert.Equal(("3.00 EUR", "0.00 EUR"), (shadowSide.Expected, shadowSide.Actual));
        Assert.Contains("no journal lines", shadowSide.Detail, StringComparison.Ordinal);
        var text = report.ToText();
        Assert.DoesNotContain(journalOnly.Digits, text, StringComparison.Ordinal);
        Assert.DoesNotContain(shadowOnly.Digits, text, StringComparison.Ordinal);
        Assert.Contains(journalOnly.Masked, text, StringComparison.Ordinal);
        Assert.Contains(shadowOnly.Masked, text, StringComparison.Ordinal);
    }

    [SuiteFact]
    public async Task ReconcileAsync_CompletedSettlementWithoutPosting_SettlementPostingMismatch()
    {
        var database = await RegistryAsync();
        var card = await AddCardAsync(database, 1);
        await LoadAsync(database, card, 10_000, Currency.Eur);
        var settlement = await AddSettlementAsync(database, card, 2_500, Currency.Eur, "completed");

        var report = await new Ledger(database).ReconcileAsync(CancellationToken.None);

        var mismatch = Assert.Single(report.Differences);
        Assert.Equal(LedgerDifference.SettlementPostingMismatch, mismatch.Kind);
        Assert.Equal(settlement, mismatch.Subject);
        Assert.Equal($"[card:{card.Masked} -25.00 EUR, store:{StoreId} +25.00 EUR]", mismatch.Expected);
        Assert.Equal("no journal lines", mismatch.Actual);
        Assert.DoesNotContain(card.Digits, report.ToText(), StringComparison.Ordinal);
    }

    [SuiteFact]
    public async Task ReconcileAsync_CompletedSettlementPostedToWrongStoreOrTwice_SettlementPostingMismatch()
    {
        var database = await RegistryAsync();
        await AddStoreAsync(database, "store-2");
        var card = await AddCardAsync(database, 1);
        await LoadAsync(database, card, 10_000, Currency.Eur);
        var wrongStore = await AddSettlementAsync(database, card, 1_000, Currency.Eur, "completed");
        await PostAsync(database, wrongStore, ("card:" + card.Digits, -1_000), ("store:store-2", 1_000), Currency.Eur);
        var twice = await AddSettlementAsync(database, card, 500, Currency.Eur, "completed");
        await PostAsync(database, twice, ("card:" + card.Digits, -500), ("store:" + StoreId, 500), Currency.Eur);
        await PostAsync(database, twice, ("card:" + card.Digits, -500), ("store:" + StoreId, 500), Currency.Eur);
        await SetPurseAsync(database, card, "EUR", 8_000);

        var report = await new Ledger(database).ReconcileAsync(CancellationToken.None);

        Assert.Equal([wrongStore, twice], report.Differences.Select(d => d.Subject).Order(StringComparer.Ordinal));
        Assert.All(report.Differences, d => Assert.Equal(LedgerDifference.SettlementPostingMismatch, d.Kind));
        Assert.Contains("found 2", Assert.Single(report.Differences, d => d.Subject == twice).Detail, StringComparison.Ordinal);
    }

    [SuiteFact]
    public async Task ReconcileAsync_VoidedSettlementWithPosting_SettlementPostingMismatch()
    {
        var database = await RegistryAsync();
        var card = await AddCardAsync(database, 1);
        await LoadAsync(database, card, 10_000, Currency.Eur);
        var voided = await AddSettlementAsync(database, card, 2_500, Currency.Eur, "voided");
        await PostAsync(database, voided, ("card:" + card.Digits, -2_500), ("store:" + StoreId, 2_500), Currency.Eur);
        await SetPurseAsync(database, card, "EUR", 7_500);
        await AddSettlementAsync(database, card, 100, Currency.Eur, "voided");

        var report = await new Ledger(database).ReconcileAsync(CancellationToken.None);

        var mismatch = Assert.Single(report.Differences);
        Assert.Equal((LedgerDifference.SettlementPostingMismatch, voided), (mismatch.Kind, mismatch.Subject));
        Assert.Equal("no journal lines", mismatch.Expected);
        Assert.Equal($"[card:{card.Masked} -25.00 EUR, store:{StoreId} +25.00 EUR]", mismatch.Actual);
    }

    [SuiteFact]
    public async Task ReconcileAsync_ReversingAndReversedPostedAsTheirStatesSay_IsClean()
    {
        var database = await RegistryAsync();
        var card = await AddCardAsync(database, 1);
        await LoadAsync(database, card, 10_000, Currency.Eur);
        // reversing: the debit was found on the card and is owed back to it.
        var reversing = await AddSettlementAsync(database, card, 1_000, Currency.Eur, "reversing");
        await PostAsync(database, reversing, ("card:" + card.Digits, -1_000), ("reversals", 1_000), Currency.Eur);
        // reversed: found, then credited back, both under the settlement's id.
        var reversed = await AddSettlementAsync(database, card, 400, Currency.Eur, "reversed");
        await PostAsync(database, reversed, ("card:" + card.Digits, -400), ("reversals", 400), Currency.Eur);
        await PostAsync(database, reversed, ("reversals", -400), ("card:" + card.Digits, 400), Currency.Eur);
        // expired, on another card: a card has one unresolved settlement at a time.
        await AddSettlementAsync(database, await AddCardAsync(database, 2), 300, Currency.Eur, "expired");
        await SetPurseAsync(database, card, "EUR", 9_000);

        var report = await new Ledger(database).ReconcileAsync(CancellationToken.None);

        Assert.True(report.IsClean, report.ToText());
        Assert.Equal(new LedgerCurrencyTotals("EUR", 10_000, 9_000, 0, 1_000), Assert.Single(report.Currencies));
    }

    [SuiteFact]
    public async Task ReconcileAsync_ReversedWithoutCreditBackOrExpiredWithPosting_SettlementPostingMismatch()
    {
        var database = await RegistryAsync();
        var card = await AddCardAsync(database, 1);
        await LoadAsync(database, card, 10_000, Currency.Eur);
        var reversed = await AddSettlementAsync(database, card, 400, Currency.Eur, "reversed");
        await PostAsync(database, reversed, ("card:" + card.Digits, -400), ("reversals", 400), Currency.Eur);
        var expired = await AddSettlementAsync(database, card, 300, Currency.Eur, "expired");
        await PostAsync(database, expired, ("card:" + card.Digits, -300), ("reversals", 300), Currency.Eur);
        await SetPurseAsync(database, card, "EUR", 9_300);

        var report = await new Ledger(database).ReconcileAsync(CancellationToken.None);

        Assert.Equal([reversed, expired], report.Differences.Select(d => d.Subject).Order(StringComparer.Ordinal));
        Assert.All(report.Differences, d => Assert.Equal(LedgerDifference.SettlementPostingMismatch, d.Kind));
        var missingCredit = Assert.Single(report.Differences, d => d.Subject == reversed);
        Assert.Equal($"[card:{card.Masked} -4.00 EUR, reversals +4.00 EUR] [reversals -4.00 EUR, card:{card.Masked} +4.00 EUR]", missingCredit.Expected);
    }

    [SuiteFact]
    public async Task ReconcileAsync_AuthorizedSettlement_NotChecked()
    {
        var database = await RegistryAsync();
        var card = await AddCardAsync(database, 1);
        await LoadAsync(database, card, 10_000, Currency.Eur);
        await AddSettlementAsync(database, card, 2_500, Currency.Eur, "authorized");

        var report = await new Ledger(database).ReconcileAsync(CancellationToken.None);

        Assert.True(report.IsClean, report.ToText());
    }

    [SuiteFact]
    public async Task ReconcileAsync_TwoCurrencies_KeptApart()
    {
        var database = await RegistryAsync();
        var card = await AddCardAsync(database, 1);
        await LoadAsync(database, card, 10_000, Currency.Eur);
        await LoadAsync(database, card, 5_000, Currency.Usd);
        await LoadAsync(database, card, 900, Currency.Jpy);
        await SettleAsync(database, card, 1_000, Currency.Usd);

        var clean = await new Ledger(database).ReconcileAsync(CancellationToken.None);

        Assert.True(clean.IsClean, clean.ToText());
        Assert.Equal(
            [new LedgerCurrencyTotals("EUR", 10_000, 10_000, 0, 0), new LedgerCurrencyTotals("JPY", 900, 900, 0, 0), new LedgerCurrencyTotals("USD", 5_000, 4_000, 1_000, 0)],
            clean.Currencies);
        Assert.Matches(@"JPY\s+900\s+900\s+0\s+0\s+0\s+yes", clean.ToText());

        // An entry that balances only across currencies (+1.00 EUR, -1.00 USD) balances in neither.
        await PostAsync(database, "cross", ("card:" + card.Digits, 100), ("issued", -100), Currency.Eur);
        await using (var connection = await database.OpenAsync())
        {
            await connection.ExecuteAsync("UPDATE journal SET currency = 'USD' WHERE reference = 'cross' AND account = 'issued'");
        }

        await SetPurseAsync(database, card, "EUR", 10_100);
        await SetPurseAsync(database, card, "USD", 4_000);

        var dirty = await new Ledger(database).ReconcileAsync(CancellationToken.None);

        var unbalanced = dirty.Differences.Where(d => d.Kind == LedgerDifference.EntryUnbalanced).ToArray();
        Assert.Equal(["-1.00 USD", "1.00 EUR"], unbalanced.Select(d => d.Actual).Order(StringComparer.Ordinal));
        Assert.Single(unbalanced.Select(d => d.Subject).Distinct());
        var books = dirty.Differences.Where(d => d.Kind == LedgerDifference.LedgerNotBalanced).OrderBy(d => d.Subject, StringComparer.Ordinal).ToArray();
        Assert.Equal(["EUR", "USD"], books.Select(d => d.Subject));
        Assert.Equal(new LedgerCurrencyTotals("EUR", 10_000, 10_100, 0, 0), dirty.Currencies[0]);
        Assert.Equal(new LedgerCurrencyTotals("USD", 5_100, 4_000, 1_000, 0), dirty.Currencies[2]);
        Assert.DoesNotContain(dirty.Differences, d => d.Kind == LedgerDifference.CardShadowMismatch);
    }

    [SuiteFact]
    public async Task ReconcileAsync_AmountsBeyondThirtyTwoBits_SumExactly()
    {
        const long Amount = (long)int.MaxValue * 3;
        var database = await RegistryAsync();
        var first = await AddCardAsync(database, 1);
        var second = await AddCardAsync(database, 2);
        await LoadAsync(database, first, Amount, Currency.Eur);
        await LoadAsync(database, second, Amount + 1, Currency.Eur);
        await SettleAsync(database, second, Amount, Currency.Eur);

        var report = await new Ledger(database).ReconcileAsync(CancellationToken.None);

        Assert.True(report.IsClean, report.ToText());
        Assert.Equal(new LedgerCurrencyTotals("EUR", (2 * Amount) + 1, Amount + 1, Amount, 0), Assert.Single(report.Currencies));

        // A shadow off by one minor unit at this size is still found, and exactly.
        await SetPurseAsync(database, first, "EUR", Amount - 1);
        var mismatch = Assert.Single((await new Ledger(database).ReconcileAsync(CancellationToken.None)).Differences);
        Assert.Equal(("64424509.40 EUR", "64424509.41 EUR"), (mismatch.Expected, mismatch.Actual));
    }

    [SuiteFact]
    public async Task RunAsync_CleanThenDirty_ExitsZeroThenOneAndPrintsReport()
    {
        var database = await RegistryAsync();
        var card = await AddCardAsync(database, 1);
        await LoadAsync(database, card, 10_000, Currency.Eur);
        await SettleAsync(database, card, 2_500, Currency.Eur);
        await using var services = new ServiceCollection().AddSingleton(database).AddSingleton<Ledger>().BuildServiceProvider();

        var cleanOutput = new StringWriter();
        var clean = await ReconcileCommand.RunAsync(services, cleanOutput, CancellationToken.None);

        Assert.Equal(ReconcileCommand.ExitClean, clean);
        Assert.Equal(0, clean);
        Assert.StartsWith("Ledger: clean.", cleanOutput.ToString(), StringComparison.Ordinal);
        Assert.Contains("EUR", cleanOutput.ToString(), StringComparison.Ordinal);

        await SetPurseAsync(database, card, "EUR", 1);
        var dirtyOutput = new StringWriter();
        var dirty = await ReconcileCommand.RunAsync(services, dirtyOutput, CancellationToken.None);

        Assert.Equal(ReconcileCommand.ExitDifferences, dirty);
        Assert.Equal(1, dirty);
        var lines = dirtyOutput.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal("Ledger: 1 difference.", lines[0]);
        Assert.StartsWith($"{LedgerDifference.CardShadowMismatch} {card.Masked}: expected 0.01 EUR, actual 75.00 EUR", lines[^1], StringComparison.Ordinal);
        Assert.DoesNotContain(card.Digits, dirtyOutput.ToString(), StringComparison.Ordinal);
    }

    [SuiteFact]
    public async Task SettlementTransitions_FromEveryState_MoveOnlyFromTheirOwnStatesAndPostTheirEntry()
    {
        var database = await RegistryAsync();
        var cards = 0;
        foreach (var transition in SettlementStates.Machine.Transitions)
        {
            foreach (var state in Enum.GetValues<SettlementState>())
            {
                // A card of its own per settlement: a card has one unresolved settlement at a time.
                var card = await AddCardAsync(database, ++cards);
                var id = await AddSettlementAsync(database, card, 700, Currency.Eur, SettlementStates.Machine.Text(state));
                var allowed = transition.AllowedFrom(state);

                bool moved;
                await using (var write = await database.BeginWriteAsync())
                {
                    moved = await SettlementStates.Machine.RunAsync(write.Connection, write.Inner, transition, new Movement(id, card.Digits, StoreId, new Money(700, Currency.Eur)), s_at);
                    await write.CommitAsync();
                }

                var because = $"{transition} on a {state} settlement";
                Assert.True(allowed == moved, because);
                await using var connection = await database.OpenAsync();
                var row = await SettlementRow.LoadAsync(connection, Guid.Parse(id));
                Assert.True(row!.State == (allowed ? transition.To : state), because);
                var lines = (await connection.QueryAsync<(string Account, long AmountMinor, string Currency)>(
                    "SELECT account, amount_minor, currency FROM journal WHERE reference = @id ORDER BY amount_minor", new { id })).ToArray();
                (string, long, string)[] expected = allowed && transition.Posts is { } posting
                    ? [(posting.Between(card.Digits, StoreId).From.Text, -700, "EUR"), (posting.Between(card.Digits, StoreId).To.Text, 700, "EUR")]
                    : [];
                Assert.True(expected.SequenceEqual(lines), because);
            }
        }
    }

    [SuiteFact]
    public async Task VoidAsync_CompletedSettlement_IsRefusedAndWritesNothing()
    {
        var database = await RegistryAsync();
        var card = await AddCardAsync(database, 1);
        var id = await AddSettlementAsync(database, card, 2_500, Currency.Eur, "authorized");
        var movement = new Movement(id, card.Digits, StoreId, new Money(2_500, Currency.Eur));
        await using (var write = await database.BeginWriteAsync())
        {
            Assert.True(await SettlementStates.Machine.RunAsync(write.Connection, write.Inner, SettlementStates.Complete, movement, s_at));
            await write.CommitAsync();
        }

        await using (var write = await database.BeginWriteAsync())
        {
            Assert.False(await SettlementStates.Machine.RunAsync(write.Connection, write.Inner, SettlementStates.Void, movement, s_at, set: "resolved_by = 'later_session'"));
            await write.CommitAsync();
        }

        await using var connection = await database.OpenAsync();
        Assert.Equal(("completed", null), await connection.QuerySingleAsync<(string, string?)>("SELECT state, resolved_by FROM settlements WHERE settlement_id = @id", new { id }));
        Assert.Equal(
            [("card:" + card.Digits, -2_500L), ("store:" + StoreId, 2_500L)],
            await connection.QueryAsync<(string, long)>("SELECT account, amount_minor FROM journal ORDER BY amount_minor"));
    }

    [SuiteFact]
    public async Task CardLoadTransitions_PostOnce_IssuedToCard_ThenNeitherPostNorFail()
    {
        var database = await RegistryAsync();
        var card = await AddCardAsync(database, 1);
        var loadId = Guid.CreateVersion7(s_at).ToString();
        await using (var connection = await database.OpenAsync())
        {
            await connection.ExecuteAsync(
                """
                INSERT INTO card_loads (load_id, card_id, amount_minor, currency, expected_counter, session_counter, state, created_at)
                VALUES (@loadId, @cardId, 4000, 'EUR', 0, 1, 'pending', '2026-01-01T00:00:00.000Z')
                """,
                new { loadId, cardId = card.Digits });
        }

        var load = new Movement(loadId, card.Digits, null, new Money(4_000, Currency.Eur));
        bool[] runs = [];
        foreach (var transition in new[] { CardLoadStates.Post, CardLoadStates.Post, CardLoadStates.Fail })
        {
            await using var write = await database.BeginWriteAsync();
            runs = [.. runs, await CardLoadStates.Machine.RunAsync(write.Connection, write.Inner, transition, load, s_at)];
            await write.CommitAsync();
        }

        Assert.Equal([true, false, false], runs);
        await SetPurseAsync(database, card, "EUR", 4_000);
        var report = await new Ledger(database).ReconcileAsync(CancellationToken.None);
        Assert.True(report.IsClean, report.ToText());
        Assert.Equal(new LedgerCurrencyTotals("EUR", 4_000, 4_000, 0, 0), Assert.Single(report.Currencies));
        await using var reading = await database.OpenAsync();
        Assert.Equal("loaded", await reading.ExecuteScalarAsync<string>("SELECT state FROM card_loads WHERE load_id = @loadId", new { loadId }));
    }

    private async Task<Database> RegistryAsync()
    {
        var database = new Database(Dialect, await CreateEmptyAsync());
        await database.MigrateAsync();
        await AddStoreAsync(database, StoreId);
        return database;
    }

    private static async Task AddStoreAsync(Database database, string storeId)
    {
        await using var connection = await database.OpenAsync();
        await connection.ExecuteAsync(
            "INSERT INTO stores (store_id, name, created_at) VALUES (@storeId, @storeId, '2026-01-01T00:00:00.000Z')", new { storeId });
    }

    private static async Task<CardId> AddCardAsync(Database database, int number)
    {
        var card = CardId.FromSerial(940_000_000_000_000 + (ulong)number);
        await using var connection = await database.OpenAsync();
        await connection.ExecuteAsync(
            "INSERT INTO cards (card_id, key_version, status, counter, issued_at) VALUES (@id, 1, 'active', 0, '2026-01-01T00:00:00.000Z')", new { id = card.Digits });
        return card;
    }

    private static async Task SetPurseAsync(Database database, CardId card, string currency, long balance)
    {
        await using var connection = await database.OpenAsync();
        await connection.ExecuteAsync(
            """
            INSERT INTO card_purses (card_id, currency, balance_minor) VALUES (@id, @currency, @balance)
            ON CONFLICT (card_id, currency) DO UPDATE SET balance_minor = excluded.balance_minor
            """,
            new { id = card.Digits, currency, balance });
    }

    private static async Task<long> PurseAsync(Database database, CardId card, Currency currency)
    {
        await using var connection = await database.OpenAsync();
        return await connection.ExecuteScalarAsync<long?>(
            "SELECT balance_minor FROM card_purses WHERE card_id = @id AND currency = @currency", new { id = card.Digits, currency = currency.Code }) ?? 0;
    }

    /// <summary>A balanced entry, given as its two lines (stored account text and signed amount).</summary>
    private static async Task PostAsync(Database database, string reference, (string Account, long AmountMinor) debit, (string Account, long AmountMinor) credit, Currency currency)
    {
        Assert.Equal(0, debit.AmountMinor + credit.AmountMinor);
        var (from, to) = debit.AmountMinor < 0 ? (debit, credit) : (credit, debit);
        await using var write = await database.BeginWriteAsync();
        await Journal.PostAsync(write.Connection, write.Inner, reference, s_at, new JournalEntry(Account.Parse(from.Account), Account.Parse(to.Account), new Money(to.AmountMinor, currency)));
        await write.CommitAsync();
    }

    /// <summary>As the issuing station loads a card: issued to the card, and the card's purse shadow follows.</summary>
    private static async Task LoadAsync(Database database, CardId card, long amount, Currency currency)
    {
        await PostAsync(database, Guid.CreateVersion7(s_at).ToString(), ("issued", -amount), ("card:" + card.Digits, amount), currency);
        await SetPurseAsync(database, card, currency.Code, await PurseAsync(database, card, currency) + amount);
    }

    /// <summary>As a completion does: a completed settlement, card to store, and the purse shadow follows.</summary>
    private async Task SettleAsync(Database database, CardId card, long amount, Currency currency)
    {
        var settlement = await AddSettlementAsync(database, card, amount, currency, "completed");
        await PostAsync(database, settlement, ("card:" + card.Digits, -amount), ("store:" + StoreId, amount), currency);
        await SetPurseAsync(database, card, currency.Code, await PurseAsync(database, card, currency) - amount);
    }

    /// <summary>A settlement row with only the columns of 0001_registry.sql; later migrations add columns with defaults.</summary>
    private async Task<string> AddSettlementAsync(Database database, CardId card, long amount, Currency currency, string state)
    {
        var id = Guid.CreateVersion7(s_at.AddSeconds(++_orders)).ToString();
        await using var connection = await database.OpenAsync();
        await connection.ExecuteAsync(
            """
            INSERT INTO settlements (settlement_id, issuer, order_no, store_id, bill, bill_digest, profile, amount_minor, currency,
                                     card_id, card_greeting, expected_counter, state, created_at, completed_at)
            VALUES (@id, @storeId, @orderNo, @storeId, 'bill', @id, 'signed', @amount, @currency,
                    @cardId, @greeting, 0, @state, '2026-01-01T00:00:00.000Z', @completedAt)
            """,
            new
            {
                id,
                storeId = StoreId,
                orderNo = $"order-{_orders}",
                amount,
                currency = currency.Code,
                cardId = card.Digits,
                greeting = new byte[] { 1, 2, 3 },
                state,
                completedAt = state == "completed" ? "2026-01-01T00:00:01.000Z" : null,
            });
        return id;
    }
}

/// <summary>The ledger check on SQLite, a file in a temporary directory.</summary>
public sealed class LedgerOnSqliteTest : LedgerTest
{
    private readonly string _directory = Directory.CreateTempSubdirectory("openpurse-ledger-").FullName;

    private protected override SqlDialect Dialect => SqlDialect.Sqlite;

    public override Task DisposeAsync()
    {
        SqliteConnection.ClearAllPools();
        Directory.Delete(_directory, recursive: true);
        return Task.CompletedTask;
    }

    private protected override Task<string> CreateEmptyAsync() =>
        Task.FromResult(new SqliteConnectionStringBuilder { DataSource = Path.Combine(_directory, $"{Guid.NewGuid():N}.db") }.ToString());
}

/// <summary>The ledger check on PostgreSQL: one private cluster for the class, a fresh database per test.</summary>
[UsesComponents(Components.PostgreSql)]
public sealed class LedgerOnPostgreSqlTest(SharedPostgresCluster postgres) : LedgerTest, IClassFixture<SharedPostgresCluster>
{
    private readonly List<PostgresDatabase> _databases = [];

    private protected override SqlDialect Dialect => SqlDialect.PostgreSql;

    public override async Task DisposeAsync()
    {
        foreach (var database in _databases)
        {
            await database.DisposeAsync();
        }
    }

    [IntegrationFact(Components.PostgreSql)]
    public async Task ReconcileAsync_OnPostgreSql_ReadsInOneRepeatableReadReadOnlyTransaction()
    {
        var database = new Database(SqlDialect.PostgreSql, await CreateEmptyAsync());
        await database.MigrateAsync();
        await using var connection = await database.OpenAsync();
        await using var transaction = await database.BeginReadAsync(connection);

        Assert.Equal("repeatable read", await connection.ExecuteScalarAsync<string>("SHOW transaction_isolation", transaction: transaction));
        Assert.Equal("on", await connection.ExecuteScalarAsync<string>("SHOW transaction_read_only", transaction: transaction));
    }

    private protected override async Task<string> CreateEmptyAsync()
    {
        var database = await postgres.CreateDatabaseAsync();
        _databases.Add(database);
        return database.ConnectionString;
    }
}
