using OnnxAttribution.Primitives;
using OnnxAttribution.Runtime.Projection;

namespace OnnxAttribution.Core.Attribution;

/// <summary>
/// Features of images: averaged measurement gradients, projected (TRAK's φ = Pᵀ∇f, averaged over the plan's pairs).
/// Training rows and queries go through the same instance, so they are comparable by construction.
/// </summary>
internal sealed class FeatureExtractor
{
    private readonly GradientSource _source;
    private readonly DenseProjector? _dense;
    private readonly FactoredProjector? _factored;
    private readonly IReadOnlyList<(string Layer, string A, string G, int Positions, int InDim, int OutDim)> _factors = [];
    private readonly Lazy<SignTableProjector?> _signTables;
    private readonly Runtime.Gradients.ReducedGradientSession? _reduced;

    /// <summary>Creates the extractor.</summary>
    /// <param name="source">The gradient source.</param>
    /// <param name="settings">The projection.</param>
    /// <param name="factored">For factored projection: the projector the source's graph was built with when the graph projects its
    /// factors itself (<see cref="GradientSource.ProjectedFactorsOutput"/>); null to derive it from the graph's a.*/g.* outputs.</param>
    /// <param name="reduced">The source's graph reduced in ONNX Runtime for these settings (<see cref="Runtime.GradientReduction.Device"/>),
    /// or null to sum and project on the host.</param>
    /// <exception cref="UserInputException">The settings ask for what the factored projector cannot give.</exception>
    /// <exception cref="GraphContractException">The graph has neither factors nor a projection of the given projector's width.</exception>
    public FeatureExtractor(GradientSource source, ProjectionSettings settings, FactoredProjector? factored = null, Runtime.Gradients.ReducedGradientSession? reduced = null)
    {
        ArgumentNullException.ThrowIfNull(source);
        ArgumentNullException.ThrowIfNull(settings);
        ArgumentOutOfRangeException.ThrowIfLessThan(settings.Dim, 1);
        _source = source;
        Settings = settings;
        _signTables = new(CreateSignTables);
        if (settings.Kind == ProjectorKind.Dense)
        {
            _dense = settings.DenseProjector(source.Dimension);
            Dim = settings.Dim;
        }
        else
        {
            if (source.Plan.NormalizePairs)
            {
                throw new UserInputException("per-pair gradient normalisation needs the dense projector: the factored projection never forms the whole gradient whose norm it divides by");
            }
            _factors = source.Factors();
            if (source.ProjectedFactorsOutput is not null)
            {
                _factored = factored
                    ?? throw new GraphContractException("the gradient graph projects its Kronecker factors itself (projected_factors); the extractor needs the projector it was built with");
                if (source.ProjectedFactorsWidth != factored.OutputDim || factored.Seed != unchecked((ulong)settings.Seed) || factored.Kind != settings.Distribution)
                {
                    throw new GraphContractException(
                        $"the gradient graph's projected_factors holds {source.ProjectedFactorsWidth} values per example; the projector gives {factored.OutputDim} " +
                        $"(seed {factored.Seed}, {factored.Kind}) where the settings ask for seed {settings.Seed}, {settings.Distribution}");
                }
            }
            else
            {
                if (_factors.Count == 0)
                {
                    throw new GraphContractException("the factored projector needs a gradient graph with Kronecker factors (a.*, g.* outputs); export it with factors");
                }
                var layers = _factors.Select(f => (f.Layer, f.InDim, f.OutDim)).ToList();
                if (factored is not null && !factored.Layers.SequenceEqual(layers))
                {
                    throw new GraphContractException($"the gradient graph's factor layers ({string.Join(", ", layers.Select(l => l.Layer))}) " +
                        $"are not the projector's ({string.Join(", ", factored.Layers.Select(l => l.Layer))})");
                }
                _factored = factored ?? CreateFactored(layers, settings);
            }
            Dim = _factored.OutputDim;
        }
        _reduced = reduced is not null && !source.Plan.NormalizePairs && source.CotangentFromOutput && reduced.Dim == Dim
            && reduced.Dense == (_dense is not null) ? reduced : null;
    }

    /// <summary>Whether <see cref="Extract(ReadOnlySpan{float}, int, Span{float}, Span{float}, ReadOnlySpan{long}, Span{float}, int, ReadOnlySpan{long})"/>
    /// sums and projects in ONNX Runtime's graph (<see cref="Runtime.GradientReduction.Device"/>).</summary>
    public bool ReducedInGraph => _reduced is not null;

    /// <summary>
    /// The factored projector of <paramref name="settings"/> for these layers: the same kIn = kOut for every layer, the largest
    /// square that keeps layers × k² within the requested k.
    /// </summary>
    public static FactoredProjector CreateFactored(IReadOnlyList<(string Layer, int InDim, int OutDim)> layers, ProjectionSettings settings)
    {
        ArgumentNullException.ThrowIfNull(layers);
        ArgumentNullException.ThrowIfNull(settings);
        int side = Math.Max(1, (int)Math.Floor(Math.Sqrt((double)settings.Dim / Math.Max(1, layers.Count))));
        return new FactoredProjector(layers, side, side, settings.Distribution, unchecked((ulong)settings.Seed));
    }

    /// <summary>The projection as requested: kind, entry distribution, requested k and seed.</summary>
    public ProjectionSettings Settings { get; }

    /// <summary>The feature length k actually produced (for factored: layers × side², at most the requested k).</summary>
    public int Dim { get; }

    /// <summary>The per-example gradients that are projected.</summary>
    public GradientSource Source => _source;

    /// <summary>The factored projector (null for a dense one): per-layer P_in, P_out for projecting weight-shaped matrices.</summary>
    public FactoredProjector? Factored => _factored;

    /// <summary>Features of a batch of clean images: <paramref name="count"/> rows of <see cref="Dim"/>.</summary>
    /// <param name="images">B clean images, B·C·H·W values.</param>
    /// <param name="count">B.</param>
    /// <param name="destination">B·<see cref="Dim"/> values, overwritten.</param>
    /// <param name="losses">Empty, or B values: each example's diffusion loss averaged over the plan's pairs (see
    /// <see cref="GradientSource.Compute(ReadOnlySpan{float}, int, Span{float}, Span{float}, ReadOnlySpan{long}, ReadOnlySpan{long})"/>).</param>
    /// <param name="rows">The images' dataset rows (a one-random-timestep plan needs them).</param>
    /// <param name="norms">Empty, or B values that receive the L2 norm of each unprojected gradient (dense projection only).</param>
    /// <exception cref="UserInputException">Norms are asked of the factored projector, which never forms the gradient.</exception>
    /// <param name="streams">Where <see cref="SharesProjectionAcrossBatch"/>: how many examples' gradient runs go at once inside this
    /// call (the caller then gives the whole batch to one call); otherwise ignored.</param>
    /// <param name="conditions">One condition value per image for a conditional model (<see cref="GradientSource.Condition"/>); empty otherwise.</param>
    public void Extract(ReadOnlySpan<float> images, int count, Span<float> destination, Span<float> losses = default, ReadOnlySpan<long> rows = default,
        Span<float> norms = default, int streams = 1, ReadOnlySpan<long> conditions = default)
    {
        _source.RequireConditions(conditions, count);
        if (destination.Length != (long)count * Dim || (losses.Length != 0 && losses.Length != count) || (!norms.IsEmpty && norms.Length != count))
        {
            throw new ArgumentException($"{count} feature rows of {Dim} need {(long)count * Dim} values, got {destination.Length}; " +
                $"losses and norms 0 or {count}, got {losses.Length} and {norms.Length}");
        }
        if (_reduced is not null && ExtractReduced(images, count, destination, losses, rows, norms, conditions))
        {
            return;
        }
        if (_dense is not null)
        {
            ExtractDense(images, count, destination, losses, rows, norms, SharesProjectionAcrossBatch ? streams : 1, conditions);
            return;
        }
        if (!norms.IsEmpty)
        {
            throw new UserInputException("gradient norms need the dense projector: the factored projector never forms the whole gradient");
        }
        var acc = new float[count * Dim];
        var pairFeatures = new float[count * Dim];
        var loss = new double[count];
        int lossCount = losses.Length;
        _source.ForEachPair(images, count, FactoredOutputs(), rows, pair =>
        {
            AddFactoredPair(pair.Outputs, count, pair.Weight, pairFeatures, acc);
            // The loss costs a pass over the batch's predictions: only when asked for.
            for (int b = 0; b < lossCount; b++)
            {
                loss[b] += pair.Weight * pair.Loss(b);
            }
        }, null, conditions);
        acc.CopyTo(destination);
        for (int b = 0; b < losses.Length; b++)
        {
            losses[b] = (float)loss[b];
        }
    }

    /// <summary>
    /// The most bytes of whole per-example gradients one dense extraction call holds at once (default 1 GiB; the environment
    /// variable <c>ONNX_ATTRIBUTION_DENSE_BUDGET_MB</c> sets it). A batch whose gradients would take more is computed and
    /// projected in chunks of as many examples as fit (at least one), into a buffer the extractor keeps and reuses, so the
    /// memory of dense featurization is bounded whatever the batch size and the model's size: one budget for the whole batch
    /// where P is generated as it projects (<see cref="SharesProjectionAcrossBatch"/>, a large model), one per stream where
    /// the sign cache projects (a small model, whose batch fits anyway). At p = 35.7M (143 MB a gradient) the default holds
    /// 7 examples, and P is generated once for them. Chunks change the speed, never the bits: each example's gradient and
    /// projection are computed on their own.
    /// </summary>
    public static long DenseBudgetBytes { get; } = ReadDenseBudget();

    private static long ReadDenseBudget()
    {
        const long fallback = 1L << 30;
        var text = Environment.GetEnvironmentVariable("ONNX_ATTRIBUTION_DENSE_BUDGET_MB");
        if (string.IsNullOrWhiteSpace(text))
        {
            return fallback;
        }
        return long.TryParse(text, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out long mb) && mb is >= 1 and <= 1L << 20
            ? mb << 20
            : throw new SettingException("ONNX_ATTRIBUTION_DENSE_BUDGET_MB", text, "must be a whole number of MiB between 1 and 1048576");
    }

    /// <summary>This extractor's budget (<see cref="DenseBudgetBytes"/>; tests set a smaller one).</summary>
    internal long DenseBudget { get; set; } = DenseBudgetBytes;

    /// <summary>Gradient buffers for dense extraction, kept between calls (one per concurrent call at most).</summary>
    private readonly System.Collections.Concurrent.ConcurrentBag<float[]> _denseBuffers = [];

    /// <summary>How many examples' whole gradients one dense chunk holds for a gradient of <paramref name="p"/> values.</summary>
    internal static int DenseChunk(long p, int count, long budgetBytes) =>
        (int)Math.Clamp(budgetBytes / Math.Max(1, p * sizeof(float)), 1, Math.Max(1, Math.Min(count, Array.MaxLength / Math.Max(1, p))));

    /// <summary>
    /// Whether dense extraction generates P as it projects (Gaussian entries, or a Rademacher P too large for the sign cache:
    /// a large model). Generating P is then the cost, shared by all the gradients projected at once, so the featurizer gives
    /// one call the whole batch and the call runs the examples' gradients on <c>streams</c> threads itself, then projects
    /// as many as the budget holds together.
    /// </summary>
    internal bool SharesProjectionAcrossBatch => _dense is not null && _reduced is null && _signTables.Value is null;

    private void ExtractDense(ReadOnlySpan<float> images, int count, Span<float> destination, Span<float> losses, ReadOnlySpan<long> rows, Span<float> norms,
        int streams, ReadOnlySpan<long> conditions)
    {
        long p = _source.Dimension;
        int chunk = DenseChunk(p, count, DenseBudget);
        int d = images.Length / Math.Max(1, count);
        if (!_denseBuffers.TryTake(out var buffer) || buffer.LongLength < chunk * p)
        {
            buffer = GC.AllocateUninitializedArray<float>(checked((int)(chunk * p)));
        }
        try
        {
            for (int start = 0; start < count; start += chunk)
            {
                int n = Math.Min(chunk, count - start);
                if (streams > 1 && n > 1)
                {
                    ComputeInStreams(images.Slice(start * d, n * d), n, buffer, losses.IsEmpty ? default : losses.Slice(start, n),
                        rows.IsEmpty ? default : rows.Slice(start, n), streams, conditions.IsEmpty ? default : conditions.Slice(start, n));
                }
                else
                {
                    _source.Compute(images.Slice(start * d, n * d), n, buffer, 0, losses.IsEmpty ? default : losses.Slice(start, n),
                        rows.IsEmpty ? default : rows.Slice(start, n), conditions.IsEmpty ? default : conditions.Slice(start, n));
                }
                var grads = buffer.AsSpan(0, checked((int)(n * p)));
                for (int b = 0; b < n && !norms.IsEmpty; b++)
                {
                    norms[start + b] = System.Numerics.Tensors.TensorPrimitives.Norm(grads.Slice(checked((int)(b * p)), checked((int)p)));
                }
                ProjectDense(grads, n, destination.Slice(start * Dim, n * Dim));
            }
        }
        finally
        {
            _denseBuffers.Add(buffer);
        }
    }

    /// <summary>The whole gradients of <paramref name="count"/> examples into <paramref name="buffer"/>, up to <paramref name="streams"/> examples' runs at once.</summary>
    private void ComputeInStreams(ReadOnlySpan<float> images, int count, float[] buffer, Span<float> losses, ReadOnlySpan<long> rows, int streams,
        ReadOnlySpan<long> conditions)
    {
        // The lambda cannot hold spans: the chunk's inputs as arrays (a few images), the losses gathered and copied back.
        var x = images.ToArray();
        var r = rows.IsEmpty ? null : rows.ToArray();
        var y = conditions.IsEmpty ? null : conditions.ToArray();
        var l = losses.IsEmpty ? null : new float[count];
        int d = x.Length / count;
        long p = _source.Dimension;
        int parts = Math.Min(streams, count);
        try
        {
            Parallel.For(0, parts, new ParallelOptions { MaxDegreeOfParallelism = parts }, part =>
            {
                int from = (int)((long)count * part / parts), to = (int)((long)count * (part + 1) / parts), n = to - from;
                _source.Compute(x.AsSpan(from * d, n * d), n, buffer, from * p, l is null ? default : l.AsSpan(from, n), r is null ? default : r.AsSpan(from, n),
                    y is null ? default : y.AsSpan(from, n));
            });
        }
        catch (AggregateException e) when (e.InnerExceptions.Count >= 1)
        {
            System.Runtime.ExceptionServices.ExceptionDispatchInfo.Capture(e.InnerExceptions[0]).Throw();
        }
        l?.CopyTo(losses);
    }

    /// <summary>
    /// The features through the reduced graph, one run per example and chunk of pairs; false (nothing written) when norms are
    /// asked and the plan's pairs take more than one run (the norm is of the sum over all of them).
    /// </summary>
    private bool ExtractReduced(ReadOnlySpan<float> images, int count, Span<float> destination, Span<float> losses, ReadOnlySpan<long> rows, Span<float> norms,
        ReadOnlySpan<long> conditions)
    {
        var outputs = _dense is not null ? _source.GradientOutputs : [_source.ProjectedFactorsOutput!];
        bool random = _source.RequireRows(rows, count);
        if (!norms.IsEmpty && count > 0 && _source.PairRuns(outputs, random ? rows[0] : 0).Count > 1)
        {
            return false;
        }
        var weights = Measurement.CotangentWeights(_source.Plan.Measurement, _source.ExampleLength);
        int d = _source.ExampleLength;
        for (int b = 0; b < count; b++)
        {
            var features = destination.Slice(b * Dim, Dim);
            features.Clear();
            double loss = 0;
            float norm = 0;
            foreach (var run in _source.PairRuns(outputs, random ? rows[b] : 0))
            {
                norm = _reduced!.Run(images.Slice(b * d, d), run, GradientSource.RunConditions(conditions, b, run.Count), weights, features, ref loss);
            }
            if (losses.Length > 0)
            {
                losses[b] = (float)loss;
            }
            if (!norms.IsEmpty)
            {
                norms[b] = norm;
            }
        }
        return true;
    }

    /// <summary>Features of a batch of pairs (<see cref="GradientSource.Clean"/> or <see cref="GradientSource.Noisy"/>): one row of <see cref="Dim"/> per example.</summary>
    public void Extract(ExampleBatch batch, Span<float> destination)
    {
        ArgumentNullException.ThrowIfNull(batch);
        int count = batch.Count;
        if (destination.Length != (long)count * Dim)
        {
            throw new ArgumentException($"{count} feature rows of {Dim} need {(long)count * Dim} values, got {destination.Length}");
        }
        if (_reduced is not null && batch.CleanImages is { } images)
        {
            ExtractReduced(images, count, destination, default, default, default, batch.Conditions);
            return;
        }
        if (_dense is not null)
        {
            var grads = new float[count * _source.Dimension];
            if (batch.CleanImages is { } clean && !_source.Plan.NormalizePairs)
            {
                // Clean images (a query's): their runs' gradients read in place, the same bits as pair by pair (a batch of
                // pairs never normalises them, so a plan that does keeps the pair-by-pair way).
                _source.Compute(clean, count, grads.AsSpan(), conditions: batch.Conditions);
            }
            else
            {
                _source.Compute(batch, grads);
            }
            ProjectDense(grads, count, destination);
            return;
        }
        var acc = new float[count * Dim];
        var pairFeatures = new float[count * Dim];
        batch.Run(FactoredOutputs(), (values, weight) => AddFactoredPair(values, count, weight, pairFeatures, acc));
        acc.CopyTo(destination);
    }

    /// <summary>
    /// The largest sign cache a dense Rademacher extractor keeps (<see cref="SignTableProjector"/>): 1 GiB, which covers
    /// p·k ≤ 8.6·10⁹ (p = 2 million parameters at k = 4096). Larger projections generate P as they go (<see cref="DenseProjector"/>).
    /// </summary>
    public const long SignCacheLimitBytes = 1L << 30;

    /// <summary>
    /// y = Pᵀg for each of <paramref name="count"/> gradients. A Rademacher P whose signs fit in <see cref="SignCacheLimitBytes"/>
    /// is evaluated through the shared sign cache one gradient at a time, for training rows and queries alike, so a training
    /// image queried gives its own row's bits; otherwise the dense projector generates P once per batch.
    /// </summary>
    private void ProjectDense(ReadOnlySpan<float> grads, int count, Span<float> destination)
    {
        if (_signTables.Value is not { } tables)
        {
            _dense!.ProjectBatch(grads, count, destination);
            return;
        }
        int p = checked((int)_source.Dimension);
        for (int b = 0; b < count; b++)
        {
            tables.Project(grads.Slice(b * p, p), destination.Slice(b * Dim, Dim));
        }
    }

    private SignTableProjector? CreateSignTables() =>
        _dense is { Kind: ProjectionKind.Rademacher } dense && SignTableProjector.CacheBytesFor(dense.InputDim, dense.OutputDim) <= SignCacheLimitBytes
            ? SignTableProjector.Shared(dense)
            : null;

    /// <summary>Whether the gradient graph computes the factored projection itself.</summary>
    private bool ProjectedInGraph => _source.ProjectedFactorsOutput is not null;

    /// <summary>The gradient-graph outputs factored features are made from: the graph's own projection, or the factors.</summary>
    private IReadOnlyList<string> FactoredOutputs() =>
        ProjectedInGraph ? [_source.ProjectedFactorsOutput!] : _factors.SelectMany(f => new[] { f.A, f.G }).ToList();

    /// <summary>acc += weight · (one pair's factored features of <paramref name="count"/> examples); scratch holds count·k values.</summary>
    private void AddFactoredPair(Dictionary<string, float[]> values, int count, float weight, float[] scratch, float[] acc)
    {
        if (ProjectedInGraph)
        {
            System.Numerics.Tensors.TensorPrimitives.MultiplyAdd(values[_source.ProjectedFactorsOutput!], weight, acc, acc);
            return;
        }
        _factored!.ProjectBatch(_factors.Select(f => new LayerFactors(values[f.A], values[f.G], f.Positions)).ToList(), count, scratch);
        System.Numerics.Tensors.TensorPrimitives.MultiplyAdd(scratch, weight, acc, acc);
    }
}
