using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using OpenPurse.Protocol.Messages;

namespace OpenPurse.Hosting;

/// <summary>
/// Declares in an endpoint's metadata the problem statuses it can answer, so that its API
/// description (the OpenAPI documents) names every refusal a client can meet there.
/// </summary>
internal static class ProblemMetadata
{
    /// <summary>
    /// What the framework and the servers' middleware answer on any endpoint before (or instead of)
    /// its handler: a path with a control character or a body that is not the contract (400), a slow
    /// body (408), a body over the endpoint's limit (413), a long target (414), a charset or media type
    /// not read (415), too many headers (431), a fault (500). See docs/errors.md, "Request limits".
    /// </summary>
    public static IReadOnlyList<ProblemCode> Framework { get; } =
    [
        ProblemCode.RequestMalformed, ProblemCode.RequestTimeout, ProblemCode.RequestTooLarge, ProblemCode.RequestTargetTooLong,
        ProblemCode.RequestUnsupportedMediaType, ProblemCode.RequestHeadersTooLarge, ProblemCode.InternalError,
    ];

    /// <summary>The endpoint answers the framework's refusals and <paramref name="codes"/>: one problem response per status.</summary>
    public static TBuilder Refuses<TBuilder>(this TBuilder builder, params ProblemCode[] codes)
        where TBuilder : IEndpointConventionBuilder
    {
        foreach (var status in Framework.Concat(codes).Select(code => code.Status).Distinct().Order())
        {
            builder.ProducesProblem(status);
        }

        return builder;
    }
}
