using System.Collections.Concurrent;
using System.Diagnostics.Metrics;
using Microsoft.Extensions.Time.Testing;
using OpenPurse.Protocol;

namespace OpenPurse.Operator.Tests;

/// <summary>
/// The sweeper's counters (meter <c>OpenPurse.Operator</c>, docs/operations.md): each sweep counted,
/// each settlement it expired, each outcome it told a store by the store's answer. Read from this
/// node's own meter (its meter factory), not from other nodes the suite runs beside it.
/// </summary>
public sealed class SweeperMetricsTest
{
    private static readonly TimeSpan s_settlementTimeout = TimeSpan.FromMinutes(1);

    [Fact]
    public async Task Sweep_OneSettlementExpiredAndToldToItsStore_CountedOnceEach()
    {
        await using var store = await FakeStoreEndpoint.StartAsync();
        await using var kit = await OperatorKit.StartAsync(10_000, store.CompletionsUrl, settlementTimeout: s_settlementTimeout, sweepInterval: TimeSpan.Zero,
            time: new FakeTimeProvider(DateTimeOffset.UtcNow));
        using var counters = new Counters(kit.Service<IMeterFactory>());
        await kit.StartOkAsync(kit.Bill(new Money(1_000, Currency.Eur)));

        Assert.Equal((0, 0), await kit.SweepAsync()); // not yet due
        Assert.Equal(1, counters["openpurse.operator.sweeps"]);
        Assert.Equal(0, counters["openpurse.operator.sweeper.expired"]);

        ((FakeTimeProvider)kit.Time).Advance(s_settlementTimeout + TimeSpan.FromSeconds(1));
        Assert.Equal((1, 1), await kit.SweepAsync());

        Assert.Equal(2, counters["openpurse.operator.sweeps"]);
        Assert.Equal(1, counters["openpurse.operator.sweeper.expired"]);
        Assert.Equal(1, counters["openpurse.operator.sweeper.told{answer=acknowledged}"]);
        Assert.Equal(1, counters["openpurse.operator.settlements{state=expired}"]);

        Assert.Equal((0, 0), await kit.SweepAsync()); // the store acknowledged: nothing more to count
        Assert.Equal(3, counters["openpurse.operator.sweeps"]);
        Assert.Equal(1, counters["openpurse.operator.sweeper.expired"]);
        Assert.Equal(1, counters["openpurse.operator.sweeper.told{answer=acknowledged}"]);
    }

    /// <summary>The sums of the operator's counters of one node, by instrument and tags (<c>name{tag=value}</c>).</summary>
    private sealed class Counters : IDisposable
    {
        private readonly ConcurrentDictionary<string, long> _sums = new(StringComparer.Ordinal);
        private readonly MeterListener _listener = new();

        public Counters(IMeterFactory node)
        {
            _listener.InstrumentPublished = (instrument, listener) =>
            {
                if (instrument.Meter.Name == OperatorMetrics.MeterName && ReferenceEquals(instrument.Meter.Scope, node))
                {
                    listener.EnableMeasurementEvents(instrument);
                }
            };
            _listener.SetMeasurementEventCallback<long>((instrument, value, tags, _) =>
            {
                var labels = string.Join(",", tags.ToArray().Select(t => $"{t.Key}={t.Value}"));
                _sums.AddOrUpdate(labels.Length == 0 ? instrument.Name : $"{instrument.Name}{{{labels}}}", value, (_, sum) => sum + value);
                if (labels.Length > 0)
                {
                    _sums.AddOrUpdate(instrument.Name, value, (_, sum) => sum + value);
                }
            });
            _listener.Start();
        }

        public long this[string key] => _sums.GetValueOrDefault(key);

        public void Dispose() => _listener.Dispose();
    }
}
