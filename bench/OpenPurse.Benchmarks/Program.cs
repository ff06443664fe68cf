using BenchmarkDotNet.Columns;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Running;

// Pick benchmarks with --filter, e.g. --filter '*CmacBenchmarks*'; see README.md.
// Medians beside means: these machines are noisy, and the median is what the notes quote.
var config = DefaultConfig.Instance.AddColumn(StatisticColumn.Median, StatisticColumn.P95);
BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(args, config);
