using System.Numerics.Tensors;
using BenchmarkDotNet.Attributes;
using OnnxAttribution.Runtime.Projection;

namespace OnnxAttribution.Benchmarks;

/// <summary>
/// DenseProjector.ProjectBatch at the shipped model's size: p = 500,000, batch 16 (featurization) and batch 1 (one query,
/// which pays for generating the projection's entries alone).
/// </summary>
[MemoryDiagnoser]
public class DenseProjectorBenchmarks : IFlopCount
{
    [Params(4096, 1024)]
    public int K { get; set; }

    [Params(ProjectionKind.Rademacher, ProjectionKind.Gaussian)]
    public ProjectionKind Kind { get; set; }

    public int P { get; set; } = 500_000;

    [Params(16, 1)]
    public int Batch { get; set; } = 16;

    private DenseProjector _projector = null!;
    private float[] _gradients = null!;
    private float[] _destinations = null!;

    public double Flops => 2.0 * P * K * Batch;

    [GlobalSetup]
    public void Setup()
    {
        _projector = new DenseProjector(P, K, Kind, 42);
        _gradients = Data.Random(P * Batch, 1);
        _destinations = new float[K * Batch];
    }

    [Benchmark]
    public void ProjectBatch() => _projector.ProjectBatch(_gradients, Batch, _destinations);
}

/// <summary>
/// Baselines at a smaller p (they are 10–100× slower): the scalar definition (one entry at a time, as
/// <see cref="ProjectionRowRng"/> defines it), and a TensorPrimitives version (P generated in row blocks, then one
/// <see cref="TensorPrimitives.MultiplyAdd(ReadOnlySpan{float}, float, ReadOnlySpan{float}, Span{float})"/> per row of P and example,
/// two threads over column halves) against DenseProjector on the same sizes. Compare GFLOP/s.
/// </summary>
public class DenseBaselineBenchmarks : IFlopCount
{
    [Params(ProjectionKind.Rademacher, ProjectionKind.Gaussian)]
    public ProjectionKind Kind { get; set; }

    public int P { get; set; } = 20_000;

    public int K { get; set; } = 1024;

    public int Batch { get; set; } = 16;

    private DenseProjector _projector = null!;
    private float[] _gradients = null!;
    private float[] _destinations = null!;

    public double Flops => 2.0 * P * K * Batch;

    [GlobalSetup]
    public void Setup()
    {
        _projector = new DenseProjector(P, K, Kind, 42);
        _gradients = Data.Random(P * Batch, 1);
        _destinations = new float[K * Batch];
    }

    [Benchmark(Baseline = true)]
    public void Scalar()
    {
        float s = _projector.Scale;
        Array.Clear(_destinations);
        for (int r = 0; r < P; r++)
        {
            var rng = ProjectionRowRng.Create(42, 0, r);
            for (int j = 0; j < K; j++)
            {
                float entry = Kind == ProjectionKind.Rademacher ? (rng.IsNegative(j) ? -s : s) : s * rng.Normal(j);
                for (int b = 0; b < Batch; b++)
                {
                    _destinations[b * K + j] += entry * _gradients[b * P + r];
                }
            }
        }
    }

    [Benchmark]
    public void TensorPrimitivesAxpy()
    {
        const int rowBlock = 128;
        float s = _projector.Scale;
        Array.Clear(_destinations);
        Parallel.For(0, 2, half =>
        {
            int c0 = half * K / 2, width = K / 2;
            var block = new float[rowBlock * width];
            for (int r0 = 0; r0 < P; r0 += rowBlock)
            {
                int rows = Math.Min(rowBlock, P - r0);
                for (int i = 0; i < rows; i++)
                {
                    var row = block.AsSpan(i * width, width);
                    var rng = ProjectionRowRng.Create(42, 0, r0 + i);
                    if (Kind == ProjectionKind.Rademacher)
                    {
                        var masks = System.Runtime.InteropServices.MemoryMarshal.Cast<float, uint>(row);
                        rng.FillSignMasks(c0, masks);
                        for (int j = 0; j < masks.Length; j++)
                        {
                            masks[j] ^= BitConverter.SingleToUInt32Bits(s);
                        }
                    }
                    else
                    {
                        rng.FillNormals(c0, row);
                        TensorPrimitives.Multiply(row, s, row);
                    }
                }
                for (int b = 0; b < Batch; b++)
                {
                    var y = _destinations.AsSpan(b * K + c0, width);
                    for (int i = 0; i < rows; i++)
                    {
                        TensorPrimitives.MultiplyAdd(block.AsSpan(i * width, width), _gradients[b * P + r0 + i], y, y);
                    }
                }
            }
        });
    }

    [Benchmark]
    public void DenseProjector() => _projector.ProjectBatch(_gradients, Batch, _destinations);
}

internal static class Data
{
    public static float[] Random(int length, int seed)
    {
        var random = new Random(seed);
        var a = new float[length];
        for (int i = 0; i < a.Length; i++)
        {
            a[i] = (float)(random.NextDouble() * 2 - 1);
        }
        return a;
    }
}

/// <summary>
/// One query's projection at p = 500,000, Rademacher: the dense projector (P generated per call) against the sign tables
/// (P's signs cached once as bits, summed through 16-entry lookup tables). Both in one run, so their ratio is fair.
/// </summary>
public class QueryProjectionBenchmarks : IFlopCount
{
    [Params(4096, 2048, 1024)]
    public int K { get; set; }

    public int P { get; set; } = 500_000;

    private DenseProjector _projector = null!;
    private SignTableProjector _tables = null!;
    private float[] _gradient = null!;
    private float[] _destination = null!;

    public double Flops => 2.0 * P * K;

    [GlobalSetup]
    public void Setup()
    {
        _projector = new DenseProjector(P, K, ProjectionKind.Rademacher, 42);
        _tables = new SignTableProjector(_projector);
        _gradient = Data.Random(P, 1);
        _destination = new float[K];
    }

    [Benchmark(Baseline = true)]
    public void Dense() => _projector.Project(_gradient, _destination);

    [Benchmark]
    public void SignTables() => _tables.Project(_gradient, _destination);
}
