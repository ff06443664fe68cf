using Microsoft.Playwright;
using OpenPurse.Testing;

namespace OpenPurse.Browser.Tests;

/// <summary>
/// The system's own chromium (/usr/bin/chromium), headless, with a profile of its own in a new
/// temporary directory that goes with it. Nothing is downloaded: Playwright drives the browser
/// that is installed, and a machine without it fails (or, outside CI, does not run) the test with
/// the package to install (<see cref="Components"/>).
/// </summary>
internal sealed class Chromium : IAsyncDisposable
{
    /// <summary>The size every page is shown (and captured) at.</summary>
    public static readonly ViewportSize Viewport = new() { Width = 1000, Height = 700 };

    // No sandbox (tests may run as root, where chromium's sandbox refuses to start); and none of
    // chromium's own traffic to the outside (updates, sync, field trials): the only servers a test
    // page reaches are the test's own on loopback.
    private static readonly string[] s_arguments =
    [
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
    ];

    private readonly IPlaywright _playwright;
    private readonly string _profile;

    private Chromium(IPlaywright playwright, string profile, IBrowserContext context)
    {
        _playwright = playwright;
        _profile = profile;
        Context = context;
    }

    /// <summary>The browser's one context (its profile): pages opened by a page's link come here too.</summary>
    public IBrowserContext Context { get; }

    public static async Task<Chromium> LaunchAsync()
    {
        Components.Require(Components.Chromium);
        var profile = Directory.CreateTempSubdirectory("openpurse-chromium-").FullName;
        var playwright = await Playwright.CreateAsync();
        try
        {
            var context = await playwright.Chromium.LaunchPersistentContextAsync(profile, new BrowserTypeLaunchPersistentContextOptions
            {
                ExecutablePath = Components.PathOf(Components.Chromium),
                Headless = true,
                Args = s_arguments,
                ViewportSize = Viewport,
                Locale = "en-GB",
                TimezoneId = "UTC",
            });
            // A step that waits longer than this has failed; the page's own polling is faster. The
            // same for assertions on a page, which otherwise give up after 5 s on a busy machine.
            context.SetDefaultTimeout(30_000);
            Assertions.SetDefaultExpectTimeout(30_000);
            return new Chromium(playwright, profile, context);
        }
        catch
        {
            playwright.Dispose();
            Directory.Delete(profile, recursive: true);
            throw;
        }
    }

    /// <summary>A new tab.</summary>
    public Task<IPage> NewPageAsync() => Context.NewPageAsync();

    public async ValueTask DisposeAsync()
    {
        await Context.CloseAsync();
        _playwright.Dispose();
        try
        {
            Directory.Delete(_profile, recursive: true);
        }
        catch (IOException)
        {
            // A file chromium's last process still held; the temporary directory's cleaner takes it.
        }
    }
}
