using System.CommandLine;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.Configuration;
using OpenPurse.CommandLine;

namespace OpenPurse.Hosting;

/// <summary>What the servers' command lines share: their configuration's sources, and <c>serve</c>.</summary>
internal static class ServerCommand
{
    /// <summary>
    /// A server's configuration: appsettings.json beside the program, then environment variables
    /// (<c>Section__Key</c>), then the command line's overrides (<c>--Section:Key=value</c>).
    /// </summary>
    public static IConfiguration Configuration(IEnumerable<string> overrides) =>
        new ConfigurationBuilder()
            .SetBasePath(AppContext.BaseDirectory)
            .AddJsonFile("appsettings.json", optional: true)
            .AddEnvironmentVariables()
            .AddCommandLine([.. overrides])
            .Build();

    /// <summary>
    /// <c>serve</c>: builds the server from the overrides and runs it until SIGINT or SIGTERM; a
    /// configuration it cannot work with is one line on stderr and exit 2, before anything listens.
    /// </summary>
    /// <param name="program">The program's name, which starts the line of a refusal.</param>
    /// <param name="description">What <c>serve</c> runs, for its help.</param>
    /// <param name="build">Builds the server from the command line's configuration overrides.</param>
    public static Command Serve(string program, string description, Func<string[], WebApplication> build)
    {
        var serve = new Command("serve", description)
            .WithConfigurationOverrides()
            .WithExitCodes("0 stopped", "2 bad usage or configuration");
        serve.SetAction(async parse =>
        {
            WebApplication app;
            try
            {
                app = build(parse.ConfigurationOverrides());
            }
            catch (Exception e) when (e is FormatException or ArgumentException or InvalidOperationException)
            {
                await parse.InvocationConfiguration.Error.WriteLineAsync($"{program}: {e.Message}").ConfigureAwait(false);
                return CommandLines.ExitUsage;
            }

            await using (app.ConfigureAwait(false))
            {
                await app.RunAsync().ConfigureAwait(false);
            }

            return CommandLines.ExitOk;
        });
        return serve;
    }
}
