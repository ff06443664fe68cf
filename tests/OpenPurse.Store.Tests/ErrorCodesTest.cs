using OpenPurse.Hosting;
using OpenPurse.Protocol.Messages;
using OpenPurse.Testing;

namespace OpenPurse.Store.Tests;

/// <summary>Every code the store can answer, from the one vocabulary, has a title and an entry in docs/errors.md.</summary>
public sealed class ErrorCodesTest
{
    /// <summary>Every code of <see cref="ProblemCode.Store"/>: the framework's and the store's own.</summary>
    public static TheoryData<string> StoreCodes() => [.. ProblemCode.Store.Select(problem => problem.Code)];

    [Theory]
    [MemberData(nameof(StoreCodes))]
    public void Code_HasATitle_AndIsDocumentedWithItsStatus(string code)
    {
        var problem = ProblemCode.Find(code)!;
        Assert.False(string.IsNullOrWhiteSpace(problem.Title));
        Assert.Equal(problem.Status, ErrorsDocument.StatusesOf("Store (and mall)")[code]);
    }

    [Fact]
    public void EveryDocumentedCode_IsInTheVocabulary() =>
        Assert.All(ErrorsDocument.CodesOf("Store (and mall)"), code => Assert.Contains(ProblemCode.Find(code), ProblemCode.Store));

    [Fact]
    public void EveryStoreRefusal_UsesACodeTheStoreAnswers()
    {
        // The store's refusals word their details; their codes all come from the store's part of the vocabulary.
        foreach (var factory in typeof(StoreRefusals).GetMethods(System.Reflection.BindingFlags.Public | System.Reflection.BindingFlags.Static).Where(m => m.ReturnType == typeof(Refusal)))
        {
            var arguments = factory.GetParameters().Select(p => p.ParameterType == typeof(int) ? 1 : p.ParameterType == typeof(long?) ? (object?)null : "x").ToArray();
            Assert.Contains(((Refusal)factory.Invoke(null, arguments)!).Problem, ProblemCode.Store);
        }
    }
}
