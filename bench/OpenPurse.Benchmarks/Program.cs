using BenchmarkDotNet.Columns;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Running;

// Pick benchmarks with --filter, e.g. --filter '*CmacBenchmarks*'; see README.md.
// Medians beside means: these machines are noisy, and the median is what the notes quote.
var config = DefaultConfig.Instance.AddColumn(StatisticColumn.Median, StatisticColumn.P95);
// Named by a benchmark class, not typeof(Program): the operator, whose internals these benchmarks see, has a Program too.
BenchmarkSwitcher.FromAssembly(typeof(OpenPurse.Benchmarks.CmacBenchmarks).Assembly).Run(args, config);
