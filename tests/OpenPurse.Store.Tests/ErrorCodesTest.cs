using System.Reflection;
using OpenPurse.Hosting;
using OpenPurse.Testing;

namespace OpenPurse.Store.Tests;

/// <summary>Every code the store can answer has a title and an entry in docs/errors.md.</summary>
public sealed class ErrorCodesTest
{
    /// <summary>Every refusal the store's code makes: one per factory of <see cref="StoreError"/>, with its title.</summary>
    public static TheoryData<string, string> StoreErrors()
    {
        var errors = new TheoryData<string, string>();
        foreach (var factory in typeof(StoreError).GetMethods(BindingFlags.Public | BindingFlags.Static).Where(m => m.ReturnType == typeof(StoreError)))
        {
            var arguments = factory.GetParameters().Select(p => p.ParameterType == typeof(int) ? 1 : p.ParameterType == typeof(long?) ? (object?)null : "x").ToArray();
            var error = (StoreError)factory.Invoke(null, arguments)!;
            errors.Add(error.Code, error.Title);
        }

        return errors;
    }

    public static TheoryData<string> FrameworkCodes() => [.. Problems.Titles.Keys];

    [Theory]
    [MemberData(nameof(StoreErrors))]
    public void StoreError_HasATitle_AndIsDocumented(string code, string title)
    {
        Assert.False(string.IsNullOrWhiteSpace(title));
        Assert.Contains(code, ErrorsDocument.CodesOf("Store (and mall)"));
    }

    [Theory]
    [MemberData(nameof(FrameworkCodes))]
    public void FrameworkCode_IsDocumented(string code) =>
        Assert.Contains(code, ErrorsDocument.CodesOf("Store (and mall)"));
}
