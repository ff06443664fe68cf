using Microsoft.AspNetCore.Http.HttpResults;
using OpenPurse.Hosting;
using OpenPurse.Protocol.Messages;

namespace OpenPurse.Operator.Api;

/// <summary>
/// An expected refusal: a code of the one vocabulary (<see cref="ProblemCode"/>, documented in
/// docs/errors.md), which fixes its HTTP status and title, and a sentence for people about this
/// request. The API answers it as RFC 9457 problem details; a refusal changes nothing.
/// </summary>
internal sealed record Refusal(ProblemCode Problem, string Detail)
{
    public string Code => Problem.Code;

    public ProblemHttpResult ToResult() => Problems.Refuse(Problem, Detail);
}

/// <summary>A value or the refusal that stands in its place.</summary>
internal readonly struct Result<T>
{
    private Result(T? value, Refusal? refusal) => (Value, Refusal) = (value, refusal);

    public T? Value { get; }

    public Refusal? Refusal { get; }

    public static implicit operator Result<T>(T value) => new(value, null);

    public static implicit operator Result<T>(Refusal refusal) => new(default, refusal);
}
