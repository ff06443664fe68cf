using OpenPurse.Operator.Issuance;
using OpenPurse.Protocol;

namespace OpenPurse.Operator.TopUps;

/// <summary>The top-up maxima (OperatorOptions), parsed once.</summary>
/// <param name="PerTopUp">The most one top-up may add.</param>
/// <param name="Daily">The most one card may be topped up by in a UTC calendar day.</param>
/// <param name="BalanceMaxMinor">The e-purse card's maximum balance, in minor units of the maxima's currency.</param>
internal sealed record TopUpLimits(Money PerTopUp, Money Daily, long BalanceMaxMinor)
{
    /// <exception cref="InvalidOperationException">A maximum is not an amount above zero, or the two are in different currencies.</exception>
    public static TopUpLimits From(OperatorOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        if (!Money.TryParse(options.TopUpMax, out var perTopUp) || !Money.TryParse(options.DailyTopUpMax, out var daily)
            || perTopUp.MinorUnits <= 0 || daily.MinorUnits <= 0 || perTopUp.Currency != daily.Currency)
        {
            throw new InvalidOperationException("TopUpMax and DailyTopUpMax are amounts above zero in one currency, e.g. \"500.00 EUR\".");
        }

        return new TopUpLimits(perTopUp, daily, IssuingStation.DefaultBalanceMaxMinor);
    }
}
