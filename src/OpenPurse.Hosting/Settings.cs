using System.Globalization;
using Microsoft.Extensions.Configuration;

namespace OpenPurse.Hosting;

/// <summary>
/// Reads the servers' settings from their configuration section (appsettings.json, environment
/// variables such as <c>Store__OperatorUrl</c>, the command line): an empty value is no value, and
/// a value not of its form is a <see cref="FormatException"/> that names the setting, never its value.
/// </summary>
internal static class Settings
{
    /// <summary>The value, or null when it is missing or empty.</summary>
    public static string? Optional(IConfiguration section, string key)
    {
        ArgumentNullException.ThrowIfNull(section);
        return section[key] is { Length: > 0 } value ? value : null;
    }

    /// <exception cref="FormatException">The setting is missing.</exception>
    public static string Required(IConfiguration section, string key) =>
        Optional(section, key) ?? throw new FormatException($"The setting {PathOf(section, key)} is missing.");

    /// <exception cref="FormatException">The setting is not a whole number above zero.</exception>
    public static int? Count(IConfiguration section, string key) =>
        Optional(section, key) is not { } text ? null
        : int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var value) && value > 0 ? value
        : throw new FormatException($"The setting {PathOf(section, key)} is not a whole number above zero.");

    /// <exception cref="FormatException">The setting is not a time span above zero.</exception>
    public static TimeSpan? Duration(IConfiguration section, string key) =>
        Optional(section, key) is not { } text ? null
        : TimeSpan.TryParse(text, CultureInfo.InvariantCulture, out var value) && value > TimeSpan.Zero ? value
        : throw new FormatException($"The setting {PathOf(section, key)} is not a time span above zero such as 00:00:30.");

    /// <summary>A list's non-empty values (<c>Section:Key:0</c>, <c>Section:Key:1</c>, …).</summary>
    public static IReadOnlyList<string> List(IConfiguration section, string key)
    {
        ArgumentNullException.ThrowIfNull(section);
        return [.. section.GetSection(key).GetChildren().Select(child => child.Value).OfType<string>().Where(value => value.Length > 0)];
    }

    /// <summary>
    /// Where a server keeps its data when not told: <c>openpurse/&lt;server&gt;</c> in the user's
    /// local data folder, never the current directory (which under <c>dotnet run</c> is the source tree).
    /// </summary>
    public static string DefaultDataDirectory(string server) =>
        Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.LocalApplicationData, Environment.SpecialFolderOption.Create), "openpurse", server);

    /// <summary>The setting's full name, e.g. <c>Store:BillLifetime</c>.</summary>
    public static string PathOf(IConfiguration section, string key) =>
        section is IConfigurationSection { Path.Length: > 0 } named ? $"{named.Path}:{key}" : key;
}
