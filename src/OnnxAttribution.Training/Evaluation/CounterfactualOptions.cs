namespace OnnxAttribution.Training.Evaluation;

/// <summary>
/// A remove-and-retrain check: for each query, the stores' model retrained without each store's top k for that query and
/// without k random images (the same random models for all queries), compared by the query's loss and pixels.
/// </summary>
public sealed record CounterfactualOptions
{
    /// <summary>The evaluation folder (retrained models, results).</summary>
    public required string Out { get; init; }

    /// <summary>The method stores whose top k are removed, all on one model that records its training.</summary>
    public required IReadOnlyList<string> Stores { get; init; }

    /// <summary>k, top-attributed training images removed per query.</summary>
    public int RemoveTop { get; init; } = 50;

    /// <summary>Models retrained without k random images (shared by all queries).</summary>
    public int RandomModels { get; init; } = 3;

    /// <summary>Queries: images generated from seeds 0 … Q − 1.</summary>
    public int Queries { get; init; } = 50;

    /// <summary>Seed of the random removals.</summary>
    public long Seed { get; init; }

    /// <summary>DDIM steps of the generated queries.</summary>
    public int SamplingSteps { get; init; } = 50;

    /// <summary>ONNX Runtime intra-op threads; 0 for its default.</summary>
    public int Threads { get; init; }

    /// <summary>TorchSharp threads per training; 0 for its default.</summary>
    public int TrainThreads { get; init; }

    /// <summary>Where notes and progress go.</summary>
    public IEvaluationObserver Observer { get; init; } = SilentEvaluationObserver.Instance;
}
