using BenchmarkDotNet.Running;

// Thin entry point: BenchmarkDotNet parses the arguments (--filter, --job, ...). See README.md.
BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(args, OnnxAttribution.Benchmarks.BenchmarkConfig.Create());
