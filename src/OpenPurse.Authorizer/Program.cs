using System.CommandLine;
using OpenPurse.CommandLine;
using OpenPurse.Hosting;

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
        var serve = ServerCommand.Serve("openpurse-authorizer", "Run the authorizer until SIGINT or SIGTERM; its keys are made on the first start. Overrides: --Authorizer:Key=value. " + TestCardsHelp, overrides => AuthorizerHost.Build(ReadOptions(overrides)));

        return new RootCommand("openpurse-authorizer: the OpenPurse credit authorizer in test mode (docs/authorizer.md). `serve` runs it. " + TestCardsHelp)
        {
            serve,
        }.WithExitCodes("0 ok", "1 the operation failed", "2 bad usage or configuration");
    }

    private static AuthorizerOptions ReadOptions(string[] overrides)
    {
        return AuthorizerConfiguration.Read(ServerCommand.Configuration(overrides).GetSection(AuthorizerConfiguration.SectionName));
    }
}
