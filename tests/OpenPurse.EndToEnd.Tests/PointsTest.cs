using OpenPurse.Demo;
using OpenPurse.Operator;
using OpenPurse.Protocol;
using OpenPurse.Wallet.Purchase;
using OpenPurse.Wallet.Readers;

namespace OpenPurse.EndToEnd.Tests;

/// <summary>
/// Points through the whole system on its embedded defaults: a store's receipt awards them, the
/// card takes them at its next sync with the real <c>openpurse sync</c>, and a store that sells
/// for points is paid from the card's points purse; the books reconcile in both currencies.
/// </summary>
public sealed class PointsTest
{
    [Fact]
    public async Task ReceiptAwardsPoints_TakenAtTheNextSync_SpentAtAPointsStore_LedgerClean()
    {
        var directory = Directory.CreateTempSubdirectory("openpurse-points-").FullName;
        try
        {
            await using var system = await DemoSystem.StartAsync(directory);
            var cardPath = Path.Combine(directory, "card.bin");
            (await system.IssueCardAsync(cardPath, Money.Parse("50.00 EUR"))).Dispose();

            // 20.00 EUR at a store that awards 10 points per euro: the receipt says 200 PTS.
            var paid = await BuyAsync(system, cardPath, "course-001", "courses");
            Assert.Equal(Money.Parse("200 PTS"), paid.Receipt.Points);
            Assert.Equal(Money.Zero(Currency.Points), WalletProgram.Balance(cardPath, Currency.Points));

            var synced = await WalletProgram.RunAsync(directory, ["sync", "--operator", system.OperatorUrl.ToString(), "--card", cardPath]);
            Assert.True(synced.ExitCode == 0, synced.Output);
            Assert.Contains("Added to the card: 200 PTS", synced.Output, StringComparison.Ordinal);
            Assert.Equal(Money.Parse("200 PTS"), WalletProgram.Balance(cardPath, Currency.Points));
            Assert.Equal(Money.Parse("30.00 EUR"), WalletProgram.Balance(cardPath, Currency.Eur));

            // A second sync has nothing more to give: the points came once.
            var again = await WalletProgram.RunAsync(directory, ["sync", "--operator", system.OperatorUrl.ToString(), "--card", cardPath]);
            Assert.True(again.ExitCode == 0, again.Output);
            Assert.DoesNotContain("Added to the card", again.Output, StringComparison.Ordinal);

            // Spent at the store that sells for points; the euro purse is untouched.
            var sticker = await BuyAsync(system, cardPath, "sticker-001", "rewards");
            Assert.Equal(Money.Parse("50 PTS"), sticker.BalanceAfter);
            Assert.Null(sticker.Receipt.Points);
            Assert.Equal(Money.Parse("30.00 EUR"), WalletProgram.Balance(cardPath, Currency.Eur));

            var output = new StringWriter();
            Assert.Equal(ReconcileCommand.ExitClean, await ReconcileCommand.RunAsync(system.OperatorServices, output, CancellationToken.None));
            Assert.StartsWith("Ledger: clean.", output.ToString(), StringComparison.Ordinal);
            Assert.Matches(@"PTS\s+0\s+50\s+-50\s+0\s+0\s+yes", output.ToString());
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    private static async Task<PurchaseResult> BuyAsync(DemoSystem system, string cardPath, string sku, string storeId)
    {
        using var card = InProcessReader.OpenCard(cardPath);
        using var reader = new InProcessReader(card);
        using var storeHttp = system.StoreClient();
        using var operatorHttp = system.OperatorClient();
        return await new PurchaseFlow(storeHttp, operatorHttp, reader, new AutoPrompt()).RunAsync(new PurchaseRequest(sku, StoreId: storeId));
    }
}
