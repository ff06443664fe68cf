namespace OpenPurse.Store;

/// <summary>
/// <c>dotnet run --project src/OpenPurse.Store</c>: a store (or mall) with the options of the
/// <c>Store</c> section of appsettings.json, overridden by environment variables (<c>Store__MallId</c>)
/// and the command line (<c>--Store:Urls=http://127.0.0.1:5090</c>).
/// <c>openpurse-store registration</c> prints what the operator registers for each member store
/// (JSON, public keys only) and exits.
/// </summary>
internal static class Program
{
    public static async Task<int> Main(string[] args)
    {
        var registration = args is ["registration", ..];
        if (registration)
        {
            args = args[1..];
        }

        var configuration = new ConfigurationBuilder()
            .SetBasePath(AppContext.BaseDirectory)
            .AddJsonFile("appsettings.json", optional: true)
            .AddEnvironmentVariables()
            .AddCommandLine(args)
            .Build();

        WebApplication app;
        try
        {
            var options = StoreConfiguration.Read(configuration.GetSection(StoreConfiguration.SectionName));
            if (registration)
            {
                Console.WriteLine(StoreHost.Registrations(options));
                return 0;
            }

            app = StoreHost.Build(options);
        }
        catch (Exception e) when (e is FormatException or ArgumentException or InvalidOperationException)
        {
            await Console.Error.WriteLineAsync("openpurse-store: " + e.Message).ConfigureAwait(false);
            return 2;
        }

        await using (app.ConfigureAwait(false))
        {
            await app.RunAsync().ConfigureAwait(false);
        }

        return 0;
    }
}
