using OpenPurse.Operator.Issuance;
using OpenPurse.Operator.Registry;
using OpenPurse.Operator.Settlement;
using OpenPurse.Protocol;

namespace OpenPurse.Operator.Tests;

/// <summary>
/// The one home of money movements, without a database: journal accounts and their stored text,
/// entries that cannot be built unbalanced, and the transition tables of settlements and loads.
/// The transitions run against each engine in <see cref="LedgerTest"/>.
/// </summary>
public sealed class MovementsTest
{
    private static readonly CardId s_card = CardId.FromSerial(940_000_000_000_001);

    [Theory]
    [InlineData("issued", nameof(AccountKind.Issued), null)]
    [InlineData("reversals", nameof(AccountKind.Reversals), null)]
    [InlineData("payouts", nameof(AccountKind.Payouts), null)]
    [InlineData("card:9400000000000016", nameof(AccountKind.Card), "9400000000000016")]
    [InlineData("store:store-1", nameof(AccountKind.Store), "store-1")]
    [InlineData("store:Mall_2", nameof(AccountKind.Store), "Mall_2")]
    public void Account_StoredText_RoundTrips(string text, string kind, string? owner)
    {
        var account = Account.Parse(text);

        Assert.Equal((kind, owner), (account.Kind.ToString(), account.Owner));
        Assert.Equal(text, account.Text);
        Assert.Equal(account, Account.Parse(account.Text));
    }

    [Theory]
    [InlineData("")]
    [InlineData("Issued")]
    [InlineData(" issued")]
    [InlineData("reversals ")]
    [InlineData("issued:x")]
    [InlineData("card:")]
    [InlineData("card:940000000000001")]
    [InlineData("card:94000000000000160")]
    [InlineData("card:940000000000001a")]
    [InlineData("CARD:9400000000000016")]
    [InlineData("store:")]
    [InlineData("store:a b")]
    [InlineData("store:a:b")]
    [InlineData("clearing:visa")]
    [InlineData("payouts ")]
    [InlineData("payouts:DE89370400440532013000")]
    public void Account_UnknownText_IsRefused(string text)
    {
        Assert.False(Account.TryParse(text, out _));
        Assert.Throws<FormatException>(() => Account.Parse(text));
    }

    [Fact]
    public void Account_TypedConstructors_WriteTheStoredTextAndRefuseOwnersOfTheWrongForm()
    {
        Assert.Equal("card:" + s_card.Digits, Account.Card(s_card).Text);
        Assert.Equal(Account.Card(s_card), Account.Card(s_card.Digits));
        Assert.Equal("store:store-1", Account.Store("store-1").Text);
        Assert.Equal(("issued", "reversals"), (Account.Issued.Text, Account.Reversals.Text));
        Assert.Throws<ArgumentException>(() => Account.Card("1234"));
        Assert.Throws<ArgumentException>(() => Account.Store(""));
        Assert.Throws<ArgumentException>(() => Account.Store("store:1"));
    }

    [Fact]
    public void Account_Shown_MasksTheCardNumber()
    {
        Assert.Equal("card:" + s_card.Masked, Account.Card(s_card).ToString());
        Assert.DoesNotContain(s_card.Digits, Account.Card(s_card).ToString(), StringComparison.Ordinal);
        Assert.Equal("card:" + s_card.Masked, Account.Shown("card:" + s_card.Digits));
        // Text that is no account, but holds digits after the card prefix, is masked too.
        Assert.DoesNotContain("12345678901234567", Account.Shown("card:12345678901234567"), StringComparison.Ordinal);
        Assert.Equal("store:store-1", Account.Shown("store:store-1"));
    }

    [Fact]
    public void JournalEntry_NegativeAmount_IsRefused()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new JournalEntry(Account.Card(s_card), Account.Store("store-1"), new Money(-1, Currency.Eur)));
    }

    [Fact]
    public void JournalEntry_WithoutCurrencyOrToItself_IsRefused()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new JournalEntry(Account.Issued, Account.Card(s_card), default));
        Assert.Throws<ArgumentException>(() => new JournalEntry(Account.Reversals, Account.Reversals, new Money(1, Currency.Eur)));
    }

    [Fact]
    public void JournalEntry_MovesOneAmountFromOneAccountToAnother()
    {
        var entry = new JournalEntry(Account.Issued, Account.Card(s_card), new Money(1_000, Currency.Eur));

        Assert.Equal((Account.Issued, Account.Card(s_card), new Money(1_000, Currency.Eur)), (entry.From, entry.To, entry.Amount));
    }

    [Fact]
    public void SettlementTransitions_AreTheDocumentedTable()
    {
        var table = SettlementStates.Machine.Transitions.Select(t => (t.Name, string.Join(" ", t.From.Select(s => s.ToText())), t.To.ToText(), Posting(t.Posts)));

        Assert.Equal(
            [
                ("complete", "authorized", "completed", "Card → Store"),
                ("return blocked", "authorized", "reversing", "Card → Reversals"),
                ("expire", "authorized", "expired", "nothing"),
                ("void", "authorized expired", "voided", "nothing"),
                ("owe back", "expired", "reversing", "Card → Reversals"),
                ("reverse", "reversing", "reversed", "Reversals → Card"),
                ("dispute", "completed", "disputed", "nothing"),
                ("return", "disputed", "reversing", "Store → Reversals"),
                ("tell again", "disputed", "completed", "nothing"),
            ],
            table);
    }

    [Fact]
    public void SettlementTransitions_None_LeadsFromAFinalState()
    {
        SettlementState[] final = [SettlementState.Voided, SettlementState.Reversed];

        Assert.All(SettlementStates.Machine.Transitions, t => Assert.DoesNotContain(t.From, final.Contains));
        Assert.False(SettlementStates.Void.AllowedFrom(SettlementState.Completed));
    }

    [Fact]
    public void PostingsTo_EachState_AreTheEntriesOfEveryWayToIt_ShortestFirst()
    {
        string Ways(SettlementState state) =>
            string.Join(" | ", SettlementStates.PostingsTo(state).Select(way => way.Count == 0 ? "nothing" : string.Join(", ", way.Select(p => Posting(p)))));

        Assert.Equal("nothing", Ways(SettlementState.Authorized));
        Assert.Equal("Card → Store", Ways(SettlementState.Completed));
        Assert.Equal("Card → Store", Ways(SettlementState.Disputed));
        Assert.Equal("nothing", Ways(SettlementState.Voided));
        Assert.Equal("nothing", Ways(SettlementState.Expired));
        Assert.Equal("Card → Reversals | Card → Store, Store → Reversals", Ways(SettlementState.Reversing));
        Assert.Equal("Card → Reversals, Reversals → Card | Card → Store, Store → Reversals, Reversals → Card", Ways(SettlementState.Reversed));
        Assert.DoesNotContain(SettlementState.Authorized, SettlementStates.Posted);
    }

    [Fact]
    public void SettlementStates_StoredText_RoundTripsAndUnknownTextIsRefused()
    {
        Assert.Equal(
            ["authorized", "completed", "disputed", "voided", "expired", "reversing", "reversed"],
            Enum.GetValues<SettlementState>().Select(s => s.ToText()));
        Assert.All(Enum.GetValues<SettlementState>(), s => Assert.Equal(s, SettlementStates.Parse(s.ToText())));
        Assert.Throws<FormatException>(() => SettlementStates.Parse("settled"));
        Assert.Throws<FormatException>(() => SettlementStates.Parse("Completed"));
    }

    [Fact]
    public void In_InlinesTheStoredText_AsThePartialIndexesSayIt()
    {
        // The registry's partial indexes (migrations) match only these very literals.
        Assert.Equal("= 'authorized'", SettlementStates.In(SettlementState.Authorized));
        Assert.Equal("IN ('authorized', 'expired', 'reversing')", SettlementStates.In(SettlementStates.Unresolved));
        Assert.Equal("IN ('completed', 'voided', 'expired', 'reversing', 'reversed')", SettlementStates.In(SettlementStates.Told));
        Assert.Equal("= 'pending'", CardLoadStates.Machine.In(CardLoadState.Pending));
        Assert.Throws<ArgumentException>(() => SettlementStates.In([]));
    }

    [Theory]
    [InlineData("settlements_one_open_per_card ON settlements (card_id) WHERE state ", "unresolved")]
    [InlineData("settlements_by_deadline ON settlements (deadline) WHERE state ", "expiring")]
    [InlineData("store_given_up_at IS NULL AND state ", "told")]
    [InlineData("settlements_disputed ON settlements (created_at) WHERE state ", "disputed")]
    [InlineData("card_loads_one_pending_per_card ON card_loads (card_id) WHERE state ", "pending")]
    public void In_WritesThePredicatesOfThePartialIndexesTheQueriesUse(string index, string states)
    {
        var predicate = states switch
        {
            "unresolved" => SettlementStates.In(SettlementStates.Unresolved),
            "expiring" => SettlementStates.In(SettlementStates.Expire.From),
            "told" => SettlementStates.In(SettlementStates.Told),
            "disputed" => SettlementStates.In(SettlementState.Disputed),
            _ => CardLoadStates.Machine.In(CardLoadState.Pending),
        };

        Assert.All(new[] { SqlDialect.Sqlite, SqlDialect.PostgreSql }, dialect =>
        {
            var migrations = string.Join("\n", Database.Migrations(dialect).Select(m => m.Sql));
            Assert.Contains(index, migrations, StringComparison.Ordinal);
            // The index's latest definition is the one in force.
            var definition = migrations[migrations.LastIndexOf(index, StringComparison.Ordinal)..];
            Assert.StartsWith(index + predicate, definition, StringComparison.Ordinal);
        });
    }

    [Fact]
    public void CardLoadTransitions_PostIssuedToCardFromPendingOnly()
    {
        Assert.Equal(
            [("post", CardLoadState.Pending, CardLoadState.Loaded, "Issued → Card"), ("fail", CardLoadState.Pending, CardLoadState.Failed, "nothing")],
            CardLoadStates.Machine.Transitions.Select(t => (t.Name, Assert.Single(t.From), t.To, Posting(t.Posts))));
        Assert.Equal(["pending", "loaded", "failed"], Enum.GetValues<CardLoadState>().Select(CardLoadStates.Machine.Text));
        Assert.Throws<FormatException>(() => CardLoadStates.Machine.Parse("posted"));
    }

    [Fact]
    public void CardTransitions_BlockAndUnblock_OneMachine_MoveNothing()
    {
        Assert.Equal(
            [("block", CardState.Active, CardState.Blocked, "nothing"), ("unblock", CardState.Blocked, CardState.Active, "nothing")],
            CardStates.Machine.Transitions.Select(t => (t.Name, Assert.Single(t.From), t.To, Posting(t.Posts))));
        // The texts the cards table's CHECK (status IN ('active', 'blocked')) allows.
        Assert.Equal(["active", "blocked"], Enum.GetValues<CardState>().Select(CardStates.Machine.Text));
        Assert.Throws<FormatException>(() => CardStates.Machine.Parse("lost"));
    }

    private static string Posting(Posting? posting) => posting is { } p ? $"{p.From} → {p.To}" : "nothing";
}
