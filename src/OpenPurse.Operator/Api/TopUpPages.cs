using System.Globalization;
using OpenPurse.Hosting;
using OpenPurse.Operator.TopUps;

namespace OpenPurse.Operator.Api;

/// <summary>
/// The top-up pages (FIG. 25 to 32) a card holder opens in their browser, on the public listener
/// only (every endpoint without <see cref="AdminSurface"/> is kept there): the page asks the wallet
/// agent on the holder's machine for the card and for the top-up, and the credit card's data is
/// typed only into the agent's own page, never into this one.
/// </summary>
internal static class TopUpPages
{
    /// <summary>
    /// Maps <c>/</c> and <c>/topup.js</c> (and the shared stylesheet). The page offers the currency
    /// of the top-up maxima, the one currency this node tops cards up in, and says the most one
    /// top-up may add.
    /// </summary>
    public static void MapTopUpPages(this WebApplication app, string agentOrigin, TopUpLimits limits)
    {
        ArgumentNullException.ThrowIfNull(limits);
        var currency = limits.PerTopUp.Currency;
        app.MapPages(agentOrigin, typeof(TopUpPages).Assembly, [("/", "topup.html"), ("/topup.js", "topup.js")], new Dictionary<string, string>(StringComparer.Ordinal)
        {
            // "code:minor digits", separated by spaces: the script builds the currency list from it.
            ["{Currencies}"] = $"{currency.Code}:{currency.MinorDigits.ToString(CultureInfo.InvariantCulture)}",
            ["{TopUpMax}"] = limits.PerTopUp.ToString(),
        });
    }
}
