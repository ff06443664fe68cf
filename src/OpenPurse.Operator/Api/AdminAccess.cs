using System.Security.Cryptography;
using OpenPurse.Hosting;
using OpenPurse.Protocol.Messages;

namespace OpenPurse.Operator.Api;

/// <summary>The roles an admin token carries.</summary>
internal static class AdminRoles
{
    /// <summary>Changes things: registers stores, blocks cards; reads what an auditor reads.</summary>
    public const string Administrator = "administrator";

    /// <summary>Reads only: the audit trail, the registered stores.</summary>
    public const string Auditor = "auditor";
}

/// <summary>
/// Who may call what: the bearer-token authentication of the admin listener and the authorization
/// policies the endpoints declare. An endpoint that declares nothing meets the fallback policy,
/// which refuses everyone, so a forgotten declaration closes an endpoint rather than opening it.
/// </summary>
internal static class AdminAccess
{
    /// <summary>The authentication scheme of admin tokens.</summary>
    public const string Scheme = "AdminToken";

    /// <summary>Policy of endpoints that change things: an administrator's token.</summary>
    public const string AdministratorPolicy = "admin.administrator";

    /// <summary>Policy of endpoints that only read: an auditor's or an administrator's token.</summary>
    public const string AuditorPolicy = "admin.auditor";

    public static IServiceCollection AddAdminAccess(this IServiceCollection services, OperatorOptions options)
    {
        var tokens = AdminTokens.From(options);
        return services.AddBearerTokens(Scheme,
            bearer =>
            {
                bearer.Tokens = tokens;
                // On the public listener no token authenticates anyone.
                bearer.Accepts = Listeners.IsAdmin;
                bearer.Unauthorized = new Refusal(ProblemCode.AdminUnauthorized, "Send an admin token as a bearer token, on the admin listener.");
                bearer.Forbidden = new Refusal(ProblemCode.AdminForbidden, "This admin token's role may not do this.");
                bearer.Refused = AdminAudit.AuditCode;
            },
            policies => policies
                .AddPolicy(AdministratorPolicy, policy => policy.AddAuthenticationSchemes(Scheme).RequireRole(AdminRoles.Administrator))
                .AddPolicy(AuditorPolicy, policy => policy.AddAuthenticationSchemes(Scheme).RequireRole(AdminRoles.Auditor, AdminRoles.Administrator)));
    }
}

/// <summary>The configured admin tokens, each by its SHA-256, with its name (who) and role.</summary>
internal static class AdminTokens
{
    /// <summary>The name given to <see cref="OperatorOptions.AdminToken"/>, an administrator's.</summary>
    public const string DefaultName = "admin";

    /// <exception cref="InvalidOperationException">A token without a name, with an unknown role, a hash that is not 64 hex digits, or two tokens of one name.</exception>
    public static IReadOnlyList<BearerToken> From(OperatorOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        var tokens = new List<BearerToken>();
        if (!string.IsNullOrEmpty(options.AdminToken))
        {
            tokens.Add(BearerToken.Of(DefaultName, AdminRoles.Administrator, options.AdminToken));
        }

        foreach (var token in options.AdminTokens)
        {
            if (string.IsNullOrWhiteSpace(token.Name) || token.Name.Length > 64)
            {
                throw new InvalidOperationException("AdminTokens: every token has a Name of 1 to 64 characters (who, in the audit trail).");
            }

            if (token.Role is not (AdminRoles.Administrator or AdminRoles.Auditor))
            {
                throw new InvalidOperationException($"AdminTokens: token '{token.Name}' has role '{token.Role}'; a role is '{AdminRoles.Administrator}' or '{AdminRoles.Auditor}'.");
            }

            byte[] hash;
            try
            {
                hash = Convert.FromHexString(token.Sha256 ?? "");
            }
            catch (FormatException)
            {
                hash = [];
            }

            if (hash.Length != SHA256.HashSizeInBytes)
            {
                throw new InvalidOperationException($"AdminTokens: token '{token.Name}' has no Sha256 of 64 hex digits (printf %s TOKEN | sha256sum).");
            }

            tokens.Add(new BearerToken(token.Name, token.Role, hash));
        }

        if (tokens.GroupBy(t => t.Name, StringComparer.Ordinal).FirstOrDefault(g => g.Count() > 1) is { } twice)
        {
            throw new InvalidOperationException($"AdminTokens: two tokens are named '{twice.Key}'; each name says who in the audit trail.");
        }

        return tokens;
    }
}
