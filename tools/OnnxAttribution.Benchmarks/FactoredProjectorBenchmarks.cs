using BenchmarkDotNet.Attributes;
using OnnxAttribution.Runtime.Projection;

namespace OnnxAttribution.Benchmarks;

/// <summary>
/// FactoredProjector.ProjectBatch on one U-Net-like layer, batch 16. Shapes (inDim × outDim @ S positions):
/// a 3×3 conv 96→64 at 8×8 (864 × 64 @ 64), a 3×3 conv 32→32 at 16×16 (288 × 32 @ 256), a 3×3 conv 64→64 at 16×16
/// (576 × 64 @ 256).
/// </summary>
[MemoryDiagnoser]
public class FactoredProjectorBenchmarks : IFlopCount
{
    [Params("864x64@64", "288x32@256", "576x64@256")]
    public string Shape { get; set; } = "864x64@64";

    [Params(16, 32, 64)]
    public int KFactor { get; set; } = 16;

    public int Batch { get; set; } = 16;

    private FactoredProjector _projector = null!;
    private LayerFactors[] _factors = null!;
    private float[] _destinations = null!;

    private (int In, int Out, int S) Dims
    {
        get
        {
            var parts = Shape.Split('x', '@').Select(int.Parse).ToArray();
            return (parts[0], parts[1], parts[2]);
        }
    }

    /// <summary>2 × multiply-adds: S·in·kIn + S·out·kOut + kOut·S·kIn per example.</summary>
    public double Flops
    {
        get
        {
            var (inDim, outDim, s) = Dims;
            return 2.0 * Batch * s * ((double)inDim * KFactor + (double)outDim * KFactor + (double)KFactor * KFactor);
        }
    }

    [GlobalSetup]
    public void Setup()
    {
        var (inDim, outDim, s) = Dims;
        _projector = new FactoredProjector([("layer", inDim, outDim)], KFactor, KFactor, ProjectionKind.Rademacher, 42);
        _factors = [new LayerFactors(Data.Random(Batch * s * inDim, 1), Data.Random(Batch * s * outDim, 2), s)];
        _destinations = new float[Batch * _projector.OutputDim];
    }

    [Benchmark]
    public void ProjectBatch() => _projector.ProjectBatch(_factors, Batch, _destinations);
}
