using System.CommandLine;
using OpenPurse.CommandLine;

namespace OpenPurse.Authorizer;

/// <summary>
/// <c>openpurse-authorizer serve</c>: the credit authorizer with the options of the
/// <c>Authorizer</c> section of appsettings.json, overridden by environment variables
/// (<c>Authorizer__ApiKeys__0</c>) and the command line (<c>--Authorizer:Urls=http://127.0.0.1:5095</c>).
/// Its keys are made on the first start. Nothing is read, made or started before the command line parsed.
/// </summary>
internal static class Program
{
    /// <summary>The test cards, for <c>--help</c>: docs/authorizer.md has the full table.</summary>
    internal const string TestCardsHelp =
        "Test cards (PIN 1234, any expiry not past): 4242424242424242 approves; 4000000000000002 declines (do_not_honor); "
        + "4000000000000127 declines (incorrect_pin); 4000000000009995 approves up to 10000 minor units, declines above (limit_exceeded); "
        + "4000000000000259 approves but answers after 30 s (a time-out); 4000000000003410 answers 503 once per Idempotency-Key, then approves.";

    public static Task<int> Main(string[] args) =>
        CommandLines.InvokeAsync(Build(), args, Console.Out, Console.Error, cancelOnInterrupt: false);

    internal static RootCommand Build()
    {
        var serve = new Command("serve", "Run the authorizer until SIGINT or SIGTERM; its keys are made on the first start. Overrides: --Authorizer:Key=value. " + TestCardsHelp)
            .WithConfigurationOverrides()
            .WithExitCodes("0 stopped", "2 bad usage or configuration");
        serve.SetAction(async parse =>
        {
            WebApplication app;
            try
            {
                app = AuthorizerHost.Build(ReadOptions(parse.ConfigurationOverrides()));
            }
            catch (Exception e) when (e is FormatException or ArgumentException or InvalidOperationException)
            {
                await parse.InvocationConfiguration.Error.WriteLineAsync("openpurse-authorizer: " + e.Message).ConfigureAwait(false);
                return CommandLines.ExitUsage;
            }

            await using (app.ConfigureAwait(false))
            {
                await app.RunAsync().ConfigureAwait(false);
            }

            return CommandLines.ExitOk;
        });

        return new RootCommand("openpurse-authorizer: the OpenPurse credit authorizer in test mode (docs/authorizer.md). `serve` runs it. " + TestCardsHelp)
        {
            serve,
        }.WithExitCodes("0 ok", "1 the operation failed", "2 bad usage or configuration");
    }

    private static AuthorizerOptions ReadOptions(string[] overrides)
    {
        var configuration = new ConfigurationBuilder()
            .SetBasePath(AppContext.BaseDirectory)
            .AddJsonFile("appsettings.json", optional: true)
            .AddEnvironmentVariables()
            .AddCommandLine(overrides)
            .Build();
        return AuthorizerConfiguration.Read(configuration.GetSection(AuthorizerConfiguration.SectionName));
    }
}
