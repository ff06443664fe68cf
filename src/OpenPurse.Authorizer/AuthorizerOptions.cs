using OpenPurse.Hosting;

namespace OpenPurse.Authorizer;

/// <summary>How the credit authorizer runs (section <c>Authorizer</c> of its configuration, docs/authorizer.md).</summary>
public sealed record AuthorizerOptions
{
    /// <summary>Where the authorizations (<c>authorizer.db</c>) and the keys (<c>keys/</c>) live; made 0700.</summary>
    public required string DataDirectory { get; init; }

    /// <summary>
    /// The callers' API keys, each at least <see cref="ApiKeyLengthMin"/> characters; a caller sends
    /// one as a bearer token. Without any, every call but the open ones is refused.
    /// </summary>
    public IReadOnlyList<string> ApiKeys { get; init; } = [];

    /// <summary>The addresses to listen on, separated by <c>;</c>; loopback only. Port 0 picks a free port. An https URL needs <see cref="TlsCertificatePath"/>.</summary>
    public string Urls { get; init; } = "http://127.0.0.1:5095";

    /// <summary>PEM server certificate (the certificate, then its CA's) for https URLs.</summary>
    public string? TlsCertificatePath { get; init; }

    /// <summary>PEM private key of <see cref="TlsCertificatePath"/>, readable by the owner only.</summary>
    public string? TlsKeyPath { get; init; }

    /// <summary>How long an approved authorization may be captured.</summary>
    public TimeSpan AuthorizationLifetime { get; init; } = TimeSpan.FromDays(7);

    /// <summary>
    /// How long the time-out test card holds its answer (or until the caller goes away): longer
    /// than any caller waits, so that the caller sees a time-out.
    /// </summary>
    public TimeSpan TimeoutCardHold { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>The shortest API key accepted: a key is a secret, not a password a person types.</summary>
    public const int ApiKeyLengthMin = 16;
}

/// <summary>
/// Reads <see cref="AuthorizerOptions"/> from configuration (section <c>Authorizer</c> of
/// appsettings.json, environment variables such as <c>Authorizer__ApiKeys__0</c>, the command line).
/// </summary>
internal static class AuthorizerConfiguration
{
    public const string SectionName = "Authorizer";

    /// <exception cref="FormatException">A setting is not of its form; the message names it, never a key's value.</exception>
    public static AuthorizerOptions Read(IConfiguration section)
    {
        ArgumentNullException.ThrowIfNull(section);
        var options = new AuthorizerOptions
        {
            DataDirectory = Settings.Optional(section, "DataDirectory") ?? DefaultDataDirectory(),
            ApiKeys = Settings.List(section, "ApiKeys"),
            TlsCertificatePath = Settings.Optional(section, "TlsCertificatePath"),
            TlsKeyPath = Settings.Optional(section, "TlsKeyPath"),
        };
        return options with
        {
            Urls = Settings.Optional(section, "Urls") ?? options.Urls,
            AuthorizationLifetime = Settings.Duration(section, "AuthorizationLifetime") ?? options.AuthorizationLifetime,
            TimeoutCardHold = Settings.Duration(section, "TimeoutCardHold") ?? options.TimeoutCardHold,
        };
    }

    /// <summary>Where the authorizer keeps its data when not told: the user's local data folder, never the current directory.</summary>
    public static string DefaultDataDirectory() => Settings.DefaultDataDirectory("authorizer");
}
