using OpenPurse.Protocol.Messages;

namespace OpenPurse.Authorizer.Authorizations;

/// <summary>
/// An expected refusal: a code of the one vocabulary (<see cref="ProblemCode"/>, docs/errors.md),
/// which fixes its status and title, and a sentence for people that never holds card data.
/// </summary>
/// <param name="Problem">The code.</param>
/// <param name="Detail">What exactly was wrong with this request.</param>
internal sealed record Refusal(ProblemCode Problem, string Detail);

/// <summary>Either a value or the reason there is none.</summary>
internal readonly struct Outcome<T>
    where T : class
{
    private Outcome(T? value, Refusal? refusal)
    {
        Value = value;
        Refusal = refusal;
    }

    public T? Value { get; }

    public Refusal? Refusal { get; }

    public static implicit operator Outcome<T>(T value) => new(value ?? throw new ArgumentNullException(nameof(value)), null);

    public static implicit operator Outcome<T>(Refusal refusal) => new(null, refusal ?? throw new ArgumentNullException(nameof(refusal)));
}
