using System.Security.Claims;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.HttpResults;
using OpenPurse.Hosting;
using OpenPurse.Operator.Registry;

namespace OpenPurse.Operator.Api;

/// <summary>
/// Every request on the admin listener leaves one row in the audit trail, whatever its outcome:
/// allowed, refused (401, 403), unknown (404) or malformed. The row is written as the answer is
/// about to start, so a caller that has the answer finds its row; an answer whose row cannot be
/// written fails instead of going out unrecorded.
/// </summary>
internal static class AdminAudit
{
    /// <summary>The action of a request that matched no admin endpoint.</summary>
    public const string NoAction = "none";

    public static IApplicationBuilder UseAdminAudit(this IApplicationBuilder app) => app.Use(async (context, next) =>
    {
        if (!Listeners.IsAdmin(context) || context.GetEndpoint()?.Metadata.GetMetadata<Unaudited>() is not null)
        {
            await next(context).ConfigureAwait(false);
            return;
        }

        var entry = new AuditEntry();
        context.Features.Set(entry);
        context.Response.OnStarting(() => AppendAsync(context, entry));
        await next(context).ConfigureAwait(false);
    });

    /// <summary>What the audit row names as the action's target (a store id, a masked card number).</summary>
    public static void AuditTarget(this HttpContext context, string target)
    {
        ArgumentNullException.ThrowIfNull(context);
        context.Features.Get<AuditEntry>()?.Target = target;
    }

    /// <summary>Why, as the administrator said it (a card's block or unblock), for the audit row.</summary>
    public static void AuditReason(this HttpContext context, string reason)
    {
        ArgumentNullException.ThrowIfNull(context);
        context.Features.Get<AuditEntry>()?.Reason = reason;
    }

    /// <summary>The refusal's code, for the audit row; the answer itself carries it in its body.</summary>
    public static void AuditCode(this HttpContext context, string code)
    {
        ArgumentNullException.ThrowIfNull(context);
        context.Features.Get<AuditEntry>()?.Code = code;
    }

    /// <summary>An endpoint filter of every admin endpoint: a refusal it answers is audited with its code.</summary>
    public static async ValueTask<object?> RecordRefusalAsync(EndpointFilterInvocationContext invocation, EndpointFilterDelegate next)
    {
        ArgumentNullException.ThrowIfNull(invocation);
        ArgumentNullException.ThrowIfNull(next);
        var result = await next(invocation).ConfigureAwait(false);
        // A typed handler's answer (Results<Ok<T>, ProblemHttpResult>) wraps the result it answers with.
        var answer = result is INestedHttpResult { Result: var nested } ? nested : result;
        if (answer is ProblemHttpResult { ProblemDetails.Extensions: var extensions } && extensions.TryGetValue("code", out var code) && code is string text)
        {
            invocation.HttpContext.AuditCode(text);
        }

        return result;
    }

    private static Task AppendAsync(HttpContext context, AuditEntry entry)
    {
        var user = context.User;
        var authenticated = user.Identity?.IsAuthenticated == true;
        var action = context.GetEndpoint()?.Metadata.GetMetadata<AdminAction>()?.Name;
        var status = context.Response.StatusCode;
        // A refusal's own code, else the one the framework's problem answer carries; none for a success.
        var code = entry.Code ?? (status >= StatusCodes.Status400BadRequest ? Problems.CodeFor(status).Code : null);
        return context.RequestServices.GetRequiredService<AuditTrail>().AppendAsync(
            authenticated ? user.Identity!.Name ?? AuditTrail.Anonymous : AuditTrail.Anonymous,
            authenticated ? user.FindFirstValue(ClaimTypes.Role) : null,
            action ?? NoAction,
            action is null ? $"{context.Request.Method} {context.Request.Path}" : entry.Target,
            status,
            code,
            context.Connection.RemoteIpAddress?.ToString(),
            entry.Reason,
            CancellationToken.None);
    }

    /// <summary>Endpoint metadata: an admin-listener endpoint whose requests are not audited (the metrics scrape).</summary>
    public sealed class Unaudited
    {
        public static readonly Unaudited Instance = new();
    }

    /// <summary>What the request's handlers tell the audit row.</summary>
    private sealed class AuditEntry
    {
        public string? Target { get; set; }

        public string? Code { get; set; }

        public string? Reason { get; set; }
    }
}
