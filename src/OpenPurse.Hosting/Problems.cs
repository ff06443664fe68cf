using Microsoft.AspNetCore.Diagnostics;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace OpenPurse.Hosting;

/// <summary>
/// RFC 9457 problem details for what the framework refuses by itself (an unknown route, a wrong
/// method or media type, a body over its endpoint's limit, a fault), with stable codes as the
/// servers' own refusals have. Every code here is documented in docs/errors.md.
/// </summary>
internal static partial class Problems
{
    /// <summary>Problem <c>type</c> URIs: this prefix, then the code.</summary>
    public const string TypePrefix = "https://openpurse.org/problems/";

    public const string Malformed = "request.malformed";
    public const string NotFound = "request.not_found";
    public const string MethodNotAllowed = "request.method_not_allowed";
    public const string Timeout = "request.timeout";
    public const string TooLarge = "request.too_large";
    public const string TargetTooLong = "request.target_too_long";
    public const string UnsupportedMediaType = "request.unsupported_media_type";
    public const string RateLimited = "request.rate_limited";
    public const string HeadersTooLarge = "request.headers_too_large";
    public const string InternalError = "internal.error";

    /// <summary>Every code the framework's refusals are answered with, and its title.</summary>
    public static IReadOnlyDictionary<string, string> Titles { get; } = new Dictionary<string, string>(StringComparer.Ordinal)
    {
        [Malformed] = "The request is not well-formed.",
        [NotFound] = "No such resource.",
        [MethodNotAllowed] = "The resource does not answer this method.",
        [Timeout] = "The request's body came too slowly.",
        [TooLarge] = "The request's body is larger than this endpoint reads.",
        [TargetTooLong] = "The request's target (path and query) is too long.",
        [UnsupportedMediaType] = "The body is not of a media type this endpoint reads.",
        [RateLimited] = "Too many requests from this client; try again later.",
        [HeadersTooLarge] = "The request's headers are too large or too many.",
        [InternalError] = "Something went wrong on the server.",
    };

    /// <summary>The code of a refusal the framework made with this status.</summary>
    public static string CodeFor(int status) => status switch
    {
        StatusCodes.Status404NotFound => NotFound,
        StatusCodes.Status405MethodNotAllowed => MethodNotAllowed,
        StatusCodes.Status408RequestTimeout => Timeout,
        StatusCodes.Status413PayloadTooLarge => TooLarge,
        StatusCodes.Status414UriTooLong => TargetTooLong,
        StatusCodes.Status415UnsupportedMediaType => UnsupportedMediaType,
        StatusCodes.Status429TooManyRequests => RateLimited,
        StatusCodes.Status431RequestHeaderFieldsTooLarge => HeadersTooLarge,
        >= 400 and < 500 => Malformed,
        _ => InternalError,
    };

    /// <summary>
    /// Problem details for the framework's refusals with the codes above (a problem that already
    /// has a <c>code</c>, a server's own refusal, keeps it), each counted by its code in the
    /// server's <c>openpurse.refusals</c>, and bad requests found while reading a
    /// body answered with their own status instead of logged as faults.
    /// </summary>
    public static IServiceCollection AddCodedProblemDetails(this IServiceCollection services)
    {
        services.AddProblemDetails(problems => problems.CustomizeProblemDetails = context =>
        {
            var problem = context.ProblemDetails;
            var status = problem.Status ?? context.HttpContext.Response.StatusCode;
            var code = CodeFor(status);
            if (problem.Extensions.TryAdd("code", code))
            {
                problem.Type = TypePrefix + code;
                problem.Title = Titles[code];
            }

            // The one place every problem answer passes, the servers' own refusals and the framework's alike.
            context.HttpContext.RequestServices.GetService<ServerMeter>()?.Refused(problem.Extensions["code"] as string ?? code, status);
        });
        // After the default writer, which declines a client that accepts no JSON.
        services.AddSingleton<IProblemDetailsWriter, AnyAcceptWriter>();
        services.AddExceptionHandler<BadRequestHandler>();
        return services;
    }

    /// <summary>Writes a problem with a framework code: for middleware that refuses before an endpoint runs.</summary>
    public static Task WriteAsync(HttpContext context, int status, string detail)
    {
        ArgumentNullException.ThrowIfNull(context);
        context.Response.StatusCode = status;
        var code = CodeFor(status);
        return context.RequestServices.GetRequiredService<IProblemDetailsService>().WriteAsync(new ProblemDetailsContext
        {
            HttpContext = context,
            ProblemDetails =
            {
                Status = status,
                Type = TypePrefix + code,
                Title = Titles[code],
                Detail = detail,
                Extensions = { ["code"] = code },
            },
        }).AsTask();
    }

    /// <summary>
    /// A refusal to a client that accepts no JSON (<c>Accept: text/html</c>, a scraper's
    /// <c>application/openmetrics-text</c>) is problem details with its code all the same, and
    /// counted: the default writer declines such a request, and the framework would answer it in
    /// plain text with no code.
    /// </summary>
    private sealed class AnyAcceptWriter(IOptions<ProblemDetailsOptions> options) : IProblemDetailsWriter
    {
        public bool CanWrite(ProblemDetailsContext context) => true;

        public ValueTask WriteAsync(ProblemDetailsContext context)
        {
            ArgumentNullException.ThrowIfNull(context);
            var response = context.HttpContext.Response;
            context.ProblemDetails.Status ??= response.StatusCode;
            options.Value.CustomizeProblemDetails?.Invoke(context);
            return new ValueTask(response.WriteAsJsonAsync(context.ProblemDetails, options: null, contentType: "application/problem+json"));
        }
    }

    /// <summary>
    /// A body over its endpoint's limit (413), too slow (408) or not well-formed HTTP: the client's
    /// fault, answered with its status and logged at debug level, where the exception handler would
    /// answer 500 for some and log every one as an error.
    /// </summary>
    private sealed partial class BadRequestHandler(ILogger<BadRequestHandler> logger) : IExceptionHandler
    {
        public async ValueTask<bool> TryHandleAsync(HttpContext httpContext, Exception exception, CancellationToken cancellationToken)
        {
            if (exception is not BadHttpRequestException bad)
            {
                return false;
            }

            LogBadRequest(logger, bad.StatusCode, bad.Message);
            var detail = bad.StatusCode == StatusCodes.Status413PayloadTooLarge
                ? $"Bodies sent here are at most {httpContext.Features.Get<IHttpMaxRequestBodySizeFeature>()?.MaxRequestBodySize} bytes."
                : "The request could not be read.";
            await WriteAsync(httpContext, bad.StatusCode, detail).ConfigureAwait(false);
            return true;
        }

        [LoggerMessage(Level = LogLevel.Debug, Message = "Bad request answered {Status}: {Reason}")]
        private static partial void LogBadRequest(ILogger logger, int status, string reason);
    }
}
