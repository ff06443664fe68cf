using Microsoft.AspNetCore.Diagnostics;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Mvc;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using OpenPurse.Protocol.Messages;

namespace OpenPurse.Hosting;

/// <summary>
/// RFC 9457 problem details for what the framework refuses by itself (an unknown route, a wrong
/// method or media type, a body over its endpoint's limit, a fault), with stable codes as the
/// servers' own refusals have (all of them in the one vocabulary, <see cref="ProblemCode"/>), and
/// the one writer of the servers' own refusals (<see cref="Refuse"/>).
/// </summary>
internal static partial class Problems
{
    /// <summary>The code of a refusal the framework made with this status.</summary>
    public static ProblemCode CodeFor(int status) => status switch
    {
        StatusCodes.Status404NotFound => ProblemCode.RequestNotFound,
        StatusCodes.Status405MethodNotAllowed => ProblemCode.RequestMethodNotAllowed,
        StatusCodes.Status408RequestTimeout => ProblemCode.RequestTimeout,
        StatusCodes.Status413PayloadTooLarge => ProblemCode.RequestTooLarge,
        StatusCodes.Status414UriTooLong => ProblemCode.RequestTargetTooLong,
        StatusCodes.Status415UnsupportedMediaType => ProblemCode.RequestUnsupportedMediaType,
        StatusCodes.Status429TooManyRequests => ProblemCode.RequestRateLimited,
        StatusCodes.Status431RequestHeaderFieldsTooLarge => ProblemCode.RequestHeadersTooLarge,
        >= 400 and < 500 => ProblemCode.RequestMalformed,
        _ => ProblemCode.InternalError,
    };

    /// <summary>A server's refusal as problem details: the code's status, type and title, and what exactly was wrong.</summary>
    public static ProblemHttpResult Refuse(ProblemCode code, string? detail)
    {
        ArgumentNullException.ThrowIfNull(code);
        var problem = new ProblemDetails
        {
            Type = code.Type,
            Title = code.Title,
            Status = code.Status,
            Detail = detail,
        };
        problem.Extensions["code"] = code.Code;
        return TypedResults.Problem(problem);
    }

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
            if (problem.Extensions.TryAdd("code", code.Code))
            {
                problem.Type = code.Type;
                problem.Title = code.Title;
            }

            // The one place every problem answer passes, the servers' own refusals and the framework's alike.
            context.HttpContext.RequestServices.GetService<ServerMeter>()?.Refused(problem.Extensions["code"] as string ?? code.Code, status);
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
                Type = code.Type,
                Title = code.Title,
                Detail = detail,
                Extensions = { ["code"] = code.Code },
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
