using BenchmarkDotNet.Running;

// Thin entry point: BenchmarkDotNet parses the arguments (--filter, --job, ...). See docs/results/performance.md.
BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(args, OnnxAttribution.Benchmarks.BenchmarkConfig.Create());
