using System.ComponentModel;
using System.Reflection;
using Xunit;
using Xunit.Abstractions;
using Xunit.Sdk;

namespace OpenPurse.Testing;

/// <summary>
/// A fact declared once in an abstract test class and run by each concrete subclass: one per
/// registry engine, one per deployment. A subclass that needs real components says so with
/// <see cref="UsesComponentsAttribute"/>: its facts follow the rule of <see cref="IntegrationFactAttribute"/>
/// (not run where a component is missing, failing instead under OPENPURSE_REQUIRE_INTEGRATION=1).
/// </summary>
[AttributeUsage(AttributeTargets.Method)]
[XunitTestCaseDiscoverer("OpenPurse.Testing.SuiteFactDiscoverer", "OpenPurse.Testing")]
public sealed class SuiteFactAttribute : FactAttribute;

/// <summary>The real components every test of this class needs.</summary>
[AttributeUsage(AttributeTargets.Class)]
public sealed class UsesComponentsAttribute(params string[] components) : Attribute
{
    public IReadOnlyList<string> Components { get; } = components;
}

/// <summary>Makes the test cases of <see cref="SuiteFactAttribute"/>.</summary>
public sealed class SuiteFactDiscoverer(IMessageSink diagnosticMessageSink) : FactDiscoverer(diagnosticMessageSink)
{
    protected override IXunitTestCase CreateTestCase(ITestFrameworkDiscoveryOptions discoveryOptions, ITestMethod testMethod, IAttributeInfo factAttribute) =>
        new ComponentsTestCase(DiagnosticMessageSink, discoveryOptions.MethodDisplayOrDefault(), discoveryOptions.MethodDisplayOptionsOrDefault(), testMethod);
}

/// <summary>
/// A test case that takes its skip reason from the concrete test class. The reason is computed,
/// not stored, so it survives the runner's serialization of test cases between discovery and run.
/// </summary>
public sealed class ComponentsTestCase : XunitTestCase
{
    [EditorBrowsable(EditorBrowsableState.Never)]
    [Obsolete("Called by the de-serializer only.")]
    public ComponentsTestCase()
    {
    }

    public ComponentsTestCase(IMessageSink diagnosticMessageSink, TestMethodDisplay defaultMethodDisplay, TestMethodDisplayOptions defaultMethodDisplayOptions, ITestMethod testMethod)
        : base(diagnosticMessageSink, defaultMethodDisplay, defaultMethodDisplayOptions, testMethod)
    {
    }

    protected override string? GetSkipReason(IAttributeInfo factAttribute)
    {
        var components = TestMethod.TestClass.Class.ToRuntimeType().GetCustomAttribute<UsesComponentsAttribute>()?.Components ?? [];
        var missing = Testing.Components.Missing(components);
        return base.GetSkipReason(factAttribute) ?? (Testing.Components.Required ? null : missing);
    }
}
