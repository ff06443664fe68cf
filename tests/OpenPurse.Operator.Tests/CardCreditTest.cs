using System.Net;
using System.Net.Http.Json;
using OpenPurse.Operator.Credits;
using OpenPurse.Operator.Registry;
using OpenPurse.Protocol;
using OpenPurse.Protocol.Apdu;
using OpenPurse.Protocol.Jose;
using OpenPurse.Protocol.Messages;
using OpenPurse.Testing;

namespace OpenPurse.Operator.Tests;

/// <summary>
/// Value owed to a card (a refund, a transfer, points) over real HTTP: recorded with its entry to
/// the pending account, taken at the card's next sync as one CREDIT with SIG5, exactly once — an
/// answer that is lost is read from the card's next greeting, a CREDIT that never ran is made
/// again — and the books reconcile at every step. Every test runs on each registry engine.
/// </summary>
public abstract class CardCreditTest
{
    private const long Loaded = 10_000;

    private static Money Eur(long minor) => new(minor, Currency.Eur);

    /// <summary>A new PostgreSQL database for one kit, or null for SQLite.</summary>
    private protected abstract Task<PostgresDatabase?> CreateDatabaseAsync();

    [SuiteFact]
    public async Task Owed_TakenAtTheNextSync_Once_BooksReconcileAtEveryStep()
    {
        await using var kit = await StartKitAsync();
        var refund = Guid.NewGuid();
        Assert.True(await OweAsync(kit, Eur(1_250), ValueUpdatePurposes.Refund, refund));
        Assert.Equal("owed", await StateOfAsync(kit, ValueUpdatePurposes.Refund, refund));
        await kit.AssertBooksAsync(Eur(Loaded));

        var credit = (await kit.SyncOkAsync()).Credit;
        Assert.NotNull(credit);
        var update = kit.ValueUpdateOf(credit);
        Assert.Equal((ValueUpdatePurposes.Refund, refund, Eur(1_250), Eur(Loaded)), (update.Purpose, update.SourceId, update.Amount, update.Balance));
        Assert.Equal("crediting", await StateOfAsync(kit, ValueUpdatePurposes.Refund, refund));

        var answer = kit.RunCredit(credit);
        Assert.Equal(StatusWord.Ok, answer.Status);
        var taken = await kit.CompleteCreditOkAsync(credit.ValueUpdateId, answer);
        Assert.Equal((refund, "credited"), (taken.SettlementId, taken.State));
        await kit.AssertBooksAsync(Eur(Loaded + 1_250));

        // Reported again: the same answer, nothing more posted; the next sync has nothing to give.
        Assert.Equal("credited", (await kit.CompleteCreditOkAsync(credit.ValueUpdateId, answer)).State);
        Assert.Null((await kit.SyncOkAsync()).Credit);
        await kit.AssertBooksAsync(Eur(Loaded + 1_250));
    }

    [SuiteFact]
    public async Task OwingTheSameSourceAgain_OwesNothingMore()
    {
        await using var kit = await StartKitAsync();
        var transfer = Guid.NewGuid();
        Assert.True(await OweAsync(kit, Eur(500), ValueUpdatePurposes.Transfer, transfer));
        Assert.False(await OweAsync(kit, Eur(500), ValueUpdatePurposes.Transfer, transfer));
        Assert.False(await OweAsync(kit, Eur(900), ValueUpdatePurposes.Transfer, transfer));
        Assert.True(await OweAsync(kit, Eur(500), ValueUpdatePurposes.Refund, transfer));
        await TakeAllAsync(kit);
        await kit.AssertBooksAsync(Eur(Loaded + 1_000));
    }

    [SuiteFact]
    public async Task SeveralOwed_OnePerSync_OldestFirst()
    {
        await using var kit = await StartKitAsync();
        Guid[] sources = [Guid.NewGuid(), Guid.NewGuid(), Guid.NewGuid()];
        var now = kit.Time.GetUtcNow();
        for (var i = 0; i < sources.Length; i++)
        {
            Assert.True(await OweAsync(kit, Eur(100 * (i + 1)), ValueUpdatePurposes.Refund, sources[i], now.AddSeconds(i - 10)));
        }

        var taken = await TakeAllAsync(kit);
        Assert.Equal(sources, taken.Select(u => u.SourceId));
        await kit.AssertBooksAsync(Eur(Loaded + 600));
    }

    [SuiteFact]
    public async Task AnswerLost_TheNextGreetingShowsTheCreditRan_NoSecondCredit()
    {
        await using var kit = await StartKitAsync();
        var points = Guid.NewGuid();
        Assert.True(await OweAsync(kit, Eur(700), ValueUpdatePurposes.Points, points));
        var credit = (await kit.SyncOkAsync()).Credit!;
        Assert.Equal(StatusWord.Ok, kit.RunCredit(credit).Status);

        // The answer never reaches the operator: the card's next greeting says the CREDIT ran.
        Assert.Null((await kit.SyncOkAsync()).Credit);
        Assert.Equal("credited", await StateOfAsync(kit, ValueUpdatePurposes.Points, points));
        await kit.AssertBooksAsync(Eur(Loaded + 700));
    }

    [SuiteFact]
    public async Task CreditNeverRun_IsMadeAgain_AndTheFirstCannotBeReported()
    {
        await using var kit = await StartKitAsync();
        var refund = Guid.NewGuid();
        Assert.True(await OweAsync(kit, Eur(300), ValueUpdatePurposes.Refund, refund));
        var first = (await kit.SyncOkAsync()).Credit!;

        // The card left the reader before the CREDIT: the next sync proves it never ran and makes another.
        var second = (await kit.SyncOkAsync()).Credit!;
        Assert.NotEqual(first.ValueUpdateId, second.ValueUpdateId);
        Assert.Equal((ValueUpdatePurposes.Refund, refund), (kit.ValueUpdateOf(second).Purpose, kit.ValueUpdateOf(second).SourceId));

        // The first CREDIT was made for a session the card has left: it can never run, and it is no longer the operator's.
        using (var response = await kit.CompleteCreditAsync(first.ValueUpdateId, ResponseApdu.Parse([0x90, 0x00])))
        {
            Assert.Equal("credit.not_found", await OperatorKit.CodeOf(response));
        }

        await kit.CompleteCreditOkAsync(second.ValueUpdateId, kit.RunCredit(second));
        await kit.AssertBooksAsync(Eur(Loaded + 300));
    }

    [SuiteFact]
    public async Task ForgedAnswer_Refused_NothingWritten_TheRealOneTaken()
    {
        await using var kit = await StartKitAsync();
        Assert.True(await OweAsync(kit, Eur(450), ValueUpdatePurposes.Refund, Guid.NewGuid()));
        var credit = (await kit.SyncOkAsync()).Credit!;
        var answer = kit.RunCredit(credit);
        var forged = answer.ToBytes();
        forged[0] ^= 0x01;
        using (var response = await kit.CompleteCreditAsync(credit.ValueUpdateId, ResponseApdu.Parse(forged)))
        {
            Assert.Equal("card.answer_invalid", await OperatorKit.CodeOf(response));
        }

        Assert.Equal(Eur(Loaded), await kit.CardAccountAsync());
        Assert.True((await kit.ReconcileAsync()).IsClean);
        await kit.CompleteCreditOkAsync(credit.ValueUpdateId, answer);
        await kit.AssertBooksAsync(Eur(Loaded + 450));
    }

    [SuiteFact]
    public async Task PurchaseWhileACreditIsOpen_TheCreditIsOwedAgain_AndTakenAtTheNextSync()
    {
        await using var kit = await StartKitAsync();
        var refund = Guid.NewGuid();
        Assert.True(await OweAsync(kit, Eur(200), ValueUpdatePurposes.Refund, refund));
        Assert.NotNull((await kit.SyncOkAsync()).Credit);

        // A purchase starts before the CREDIT ran: its greeting proves the CREDIT never will.
        var bill = kit.Bill(Eur(1_000));
        var started = await kit.StartOkAsync(bill);
        Assert.Equal("owed", await StateOfAsync(kit, ValueUpdatePurposes.Refund, refund));
        using (var completed = await kit.CompleteAsync(started.SettlementId, kit.RunCard(started, bill)))
        {
            Assert.True(completed.IsSuccessStatusCode, await completed.Content.ReadAsStringAsync());
        }

        await TakeAllAsync(kit);
        await kit.AssertBooksAsync(Eur(Loaded - 1_000 + 200));
    }

    [SuiteFact]
    public async Task Owe_RefusesWhatIsNoCardCredit()
    {
        await using var kit = await StartKitAsync();
        await Assert.ThrowsAsync<ArgumentException>(() => OweAsync(kit, Eur(100), ValueUpdatePurposes.TopUp, Guid.NewGuid()));
        await Assert.ThrowsAsync<ArgumentException>(() => OweAsync(kit, Eur(0), ValueUpdatePurposes.Refund, Guid.NewGuid()));
        await kit.AssertBooksAsync(Eur(Loaded));
    }

    [SuiteFact]
    public async Task ReceiptAwardingPoints_OwesThemOnce_FromTheStore_TakenAtTheNextSync()
    {
        await using var kit = await StartKitAsync();
        var (settlementId, acnJws) = await PayAsync(kit, Eur(1_000));
        var points = Money.Parse("100 PTS");

        // The same receipt delivered twice (by the store, then again): the points are owed once.
        Assert.Equal(HttpStatusCode.NoContent, await DeliverReceiptAsync(kit, settlementId, acnJws, points));
        Assert.Equal(HttpStatusCode.NoContent, await DeliverReceiptAsync(kit, settlementId, acnJws, points));
        Assert.Equal("owed", await StateOfAsync(kit, ValueUpdatePurposes.Points, settlementId));

        var credit = (await kit.SyncOkAsync()).Credit!;
        Assert.Equal((ValueUpdatePurposes.Points, settlementId, points), (kit.ValueUpdateOf(credit).Purpose, kit.ValueUpdateOf(credit).SourceId, kit.ValueUpdateOf(credit).Amount));
        await kit.CompleteCreditOkAsync(credit.ValueUpdateId, kit.RunCredit(credit));
        Assert.Equal(points, kit.Balance(currency: Currency.Points));
        Assert.Null((await kit.SyncOkAsync()).Credit);
        await kit.AssertBooksAsync(Eur(Loaded - 1_000));
    }

    [Theory]
    [InlineData("1.00 EUR")]
    [InlineData("0 PTS")]
    [InlineData("1000001 PTS")]
    public async Task ReceiptAwardingWhatIsNotPoints_Refused_NothingOwed(string awarded)
    {
        await using var kit = await StartKitAsync();
        var (settlementId, acnJws) = await PayAsync(kit, Eur(1_000));

        Assert.Equal(HttpStatusCode.UnprocessableEntity, await DeliverReceiptAsync(kit, settlementId, acnJws, Money.Parse(awarded)));
        Assert.Null(await StateOfAsync(kit, ValueUpdatePurposes.Points, settlementId));
        Assert.Null((await kit.SyncOkAsync()).Credit);
        await kit.AssertBooksAsync(Eur(Loaded - 1_000));
    }

    // A purchase of the kit's card at its store "shop", completed: the settlement and its ACN.
    private static async Task<(Guid SettlementId, string AcnJws)> PayAsync(OperatorKit kit, Money amount)
    {
        var bill = kit.Bill(amount);
        var started = await kit.StartOkAsync(bill);
        using var completed = await kit.CompleteAsync(started.SettlementId, kit.RunCard(started, bill));
        Assert.True(completed.IsSuccessStatusCode, await completed.Content.ReadAsStringAsync());
        return (started.SettlementId, (await completed.Content.ReadFromJsonAsync<CompleteSettlementResponse>(ProtocolJson.Options))!.CompletionNotice);
    }

    private static async Task<HttpStatusCode> DeliverReceiptAsync(OperatorKit kit, Guid settlementId, string acnJws, Money points)
    {
        var acn = SignedMessage.Verify<CompletionNotice>(acnJws, kit.OperatorKeys, MessageTypes.CompletionNotice, out _)!;
        var receipt = SignedMessage.Sign(kit.StoreKey, new Receipt(acn.SettlementId, acn.OrderNo, acn.StoreId, acn.Amount, SignedMessage.Digest(acnJws), kit.Time.GetUtcNow(), points), MessageTypes.Receipt);
        using var response = await kit.Http.PostAsJsonAsync($"/v1/settlements/{settlementId}/receipt", new ReceiptDelivery(receipt), ProtocolJson.Options);
        return response.StatusCode;
    }

    private async Task<OperatorKit> StartKitAsync() => await OperatorKit.StartAsync(Loaded, postgres: await CreateDatabaseAsync());

    // What a store, another card or a points award does in its own transaction: owes the kit's card.
    private static async Task<bool> OweAsync(OperatorKit kit, Money amount, string purpose, Guid sourceId, DateTimeOffset? at = null)
    {
        var database = kit.Service<Database>();
        await using var write = await database.BeginWriteAsync(CancellationToken.None);
        var owed = await CardCredits.OweAsync(write.Connection, write.Inner, kit.Reader.CardId.Digits, amount, purpose, sourceId, Account.Store("shop"), at ?? kit.Time.GetUtcNow());
        await write.CommitAsync(CancellationToken.None);
        return owed;
    }

    private static async Task<string?> StateOfAsync(OperatorKit kit, string purpose, Guid sourceId)
    {
        await using var connection = await kit.Service<Database>().OpenAsync();
        return await CardCredits.StateOfAsync(connection, null, purpose, sourceId);
    }

    // Syncs, running each CREDIT and reporting it, until the card is owed nothing more.
    private static async Task<List<ValueUpdate>> TakeAllAsync(OperatorKit kit)
    {
        List<ValueUpdate> taken = [];
        while ((await kit.SyncOkAsync()).Credit is { } credit)
        {
            taken.Add(kit.ValueUpdateOf(credit));
            Assert.Equal("credited", (await kit.CompleteCreditOkAsync(credit.ValueUpdateId, kit.RunCredit(credit))).State);
            Assert.True(taken.Count < 10, "The sync keeps making credits.");
        }

        return taken;
    }
}

/// <summary>Card credits on SQLite.</summary>
public sealed class CardCreditOnSqliteTest : CardCreditTest
{
    private protected override Task<PostgresDatabase?> CreateDatabaseAsync() => Task.FromResult<PostgresDatabase?>(null);
}

/// <summary>Card credits on PostgreSQL: one private cluster for the class, a fresh database per test.</summary>
[UsesComponents(Components.PostgreSql)]
public sealed class CardCreditOnPostgreSqlTest(SharedPostgresCluster postgres) : CardCreditTest, IClassFixture<SharedPostgresCluster>
{
    private protected override async Task<PostgresDatabase?> CreateDatabaseAsync() => await postgres.CreateDatabaseAsync();
}
