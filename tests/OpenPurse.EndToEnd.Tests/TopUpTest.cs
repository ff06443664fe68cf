using System.Globalization;
using OpenPurse.Demo;
using OpenPurse.Operator;
using OpenPurse.Protocol;
using OpenPurse.Protocol.Apdu;
using OpenPurse.Protocol.Purse;
using OpenPurse.Wallet.Purchase;
using OpenPurse.Wallet.Readers;

namespace OpenPurse.EndToEnd.Tests;

/// <summary>
/// A top-up by credit card through the whole system on its embedded defaults (the demo's operator,
/// mall and credit authorizer in test mode), with the real <c>openpurse topup</c> program fed the
/// credit card's details on standard input, as a script would.
/// </summary>
public sealed class TopUpTest
{
    [Fact]
    public async Task TopUp_ApprovedTestCard_CardUpByTheAmount_PaysAPurchase_LedgerClean_DeclinedCardLeavesTheBalance()
    {
        var directory = Directory.CreateTempSubdirectory("openpurse-topup-").FullName;
        try
        {
            await using var system = await DemoSystem.StartAsync(directory);
            var cardPath = Path.Combine(directory, "card.bin");
            (await system.IssueCardAsync(cardPath, Money.Parse("10.00 EUR"))).Dispose();
            var expiry = DateTime.UtcNow.AddYears(3).ToString("MM/yy", CultureInfo.InvariantCulture);

            var approved = await WalletProgram.RunAsync(directory, ["topup", "--operator", system.OperatorUrl.ToString(), "--card", cardPath, "--amount", "20.00 EUR", "--yes"], $"{DemoAuthorizer.ApprovedCard}\n{expiry}\n{DemoAuthorizer.TestCardPin}\n");

            Assert.True(approved.ExitCode == 0, approved.Output);
            Assert.Contains("ending 4242", approved.Output, StringComparison.Ordinal);
            Assert.DoesNotContain(DemoAuthorizer.ApprovedCard, approved.Output, StringComparison.Ordinal);
            Assert.DoesNotContain(DemoAuthorizer.ApprovedCard.Replace(" ", "", StringComparison.Ordinal), approved.Output, StringComparison.Ordinal);
            Assert.Equal(Money.Parse("30.00 EUR"), WalletProgram.Balance(cardPath, Currency.Eur));

            // The value added pays like any other.
            using (var card = InProcessReader.OpenCard(cardPath))
            using (var reader = new InProcessReader(card))
            using (var storeHttp = system.StoreClient())
            using (var operatorHttp = system.OperatorClient())
            {
                var paid = await new PurchaseFlow(storeHttp, operatorHttp, reader, new AutoPrompt()).RunAsync(new PurchaseRequest("book-002", StoreId: "books"));
                Assert.Equal(Money.Parse("17.50 EUR"), paid.BalanceAfter);
            }

            var output = new StringWriter();
            Assert.Equal(ReconcileCommand.ExitClean, await ReconcileCommand.RunAsync(system.OperatorServices, output, CancellationToken.None));
            Assert.StartsWith("Ledger: clean.", output.ToString(), StringComparison.Ordinal);

            var declined = await WalletProgram.RunAsync(directory, ["topup", "--operator", system.OperatorUrl.ToString(), "--card", cardPath, "--amount", "20.00 EUR", "--yes"], $"{DemoAuthorizer.DeclinedCard}\n{expiry}\n{DemoAuthorizer.TestCardPin}\n");

            Assert.True(declined.ExitCode == 1, declined.Output);
            Assert.Contains("topup.declined", declined.Output, StringComparison.Ordinal);
            Assert.Equal(Money.Parse("17.50 EUR"), WalletProgram.Balance(cardPath, Currency.Eur));
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }
}
