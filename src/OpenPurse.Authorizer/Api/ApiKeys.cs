using System.Security.Claims;
using System.Security.Cryptography;
using System.Text;
using System.Text.Encodings.Web;
using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Authorization;
using Microsoft.Extensions.Options;
using OpenPurse.Hosting;
using OpenPurse.Protocol.Messages;

namespace OpenPurse.Authorizer.Api;

/// <summary>
/// Who may call what: a caller authenticates with one of <see cref="AuthorizerOptions.ApiKeys"/> as
/// a bearer token, and every endpoint declares the policy it needs or that it is open. An endpoint
/// that declares nothing meets the fallback policy, which refuses everyone.
/// </summary>
internal static class ApiKeys
{
    /// <summary>The authentication scheme of API keys.</summary>
    public const string Scheme = "ApiKey";

    /// <summary>The policy of the authorization endpoints: a configured API key.</summary>
    public const string CallerPolicy = "authorizer.caller";

    public static IServiceCollection AddApiKeys(this IServiceCollection services, AuthorizerOptions options)
    {
        services.AddSingleton(ApiKeySet.From(options));
        services.AddAuthentication(Scheme).AddScheme<AuthenticationSchemeOptions, ApiKeyHandler>(Scheme, configureOptions: null);
        services.AddAuthorizationBuilder()
            .AddPolicy(CallerPolicy, policy => policy.AddAuthenticationSchemes(Scheme).RequireAuthenticatedUser())
            .SetFallbackPolicy(new AuthorizationPolicyBuilder(Scheme).RequireAssertion(_ => false).Build());
        return services;
    }
}

/// <summary>The configured API keys, kept as their SHA-256 only.</summary>
internal sealed class ApiKeySet
{
    private readonly IReadOnlyList<byte[]> _hashes;

    private ApiKeySet(IReadOnlyList<byte[]> hashes) => _hashes = hashes;

    /// <exception cref="ArgumentException">A key shorter than <see cref="AuthorizerOptions.ApiKeyLengthMin"/> or with characters a header cannot carry.</exception>
    public static ApiKeySet From(AuthorizerOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        foreach (var (key, index) in options.ApiKeys.Select((key, index) => (key, index)))
        {
            if (key.Length < AuthorizerOptions.ApiKeyLengthMin || !key.All(c => c is > ' ' and < (char)0x7F))
            {
                throw new ArgumentException($"Authorizer:ApiKeys:{index} must be at least {AuthorizerOptions.ApiKeyLengthMin} visible ASCII characters.", nameof(options));
            }
        }

        return new ApiKeySet([.. options.ApiKeys.Select(key => SHA256.HashData(Encoding.UTF8.GetBytes(key)))]);
    }

    /// <summary>Whether <paramref name="presented"/> is a configured key: every key is compared, each in constant time.</summary>
    public bool Contains(string presented)
    {
        var hash = SHA256.HashData(Encoding.UTF8.GetBytes(presented));
        var found = false;
        foreach (var known in _hashes)
        {
            found |= CryptographicOperations.FixedTimeEquals(hash, known);
        }

        return found;
    }
}

/// <summary>The bearer API key of a request. A missing or unknown key answers 401 authorizer.unauthorized as problem details.</summary>
internal sealed class ApiKeyHandler(IOptionsMonitor<AuthenticationSchemeOptions> options, ILoggerFactory logger, UrlEncoder encoder, ApiKeySet keys)
    : AuthenticationHandler<AuthenticationSchemeOptions>(options, logger, encoder)
{
    private const string BearerPrefix = "Bearer ";

    protected override Task<AuthenticateResult> HandleAuthenticateAsync()
    {
        if (Request.Headers.Authorization is not [{ } header] || !header.StartsWith(BearerPrefix, StringComparison.OrdinalIgnoreCase))
        {
            return Task.FromResult(AuthenticateResult.NoResult());
        }

        if (!keys.Contains(header[BearerPrefix.Length..].Trim()))
        {
            return Task.FromResult(AuthenticateResult.Fail("Not a configured API key."));
        }

        var identity = new ClaimsIdentity([new Claim(ClaimTypes.Name, "caller")], ApiKeys.Scheme);
        return Task.FromResult(AuthenticateResult.Success(new AuthenticationTicket(new ClaimsPrincipal(identity), ApiKeys.Scheme)));
    }

    protected override async Task HandleChallengeAsync(AuthenticationProperties properties)
    {
        Response.Headers.WWWAuthenticate = "Bearer";
        await Problems.Refuse(ProblemCode.AuthorizerUnauthorized, "Send one of the authorizer's API keys as a bearer token (Authorization: Bearer …).").ExecuteAsync(Context).ConfigureAwait(false);
    }
}
