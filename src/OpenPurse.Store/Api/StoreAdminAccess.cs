using System.Security.Claims;
using System.Security.Cryptography;
using System.Text;
using System.Text.Encodings.Web;
using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Authorization;
using Microsoft.Extensions.Options;
using OpenPurse.Hosting;
using OpenPurse.Protocol.Messages;

namespace OpenPurse.Store.Api;

/// <summary>
/// The store owner's access to the admin API (<c>/v1/admin/*</c>): one bearer token,
/// <see cref="StoreOptions.AdminToken"/>, compared by its SHA-256 in constant time. Without a
/// configured token no request is the owner's. Endpoints declare <see cref="Policy"/>; the
/// fallback policy still refuses everything that declares nothing.
/// </summary>
internal static class StoreAdminAccess
{
    /// <summary>The authentication scheme of the owner's token.</summary>
    public const string Scheme = "StoreAdminToken";

    /// <summary>The policy of the admin endpoints: the owner's token.</summary>
    public const string Policy = "store.admin";

    private const string OwnerRole = "owner";

    public static IServiceCollection AddStoreAdminAccess(this IServiceCollection services)
    {
        services.AddAuthentication(Scheme).AddScheme<AuthenticationSchemeOptions, StoreAdminTokenHandler>(Scheme, configureOptions: null);
        services.AddAuthorizationBuilder()
            .AddPolicy(Policy, policy => policy.AddAuthenticationSchemes(Scheme).RequireRole(OwnerRole))
            .SetFallbackPolicy(new AuthorizationPolicyBuilder(Scheme).RequireAssertion(_ => false).Build());
        return services;
    }

    /// <summary>The bearer token of an admin request; 401 answers as problem details (admin.unauthorized).</summary>
    private sealed class StoreAdminTokenHandler(IOptionsMonitor<AuthenticationSchemeOptions> options, ILoggerFactory logger, UrlEncoder encoder, StoreOptions store)
        : AuthenticationHandler<AuthenticationSchemeOptions>(options, logger, encoder)
    {
        private const string BearerPrefix = "Bearer ";

        protected override Task<AuthenticateResult> HandleAuthenticateAsync()
        {
            if (string.IsNullOrEmpty(store.AdminToken) || Request.Headers.Authorization is not [{ } header] || !header.StartsWith(BearerPrefix, StringComparison.OrdinalIgnoreCase))
            {
                return Task.FromResult(AuthenticateResult.NoResult());
            }

            var presented = SHA256.HashData(Encoding.UTF8.GetBytes(header[BearerPrefix.Length..].Trim()));
            if (!CryptographicOperations.FixedTimeEquals(presented, SHA256.HashData(Encoding.UTF8.GetBytes(store.AdminToken))))
            {
                return Task.FromResult(AuthenticateResult.Fail("Not the store's admin token."));
            }

            var identity = new ClaimsIdentity([new Claim(ClaimTypes.Name, "owner"), new Claim(ClaimTypes.Role, OwnerRole)], StoreAdminAccess.Scheme);
            return Task.FromResult(AuthenticateResult.Success(new AuthenticationTicket(new ClaimsPrincipal(identity), StoreAdminAccess.Scheme)));
        }

        protected override async Task HandleChallengeAsync(AuthenticationProperties properties)
        {
            Response.Headers.WWWAuthenticate = "Bearer";
            await Problems.Refuse(ProblemCode.AdminUnauthorized, "Send the store's admin token (Store:AdminToken) as a bearer token.").ExecuteAsync(Context).ConfigureAwait(false);
        }

        protected override async Task HandleForbiddenAsync(AuthenticationProperties properties) =>
            await Problems.Refuse(ProblemCode.AdminUnauthorized, "Send the store's admin token (Store:AdminToken) as a bearer token.").ExecuteAsync(Context).ConfigureAwait(false);
    }
}
