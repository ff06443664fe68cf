using OpenPurse.Hosting;
using OpenPurse.Protocol.Messages;
using OpenPurse.Testing;

namespace OpenPurse.Operator.Tests;

/// <summary>Every code the operator can answer, from the one vocabulary, has a title and an entry in docs/errors.md.</summary>
public sealed class ErrorCodesTest
{
    /// <summary>Every code of <see cref="ProblemCode.Operator"/>: the framework's and the operator's own.</summary>
    public static TheoryData<string> OperatorCodes() => [.. ProblemCode.Operator.Select(problem => problem.Code)];

    [Theory]
    [MemberData(nameof(OperatorCodes))]
    public void Code_HasATitle_AndIsDocumentedWithItsStatus(string code)
    {
        var problem = ProblemCode.Find(code)!;
        Assert.False(string.IsNullOrWhiteSpace(problem.Title));
        Assert.NotEqual(code, problem.Title);
        Assert.Equal(problem.Status, ErrorsDocument.StatusesOf("Operator")[code]);
    }

    [Fact]
    public void EveryDocumentedCode_IsInTheVocabulary() =>
        Assert.All(ErrorsDocument.CodesOf("Operator"), code => Assert.Contains(ProblemCode.Find(code), ProblemCode.Operator));

    [Fact]
    public void EveryStatusTheFrameworkAnswers_HasADocumentedCode()
    {
        // Any status a framework component may set: each maps to a code of the vocabulary's framework part.
        for (var status = 400; status < 600; status++)
        {
            Assert.Contains(Problems.CodeFor(status), ProblemCode.Framework);
        }
    }

    [Fact]
    public void EveryCode_IsOneCode_WithOneStatusAndTitle()
    {
        Assert.Equal(ProblemCode.All.Count, ProblemCode.All.Select(problem => problem.Code).Distinct(StringComparer.Ordinal).Count());
        Assert.All(ProblemCode.All, problem => Assert.Equal(ProblemCode.TypePrefix + problem.Code, problem.Type));
    }
}
