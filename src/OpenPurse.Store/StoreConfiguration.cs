using System.Globalization;
using System.Net;
using OpenPurse.Hosting;
using OpenPurse.Protocol;

namespace OpenPurse.Store;

/// <summary>
/// Reads <see cref="StoreOptions"/> from configuration (section <c>Store</c> of appsettings.json,
/// environment variables such as <c>Store__OperatorUrl</c>, the command line). Prices are written
/// as people write them, <c>"4.99 EUR"</c>, and parsed exactly.
/// </summary>
internal static class StoreConfiguration
{
    public const string SectionName = "Store";

    /// <summary>Reads the options.</summary>
    /// <exception cref="FormatException">A setting is missing or not of its form; the message names it.</exception>
    public static StoreOptions Read(IConfiguration section)
    {
        ArgumentNullException.ThrowIfNull(section);
        var members = section.GetSection("Members").GetChildren().Select(ReadMember).ToList();
        var options = new StoreOptions
        {
            DataDirectory = Settings.Optional(section, "DataDirectory") ?? DefaultDataDirectory(),
            MallId = Settings.Optional(section, "MallId"),
            OperatorUrl = Uri.TryCreate(Settings.Required(section, "OperatorUrl"), UriKind.Absolute, out var operatorUrl)
                ? operatorUrl
                : throw new FormatException("Store:OperatorUrl is not an absolute URL."),
            Members = members,
        };

        if (Settings.Optional(section, "BillLifetime") is { } lifetime)
        {
            options = options with
            {
                BillLifetime = TimeSpan.TryParse(lifetime, CultureInfo.InvariantCulture, out var value)
                    ? value
                    : throw new FormatException("Store:BillLifetime is not a time span such as 00:15:00."),
            };
        }

        if (Settings.Optional(section, "Urls") is { } urls)
        {
            options = options with { Urls = urls };
        }

        if (Settings.Optional(section, "PublicUrl") is { } publicUrl)
        {
            options = options with
            {
                PublicUrl = Uri.TryCreate(publicUrl, UriKind.Absolute, out var value) && value.Scheme is "http" or "https"
                    ? value
                    : throw new FormatException("Store:PublicUrl is not an absolute http or https URL."),
            };
        }

        if (Settings.Optional(section, "AgentUrl") is { } agentUrl)
        {
            options = options with
            {
                AgentUrl = Uri.TryCreate(agentUrl, UriKind.Absolute, out var value)
                    ? value
                    : throw new FormatException("Store:AgentUrl is not an absolute URL such as http://127.0.0.1:5099."),
            };
        }

        options = options with
        {
            TlsCertificatePath = Settings.Optional(section, "TlsCertificatePath"),
            TlsKeyPath = Settings.Optional(section, "TlsKeyPath"),
            TrustedRootsPath = Settings.Optional(section, "TrustedRootsPath"),
            AdminToken = Settings.Optional(section, "AdminToken"),
        };

        if (Addresses(section, "MetricsClients") is { } scrapers)
        {
            options = options with { MetricsClients = scrapers };
        }

        return options with
        {
            ClientOrdersPerSecond = Settings.Count(section, "ClientOrdersPerSecond") ?? options.ClientOrdersPerSecond,
            ClientOrderBurst = Settings.Count(section, "ClientOrderBurst") ?? options.ClientOrderBurst,
        };
    }

    /// <summary>
    /// Where a store keeps its data when not told: the user's local data folder, never the current
    /// directory (which under <c>dotnet run</c> is the source tree).
    /// </summary>
    public static string DefaultDataDirectory() => Settings.DefaultDataDirectory("store");

    private static MemberStoreOptions ReadMember(IConfigurationSection member)
    {
        var catalog = member.GetSection("Catalog").GetChildren().Select(item => new CatalogItem(
            Settings.Required(item, "Sku"),
            Settings.Required(item, "Title"),
            Money.TryParse(Settings.Required(item, "Price"), out var price) ? price : throw new FormatException($"{item.Path}:Price is not an amount such as '4.99 EUR'."),
            Settings.Required(item, "Content"))).ToList();
        var points = Settings.Optional(member, "PointsPerUnit");
        return new MemberStoreOptions(Settings.Required(member, "StoreId"), Settings.Required(member, "Name"), catalog,
            points is null ? 0 : int.TryParse(points, NumberStyles.None, CultureInfo.InvariantCulture, out var perUnit)
                ? perUnit
                : throw new FormatException($"{member.Path}:PointsPerUnit is not a whole number of points, such as 10."));
    }

    /// <summary>IP addresses, as a list (<c>Store:MetricsClients:0</c>, …) or one value separated by <c>;</c>.</summary>
    private static List<IPAddress>? Addresses(IConfiguration section, string key)
    {
        var texts = Settings.Optional(section, key) is { } joined
            ? joined.Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            : [.. section.GetSection(key).GetChildren().Select(child => child.Value).OfType<string>()];
        if (texts.Length == 0)
        {
            return null;
        }

        return [.. texts.Select(text => IPAddress.TryParse(text, out var address)
            ? address
            : throw new FormatException($"The setting {Settings.PathOf(section, key)} holds '{text}', which is not an IP address."))];
    }
}
