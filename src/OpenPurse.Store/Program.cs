namespace OpenPurse.Store;

/// <summary>
/// <c>dotnet run --project src/OpenPurse.Store</c>: a store (or mall) with the options of the
/// <c>Store</c> section of appsettings.json, overridden by environment variables (<c>Store__MallId</c>)
/// and the command line (<c>--Store:Urls=http://127.0.0.1:5090</c>).
/// </summary>
internal static class Program
{
    public static async Task<int> Main(string[] args)
    {
        var configuration = new ConfigurationBuilder()
            .SetBasePath(AppContext.BaseDirectory)
            .AddJsonFile("appsettings.json", optional: true)
            .AddEnvironmentVariables()
            .AddCommandLine(args)
            .Build();

        WebApplication app;
        try
        {
            app = StoreHost.Build(StoreConfiguration.Read(configuration.GetSection(StoreConfiguration.SectionName)));
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
