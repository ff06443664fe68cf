using Deque.AxeCore.Commons;
using Deque.AxeCore.Playwright;
using Microsoft.Playwright;

namespace OpenPurse.Browser.Tests;

/// <summary>
/// The screens of the specification's figures as the tests meet them: each one waited for until a
/// person sees it, checked with axe (no serious or critical finding), and, where the test says so,
/// captured as docs/screens/fig-NN.png of the repository for docs/browser.md.
/// </summary>
internal static class Screens
{
    /// <summary>Where the captures go: docs/screens of the repository these tests were built from.</summary>
    public static string Directory { get; } = Path.Combine(RepositoryRoot(), "docs", "screens");

    /// <summary>
    /// Waits until <paramref name="selector"/> (a figure's section) is visible on <paramref name="page"/>,
    /// checks the page with axe, and captures it as FIG. <paramref name="figure"/> when <paramref name="capture"/>.
    /// </summary>
    public static async Task<ILocator> SeeAsync(IPage page, string selector, int figure, bool capture)
    {
        var screen = page.Locator(selector);
        await screen.WaitForAsync(new() { State = WaitForSelectorState.Visible });
        await CheckAccessibleAsync(page, $"FIG. {figure} ({selector})");
        if (capture)
        {
            System.IO.Directory.CreateDirectory(Directory);
            await page.ScreenshotAsync(new() { Path = Path.Combine(Directory, $"fig-{figure:00}.png") });
        }

        return screen;
    }

    /// <summary>Axe's rules over the page as it is: a serious or critical finding fails the test, with what and where.</summary>
    public static async Task CheckAccessibleAsync(IPage page, string what)
    {
        var result = await page.RunAxe();
        var findings = result.Violations
            .Where(v => v.Impact is "serious" or "critical")
            .Select(v => $"{v.Id} ({v.Impact}): {v.Help} at {string.Join(", ", v.Nodes.Select(n => n.Target?.ToString()))}")
            .ToList();
        Assert.True(findings.Count == 0, $"{what} on {page.Url} has accessibility findings:\n{string.Join('\n', findings)}");
    }

    private static string RepositoryRoot()
    {
        for (var directory = new DirectoryInfo(AppContext.BaseDirectory); directory is not null; directory = directory.Parent)
        {
            if (File.Exists(Path.Combine(directory.FullName, "OpenPurse.slnx")))
            {
                return directory.FullName;
            }
        }

        throw new InvalidOperationException($"No OpenPurse.slnx above {AppContext.BaseDirectory}: the tests run outside the repository.");
    }
}
