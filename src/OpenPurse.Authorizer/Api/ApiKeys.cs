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

    /// <summary>Who a caller is: one name for every key (the keys are the operator's nodes).</summary>
    private const string Caller = "caller";

    public static IServiceCollection AddApiKeys(this IServiceCollection services, AuthorizerOptions options)
    {
        var keys = From(options);
        return services.AddBearerTokens(Scheme,
            bearer =>
            {
                bearer.Tokens = keys;
                bearer.Unauthorized = new Refusal(ProblemCode.AuthorizerUnauthorized, "Send one of the authorizer's API keys as a bearer token (Authorization: Bearer …).");
            },
            policies => policies.AddPolicy(CallerPolicy, policy => policy.AddAuthenticationSchemes(Scheme).RequireAuthenticatedUser()));
    }

    /// <summary>The configured API keys, kept as their SHA-256 only.</summary>
    /// <exception cref="ArgumentException">A key shorter than <see cref="AuthorizerOptions.ApiKeyLengthMin"/> or with characters a header cannot carry.</exception>
    public static IReadOnlyList<BearerToken> From(AuthorizerOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        foreach (var (key, index) in options.ApiKeys.Select((key, index) => (key, index)))
        {
            if (key.Length < AuthorizerOptions.ApiKeyLengthMin || !key.All(c => c is > ' ' and < (char)0x7F))
            {
                throw new ArgumentException($"Authorizer:ApiKeys:{index} must be at least {AuthorizerOptions.ApiKeyLengthMin} visible ASCII characters.", nameof(options));
            }
        }

        return [.. options.ApiKeys.Select(key => BearerToken.Of(Caller, Caller, key))];
    }
}
