using BenchmarkDotNet.Running;

// Pick benchmarks with --filter, e.g. --filter '*CmacBenchmarks*'; see README.md.
BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(args);
