using System.Diagnostics;
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
    /// <summary>Far more than a top-up takes; a program that waits for input that never comes would never end.</summary>
    private static readonly TimeSpan s_exitWithin = TimeSpan.FromSeconds(90);

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

            var approved = await WalletAsync(directory, ["topup", "--operator", system.OperatorUrl.ToString(), "--card", cardPath, "--amount", "20.00 EUR", "--yes"], $"{DemoAuthorizer.ApprovedCard}\n{expiry}\n{DemoAuthorizer.TestCardPin}\n");

            Assert.True(approved.ExitCode == 0, approved.Output);
            Assert.Contains("ending 4242", approved.Output, StringComparison.Ordinal);
            Assert.DoesNotContain(DemoAuthorizer.ApprovedCard, approved.Output, StringComparison.Ordinal);
            Assert.DoesNotContain(DemoAuthorizer.ApprovedCard.Replace(" ", "", StringComparison.Ordinal), approved.Output, StringComparison.Ordinal);
            Assert.Equal(Money.Parse("30.00 EUR"), Balance(cardPath));

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

            var declined = await WalletAsync(directory, ["topup", "--operator", system.OperatorUrl.ToString(), "--card", cardPath, "--amount", "20.00 EUR", "--yes"], $"{DemoAuthorizer.DeclinedCard}\n{expiry}\n{DemoAuthorizer.TestCardPin}\n");

            Assert.True(declined.ExitCode == 1, declined.Output);
            Assert.Contains("topup.declined", declined.Output, StringComparison.Ordinal);
            Assert.Equal(Money.Parse("17.50 EUR"), Balance(cardPath));
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    private static Money Balance(string cardPath)
    {
        using var card = InProcessReader.OpenCard(cardPath);
        using var reader = new InProcessReader(card);
        Assert.True(reader.Transmit(CardHostSession.Select()).IsOk);
        var answer = reader.Transmit(CardHostSession.GetData());
        if (!answer.IsOk || !PurseStatus.TryParse(answer.Data, out var status))
        {
            throw new InvalidOperationException($"GET DATA answered {answer}.");
        }

        return status.BalanceOf(Currency.Eur) ?? Money.Zero(Currency.Eur);
    }

    // The wallet as a script runs it: the built program, its standard input the given lines, then closed.
    private static async Task<(int ExitCode, string Output)> WalletAsync(string home, string[] arguments, string input)
    {
        var start = new ProcessStartInfo("dotnet", ["exec", Path.Combine(AppContext.BaseDirectory, "openpurse.dll"), .. arguments])
        {
            WorkingDirectory = home,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
        };
        start.Environment["HOME"] = home;
        start.Environment["NO_COLOR"] = "1";
        start.Environment["TERM"] = "dumb";
        start.Environment["COLUMNS"] = "200";
        using var process = Process.Start(start) ?? throw new InvalidOperationException("openpurse did not start.");
        var output = process.StandardOutput.ReadToEndAsync();
        var error = process.StandardError.ReadToEndAsync();
        await process.StandardInput.WriteAsync(input);
        process.StandardInput.Close();
        using var timeout = new CancellationTokenSource(s_exitWithin);
        try
        {
            await process.WaitForExitAsync(timeout.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"openpurse {string.Join(' ', arguments)} did not end: {await output} {await error}");
        }

        return (process.ExitCode, await output + await error);
    }
}
