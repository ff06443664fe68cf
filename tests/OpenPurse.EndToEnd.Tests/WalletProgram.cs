using System.Diagnostics;
using OpenPurse.Protocol;
using OpenPurse.Protocol.Purse;
using OpenPurse.Wallet.Readers;

namespace OpenPurse.EndToEnd.Tests;

/// <summary>The built <c>openpurse</c> program as a person's script runs it, and the card file it works on.</summary>
internal static class WalletProgram
{
    /// <summary>Far more than any command takes; a program that waits for input that never comes would never end.</summary>
    private static readonly TimeSpan s_exitWithin = TimeSpan.FromSeconds(90);

    /// <summary>Runs <c>openpurse</c> with <paramref name="arguments"/> in <paramref name="home"/>, its standard input the given text, then closed.</summary>
    /// <returns>Its exit code and everything it wrote (standard output, then standard error).</returns>
    public static async Task<(int ExitCode, string Output)> RunAsync(string home, string[] arguments, string input = "")
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

    /// <summary>The card file's balance in <paramref name="currency"/>, read from the card itself (zero without a purse).</summary>
    public static Money Balance(string cardPath, Currency currency)
    {
        using var card = InProcessReader.OpenCard(cardPath);
        using var reader = new InProcessReader(card);
        Assert.True(reader.Transmit(CardHostSession.Select()).IsOk);
        var answer = reader.Transmit(CardHostSession.GetData());
        if (!answer.IsOk || !PurseStatus.TryParse(answer.Data, out var status))
        {
            throw new InvalidOperationException($"GET DATA answered {answer}.");
        }

        return status.BalanceOf(currency) ?? Money.Zero(currency);
    }
}
