using System.Security.Claims;
using System.Security.Cryptography;
using System.Text;
using System.Text.Encodings.Web;
using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Authorization;
using Microsoft.Extensions.Options;
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
        services.AddSingleton(AdminTokens.From(options));
        services.AddAuthentication(Scheme).AddScheme<AuthenticationSchemeOptions, AdminTokenHandler>(Scheme, configureOptions: null);
        services.AddAuthorizationBuilder()
            .AddPolicy(AdministratorPolicy, policy => policy.AddAuthenticationSchemes(Scheme).RequireRole(AdminRoles.Administrator))
            .AddPolicy(AuditorPolicy, policy => policy.AddAuthenticationSchemes(Scheme).RequireRole(AdminRoles.Auditor, AdminRoles.Administrator))
            .SetFallbackPolicy(new AuthorizationPolicyBuilder(Scheme).RequireAssertion(_ => false).Build());
        return services;
    }
}

/// <summary>The configured admin tokens, by the SHA-256 of the token: each with its name (who) and role.</summary>
internal sealed class AdminTokens
{
    private readonly IReadOnlyList<(string Name, string Role, byte[] Sha256)> _tokens;

    private AdminTokens(IReadOnlyList<(string Name, string Role, byte[] Sha256)> tokens) => _tokens = tokens;

    /// <summary>The name given to <see cref="OperatorOptions.AdminToken"/>, an administrator's.</summary>
    public const string DefaultName = "admin";

    /// <exception cref="InvalidOperationException">A token without a name, with an unknown role, a hash that is not 64 hex digits, or two tokens of one name.</exception>
    public static AdminTokens From(OperatorOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        var tokens = new List<(string Name, string Role, byte[] Sha256)>();
        if (!string.IsNullOrEmpty(options.AdminToken))
        {
            tokens.Add((DefaultName, AdminRoles.Administrator, SHA256.HashData(Encoding.UTF8.GetBytes(options.AdminToken))));
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

            tokens.Add((token.Name, token.Role, hash));
        }

        if (tokens.GroupBy(t => t.Name, StringComparer.Ordinal).FirstOrDefault(g => g.Count() > 1) is { } twice)
        {
            throw new InvalidOperationException($"AdminTokens: two tokens are named '{twice.Key}'; each name says who in the audit trail.");
        }

        return new AdminTokens(tokens);
    }

    /// <summary>The token's name and role, or null: every configured token is compared, each in constant time.</summary>
    public (string Name, string Role)? Find(string presented)
    {
        var hash = SHA256.HashData(Encoding.UTF8.GetBytes(presented));
        (string Name, string Role)? found = null;
        foreach (var token in _tokens)
        {
            if (CryptographicOperations.FixedTimeEquals(hash, token.Sha256))
            {
                found = (token.Name, token.Role);
            }
        }

        return found;
    }
}

/// <summary>
/// The bearer token of an admin request, taken on the admin listener only: on the public listener
/// no token authenticates anyone. 401 and 403 answer as problem details (admin.unauthorized, admin.forbidden).
/// </summary>
internal sealed class AdminTokenHandler(IOptionsMonitor<AuthenticationSchemeOptions> options, ILoggerFactory logger, UrlEncoder encoder, AdminTokens tokens)
    : AuthenticationHandler<AuthenticationSchemeOptions>(options, logger, encoder)
{
    private const string BearerPrefix = "Bearer ";

    protected override Task<AuthenticateResult> HandleAuthenticateAsync()
    {
        if (!Listeners.IsAdmin(Context) || Request.Headers.Authorization is not [{ } header] || !header.StartsWith(BearerPrefix, StringComparison.OrdinalIgnoreCase))
        {
            return Task.FromResult(AuthenticateResult.NoResult());
        }

        if (tokens.Find(header[BearerPrefix.Length..].Trim()) is not var (name, role))
        {
            return Task.FromResult(AuthenticateResult.Fail("Not a configured admin token."));
        }

        var identity = new ClaimsIdentity([new Claim(ClaimTypes.Name, name), new Claim(ClaimTypes.Role, role)], AdminAccess.Scheme);
        return Task.FromResult(AuthenticateResult.Success(new AuthenticationTicket(new ClaimsPrincipal(identity), AdminAccess.Scheme)));
    }

    protected override async Task HandleChallengeAsync(AuthenticationProperties properties)
    {
        Response.Headers.WWWAuthenticate = "Bearer";
        Context.AuditCode("admin.unauthorized");
        await new Refusal(ProblemCode.AdminUnauthorized, "Send an admin token as a bearer token, on the admin listener.").ToResult().ExecuteAsync(Context).ConfigureAwait(false);
    }

    protected override async Task HandleForbiddenAsync(AuthenticationProperties properties)
    {
        Context.AuditCode("admin.forbidden");
        await new Refusal(ProblemCode.AdminForbidden, "This admin token's role may not do this.").ToResult().ExecuteAsync(Context).ConfigureAwait(false);
    }
}
