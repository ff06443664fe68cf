using System.Security.Claims;
using System.Security.Cryptography;
using System.Text;
using System.Text.Encodings.Web;
using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Authorization;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace OpenPurse.Hosting;

/// <summary>
/// One configured bearer token: who holds it (its name, for logs and the audit trail), the role it
/// carries, and its SHA-256 — the token itself is never kept.
/// </summary>
internal sealed record BearerToken(string Name, string Role, byte[] Sha256)
{
    public static BearerToken Of(string name, string role, string token) => new(name, role, Hash(token));

    public static byte[] Hash(string token) => SHA256.HashData(Encoding.UTF8.GetBytes(token));
}

/// <summary>
/// A protected API's bearer tokens (the operator's admin listener, the store owner's admin API, the
/// credit authorizer's callers): who may present one, and how a refusal answers.
/// </summary>
internal sealed class BearerTokenOptions : AuthenticationSchemeOptions
{
    public IReadOnlyList<BearerToken> Tokens { get; set; } = [];

    /// <summary>Where a token is taken at all (the admin listener, say); elsewhere no token authenticates anyone.</summary>
    public Func<HttpContext, bool> Accepts { get; set; } = _ => true;

    /// <summary>The answer to a request without a valid token (401).</summary>
    public Refusal Unauthorized { get; set; } = null!;

    /// <summary>The answer to a valid token whose role may not call the endpoint (403); without one, <see cref="Unauthorized"/>.</summary>
    public Refusal? Forbidden { get; set; }

    /// <summary>Told the code of each refusal before it is written (the operator's audit trail).</summary>
    public Action<HttpContext, string>? Refused { get; set; }
}

/// <summary>
/// Bearer-token authentication and the authorization every endpoint declares. The presented token's
/// SHA-256 is compared with every configured one, each in constant time, so neither the answer nor
/// its timing tells which token came close. An endpoint that declares no policy meets the fallback,
/// which refuses everyone: a forgotten declaration closes an endpoint rather than opening it.
/// </summary>
internal static class BearerTokens
{
    /// <summary>Adds the scheme as the default one, its policies, and the fallback that refuses what declares nothing.</summary>
    public static IServiceCollection AddBearerTokens(this IServiceCollection services, string scheme, Action<BearerTokenOptions> configure, Action<AuthorizationBuilder> policies)
    {
        ArgumentNullException.ThrowIfNull(policies);
        services.AddAuthentication(scheme).AddScheme<BearerTokenOptions, BearerTokenHandler>(scheme, configure);
        var builder = services.AddAuthorizationBuilder()
            .SetFallbackPolicy(new AuthorizationPolicyBuilder(scheme).RequireAssertion(_ => false).Build());
        policies(builder);
        return services;
    }

    /// <summary>The configured token <paramref name="presented"/> is, or null: every token is compared, each in constant time.</summary>
    public static BearerToken? Find(IReadOnlyList<BearerToken> tokens, string presented)
    {
        ArgumentNullException.ThrowIfNull(tokens);
        var hash = BearerToken.Hash(presented);
        BearerToken? found = null;
        foreach (var token in tokens)
        {
            if (CryptographicOperations.FixedTimeEquals(hash, token.Sha256))
            {
                found = token;
            }
        }

        return found;
    }

    private sealed class BearerTokenHandler(IOptionsMonitor<BearerTokenOptions> options, ILoggerFactory logger, UrlEncoder encoder)
        : AuthenticationHandler<BearerTokenOptions>(options, logger, encoder)
    {
        private const string BearerPrefix = "Bearer ";

        protected override Task<AuthenticateResult> HandleAuthenticateAsync()
        {
            if (!Options.Accepts(Context) || Request.Headers.Authorization is not [{ } header] || !header.StartsWith(BearerPrefix, StringComparison.OrdinalIgnoreCase))
            {
                return Task.FromResult(AuthenticateResult.NoResult());
            }

            if (Find(Options.Tokens, header[BearerPrefix.Length..].Trim()) is not { } token)
            {
                return Task.FromResult(AuthenticateResult.Fail("Not a configured token."));
            }

            var identity = new ClaimsIdentity([new Claim(ClaimTypes.Name, token.Name), new Claim(ClaimTypes.Role, token.Role)], Scheme.Name);
            return Task.FromResult(AuthenticateResult.Success(new AuthenticationTicket(new ClaimsPrincipal(identity), Scheme.Name)));
        }

        protected override Task HandleChallengeAsync(AuthenticationProperties properties)
        {
            Response.Headers.WWWAuthenticate = "Bearer";
            return RefuseAsync(Options.Unauthorized);
        }

        protected override Task HandleForbiddenAsync(AuthenticationProperties properties) => RefuseAsync(Options.Forbidden ?? Options.Unauthorized);

        private Task RefuseAsync(Refusal refusal)
        {
            Options.Refused?.Invoke(Context, refusal.Code);
            return refusal.ToResult().ExecuteAsync(Context);
        }
    }
}
