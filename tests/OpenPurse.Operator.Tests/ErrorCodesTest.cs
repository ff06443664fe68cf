using System.Reflection;
using OpenPurse.Hosting;
using OpenPurse.Operator.Api;
using OpenPurse.Testing;

namespace OpenPurse.Operator.Tests;

/// <summary>Every code the operator can answer has a title and an entry in docs/errors.md.</summary>
public sealed class ErrorCodesTest
{
    /// <summary>Every refusal the operator's code makes: one per factory of <see cref="Refusal"/>.</summary>
    public static TheoryData<string> RefusalCodes()
    {
        var codes = new TheoryData<string>();
        foreach (var factory in typeof(Refusal).GetMethods(BindingFlags.Public | BindingFlags.Static).Where(m => m.ReturnType == typeof(Refusal)))
        {
            codes.Add(((Refusal)factory.Invoke(null, [.. factory.GetParameters().Select(_ => "detail")])!).Code);
        }

        return codes;
    }

    public static TheoryData<string> FrameworkCodes() => [.. Problems.Titles.Keys];

    [Theory]
    [MemberData(nameof(RefusalCodes))]
    public void Refusal_HasATitle_AndIsDocumented(string code)
    {
        Assert.NotEqual(code, new Refusal(code, 400, "detail").Title);
        Assert.Contains(code, ErrorsDocument.CodesOf("Operator"));
    }

    [Theory]
    [MemberData(nameof(FrameworkCodes))]
    public void FrameworkCode_HasATitle_AndIsDocumented(string code)
    {
        Assert.False(string.IsNullOrWhiteSpace(Problems.Titles[code]));
        Assert.Contains(code, ErrorsDocument.CodesOf("Operator"));
    }

    [Fact]
    public void EveryStatusTheFrameworkAnswers_HasADocumentedCode()
    {
        // Any status a framework component may set: each maps to a code of the table.
        for (var status = 400; status < 600; status++)
        {
            Assert.Contains(Problems.CodeFor(status), Problems.Titles.Keys);
        }
    }
}
