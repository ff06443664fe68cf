using OpenPurse.Hosting;
using OpenPurse.Protocol.Messages;

namespace OpenPurse.Store.Api;

/// <summary>
/// The store owner's access to the admin API (<c>/v1/admin/*</c>): one bearer token,
/// <see cref="StoreOptions.AdminToken"/>, kept and compared as its SHA-256. Without a configured
/// token no request is the owner's. Endpoints declare <see cref="Policy"/>; the fallback policy
/// refuses everything that declares nothing.
/// </summary>
internal static class StoreAdminAccess
{
    /// <summary>The authentication scheme of the owner's token.</summary>
    public const string Scheme = "StoreAdminToken";

    /// <summary>The policy of the admin endpoints: the owner's token.</summary>
    public const string Policy = "store.admin";

    private const string Owner = "owner";

    public static IServiceCollection AddStoreAdminAccess(this IServiceCollection services, StoreOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        return services.AddBearerTokens(Scheme,
            bearer =>
            {
                bearer.Tokens = string.IsNullOrEmpty(options.AdminToken) ? [] : [BearerToken.Of(Owner, Owner, options.AdminToken)];
                bearer.Unauthorized = new Refusal(ProblemCode.AdminUnauthorized, "Send the store's admin token (Store:AdminToken) as a bearer token.");
            },
            policies => policies.AddPolicy(Policy, policy => policy.AddAuthenticationSchemes(Scheme).RequireRole(Owner)));
    }
}
