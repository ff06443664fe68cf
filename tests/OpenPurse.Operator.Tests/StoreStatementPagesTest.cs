using OpenPurse.Operator.Settlement;
using OpenPurse.Protocol;
using OpenPurse.Protocol.Messages;

namespace OpenPurse.Operator.Tests;

/// <summary>
/// A store's statement comes in signed pages, each asked for with the last settlement of the page
/// before. The operator reads them to the end and compares every line; a store whose pages are not
/// the statement's (out of order, another page than the one asked for, empty yet "more", endless,
/// too long to read) is listed as not compared, and the reconciliation still ends.
/// </summary>
public sealed class StoreStatementPagesTest
{
    private static readonly Money s_amount = new(1_250, Currency.Eur);

    [Fact]
    public async Task A_statement_of_three_pages_is_read_to_its_end_and_each_line_compared()
    {
        await using var store = await FakeStoreEndpoint.StartAsync();
        await using var kit = await OperatorKit.StartAsync(notifyUrl: store.CompletionsUrl, sweepInterval: TimeSpan.Zero);
        // 2 full pages and 20 lines: payments the operator never completed, each one a difference.
        var lines = Lines(2 * StoreStatement.PageLinesMax + 20);
        store.Statement = (storeId, after) => Page(kit, storeId, lines, after);

        var (differences, compared) = await kit.Service<StoreStatements>().CompareAsync(CancellationToken.None);

        Assert.Equal(1, compared);
        Assert.All(differences, difference => Assert.Equal(StoreStatements.Unknown, difference.Kind));
        Assert.Equal(lines.Select(line => line.SettlementId.ToString()), differences.Select(difference => difference.Subject));
        Assert.Equal(
            [null, lines[StoreStatement.PageLinesMax - 1].SettlementId, lines[(2 * StoreStatement.PageLinesMax) - 1].SettlementId],
            store.StatementQueries.Select(query => query.After));
        store.Statement = (storeId, after) => Page(kit, storeId, [], after);
    }

    public static TheoryData<string, string> Hostile => new()
    {
        { "each page the first one's lines", "not in order" },
        { "another page than asked for", "another page than the one after" },
        { "empty, yet more", "holds no payment, yet says more follow" },
        { "endless", $"runs past {StoreStatements.UnknownPaymentsMax} payments" },
        { "too long to read", "ConfigurationLimitExceeded" },
    };

    [Theory]
    [MemberData(nameof(Hostile))]
    public async Task A_store_whose_pages_are_not_its_statement_is_not_compared_and_the_reconciliation_ends(string pages, string reason)
    {
        await using var store = await FakeStoreEndpoint.StartAsync();
        await using var kit = await OperatorKit.StartAsync(notifyUrl: store.CompletionsUrl, sweepInterval: TimeSpan.Zero);
        var lines = Lines(3 * StoreStatement.PageLinesMax);
        store.Statement = pages switch
        {
            "each page the first one's lines" => (storeId, after) => Sign(kit, new StoreStatement(storeId, DateTimeOffset.UtcNow, [.. lines.Take(StoreStatement.PageLinesMax)], after, More: true)),
            "another page than asked for" => (storeId, after) => after is null ? Page(kit, storeId, lines, null) : Page(kit, storeId, lines, lines[0].SettlementId),
            "empty, yet more" => (storeId, after) => Sign(kit, new StoreStatement(storeId, DateTimeOffset.UtcNow, [], after, More: true)),
            "endless" => (storeId, after) => Sign(kit, new StoreStatement(storeId, DateTimeOffset.UtcNow, Lines(StoreStatement.PageLinesMax, after), after, More: true)),
            "too long to read" => (_, _) => new string('A', StoreNotifier.ResponseLengthMax),
            _ => throw new ArgumentOutOfRangeException(nameof(pages)),
        };

        var (differences, compared) = await kit.Service<StoreStatements>().CompareAsync(CancellationToken.None);

        Assert.Equal(0, compared);
        var unavailable = Assert.Single(differences);
        Assert.Equal(StoreStatements.Unavailable, unavailable.Kind);
        Assert.Contains(reason, unavailable.Detail, StringComparison.Ordinal);
        // Endless: the operator stopped once the store had listed every payment it may.
        Assert.True(store.StatementQueries.Count <= ((StoreStatements.UnknownPaymentsMax / StoreStatement.PageLinesMax) + 2), $"{store.StatementQueries.Count} pages asked for");
        store.Statement = (storeId, after) => Page(kit, storeId, [], after);
    }

    /// <summary>The page of <paramref name="lines"/> (in a statement's order) after <paramref name="after"/>, as a store makes it.</summary>
    private static string Page(OperatorKit kit, string storeId, IReadOnlyList<StatementLine> lines, Guid? after)
    {
        var rest = lines.SkipWhile(line => !StoreStatement.Follows(after, line.SettlementId)).ToList();
        return Sign(kit, new StoreStatement(storeId, DateTimeOffset.UtcNow, rest.Take(StoreStatement.PageLinesMax).ToList(), after, More: rest.Count > StoreStatement.PageLinesMax));
    }

    private static string Sign(OperatorKit kit, StoreStatement page) => SignedMessage.Sign(kit.StoreKey, page, MessageTypes.Statement);

    /// <summary>
    /// <paramref name="count"/> payments of settlements after <paramref name="after"/> (by default
    /// the start), in a statement's order: their ids count up in their last 12 hex digits.
    /// </summary>
    private static List<StatementLine> Lines(int count, Guid? after = null)
    {
        var first = after is { } last ? long.Parse(last.ToString("D")[^12..], System.Globalization.NumberStyles.HexNumber, System.Globalization.CultureInfo.InvariantCulture) + 1 : 1;
        return [.. Enumerable.Range(0, count).Select(i => new StatementLine(new Guid($"00000000-0000-4000-8000-{first + i:x12}"), $"shop-{first + i:D6}", s_amount))];
    }
}
