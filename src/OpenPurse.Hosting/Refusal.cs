using System.Text.Json;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.Http.HttpResults;
using OpenPurse.Protocol.Messages;

namespace OpenPurse.Hosting;

/// <summary>
/// An expected refusal of any of the servers: a code of the one vocabulary (<see cref="ProblemCode"/>,
/// documented in docs/errors.md), which fixes its HTTP status and title, and a sentence for people
/// about this request, never a secret or card data. The API answers it as RFC 9457 problem details
/// (<see cref="Problems.Refuse"/>); a refusal changes nothing.
/// </summary>
/// <param name="Problem">The code; clients branch on it.</param>
/// <param name="Detail">What exactly was wrong with this request.</param>
internal sealed record Refusal(ProblemCode Problem, string Detail)
{
    public string Code => Problem.Code;

    public ProblemHttpResult ToResult() => Problems.Refuse(Problem, Detail);

    /// <summary>
    /// Reads a JSON body strictly (<see cref="ProtocolJson.Options"/>): a body that does not fit the
    /// contract is a refusal, not an exception, and its detail says where, never what the body held.
    /// </summary>
    public static async Task<(T? Body, Refusal? Malformed)> ReadJsonAsync<T>(HttpRequest request)
        where T : class
    {
        ArgumentNullException.ThrowIfNull(request);
        if (!request.HasJsonContentType())
        {
            return (null, new Refusal(ProblemCode.RequestMalformed, "The body must be JSON (Content-Type: application/json)."));
        }

        try
        {
            var body = await JsonSerializer.DeserializeAsync<T>(request.Body, ProtocolJson.Options, request.HttpContext.RequestAborted).ConfigureAwait(false);
            return body is null ? (null, new Refusal(ProblemCode.RequestMalformed, "The body is null.")) : (body, null);
        }
        catch (JsonException e)
        {
            return (null, new Refusal(ProblemCode.RequestMalformed, $"The body does not fit the contract at '{e.Path ?? "$"}'."));
        }
        catch (BadHttpRequestException e) when (e.StatusCode == StatusCodes.Status413PayloadTooLarge)
        {
            return (null, new Refusal(ProblemCode.RequestTooLarge, $"Bodies sent here are at most {request.HttpContext.Features.Get<IHttpMaxRequestBodySizeFeature>()?.MaxRequestBodySize} bytes."));
        }
    }
}

/// <summary>A value or the refusal that stands in its place.</summary>
internal readonly struct Result<T>
{
    private Result(T? value, Refusal? refusal) => (Value, Refusal) = (value, refusal);

    public T? Value { get; }

    public Refusal? Refusal { get; }

    public static implicit operator Result<T>(T value) => new(value, null);

    public static implicit operator Result<T>(Refusal refusal) => new(default, refusal ?? throw new ArgumentNullException(nameof(refusal)));
}
