using Xunit;

namespace OpenPurse.Testing;

/// <summary>
/// A test that needs real components (programs from Debian packages). Where one is missing it is
/// reported as not run, with the package to install — except when the environment variable
/// <c>OPENPURSE_REQUIRE_INTEGRATION=1</c> is set (as CI sets it): then it runs, and fails on the
/// missing component, so a machine without it can never pass unnoticed.
/// </summary>
[AttributeUsage(AttributeTargets.Method)]
public sealed class IntegrationFactAttribute : FactAttribute
{
    public IntegrationFactAttribute(params string[] components)
    {
        if (Components.Missing(components) is { } missing && !Components.Required)
        {
            Skip = missing;
        }
    }
}

/// <summary>The theory form of <see cref="IntegrationFactAttribute"/>.</summary>
[AttributeUsage(AttributeTargets.Method)]
public sealed class IntegrationTheoryAttribute : TheoryAttribute
{
    public IntegrationTheoryAttribute(params string[] components)
    {
        if (Components.Missing(components) is { } missing && !Components.Required)
        {
            Skip = missing;
        }
    }
}

/// <summary>The real components tests may use, and where Debian puts them.</summary>
public static class Components
{
    public const string PostgreSql = "postgresql";
    public const string SoftHsm = "softhsm2";
    public const string Pcscd = "pcscd";
    public const string Vpcd = "vsmartcard-vpcd";
    public const string HaProxy = "haproxy";
    public const string Patroni = "patroni";

    /// <summary>The etcd server (Debian package etcd-server), the store Patroni's members agree through.</summary>
    public const string Etcd = "etcd-server";

    /// <summary>The browser the browser tests drive headless: the system's own, never a downloaded one.</summary>
    public const string Chromium = "chromium";

    /// <summary>Set by CI: a missing component fails the test instead of leaving it unrun.</summary>
    public static bool Required => Environment.GetEnvironmentVariable("OPENPURSE_REQUIRE_INTEGRATION") == "1";

    /// <summary>The file each component is recognized by.</summary>
    public static string PathOf(string component) => component switch
    {
        PostgreSql => "/usr/lib/postgresql/15/bin/pg_ctl",
        SoftHsm => "/usr/lib/softhsm/libsofthsm2.so",
        Pcscd => "/usr/sbin/pcscd",
        Vpcd => "/usr/lib/pcsc/drivers/serial/libifdvpcd.so",
        HaProxy => "/usr/sbin/haproxy",
        Patroni => "/usr/bin/patroni",
        Etcd => "/usr/bin/etcd",
        Chromium => "/usr/bin/chromium",
        _ => throw new ArgumentOutOfRangeException(nameof(component), component, "Unknown component."),
    };

    /// <summary>A sentence naming the missing components and their Debian packages, or null when all are here.</summary>
    public static string? Missing(IEnumerable<string> components)
    {
        var missing = components.Where(c => !File.Exists(PathOf(c))).ToArray();
        return missing.Length == 0
            ? null
            : $"Needs {string.Join(", ", missing)} (apt-get install {string.Join(' ', missing)}); set OPENPURSE_REQUIRE_INTEGRATION=1 to fail instead.";
    }

    /// <summary>Throws when a component is missing: the fixture's first line.</summary>
    public static void Require(params string[] components)
    {
        if (Missing(components) is { } missing)
        {
            throw new InvalidOperationException(missing);
        }
    }
}
