using System.Numerics.Tensors;
using OnnxAttribution.Core.Data;
using OnnxAttribution.Primitives;
using OnnxAttribution.Runtime;
using OnnxAttribution.Store;

namespace OnnxAttribution.Core.Attribution.Methods;

/// <summary>
/// Pixel-space nearest neighbours (docs/methods.md, "Baselines every table must carry"; the raw-pixel baseline of D-TRAK's
/// comparisons, Zheng et al. 2024): τ(q)ᵢ = cos(q, xᵢ) (default) or −‖q − xᵢ‖₂ over the C·H·W pixels in [-1, 1].
/// No model is involved.
/// </summary>
/// <remarks>
/// The store holds only source.json and method.json: opening it loads the training images again from source.json and refuses
/// them unless their fingerprint is the one recorded at build, so row i is still image i. Pixels are as featurized (resized to
/// the model's size); cosine on [-1, 1] pixels compares patterns around mid-grey, so an all-black and an all-white image are
/// opposite. A zero image has cosine 0 with everything.
/// </remarks>
internal sealed class PixelMethod : AttributionMethod<PixelSettings>
{
    /// <inheritdoc/>
    public override string Name => "pixel";

    /// <inheritdoc/>
    public override MethodCapabilities Capabilities { get; } = new() { ConditionalModels = true };

    /// <inheritdoc/>
    public override string Summary => "pixel-space nearest neighbours: cosine similarity (or negative L2 distance) to the query image";

    /// <inheritdoc/>
    protected override void Build(MethodBuildRequest request, PixelSettings settings, CancellationToken cancel) =>
        MethodManifest.SaveRecordOnly(request, Name, new PixelStoreSettings(settings.PixelMetric, request.Data.Count, request.Data.Fingerprint));

    /// <exception cref="UserInputException">The store is incomplete, or its dataset no longer loads as it did at build.</exception>
    public override IAttributionScorer Open(string storeDirectory, string modelDirectory, SessionSettings session)
    {
        var settings = MethodManifest.Require(storeDirectory, Name).SettingsAs<PixelStoreSettings>(storeDirectory);
        var source = StoreSource.TryLoad(storeDirectory)
            ?? throw new UserInputException($"{Path.Combine(storeDirectory, StoreFiles.Source)} not found: the pixel baseline reads the training images it names");
        var data = source.LoadData();
        if (data.Count != settings.Rows || data.Fingerprint != settings.DatasetFingerprint)
        {
            throw new UserInputException($"{Path.Combine(storeDirectory, StoreFiles.Source)}: data '{source.Data}' subset '{source.Subset}' now gives " +
                $"{data.Count} images with fingerprint {data.Fingerprint[..12]}…; the store was built on {settings.Rows} with " +
                $"{settings.DatasetFingerprint[..Math.Min(12, settings.DatasetFingerprint.Length)]}…; build it again");
        }
        return new Scorer(settings.Metric, data);
    }

    /// <summary>Every row's score for one query image, by <paramref name="metric"/>.</summary>
    /// <param name="metric">Cosine or negative L2.</param>
    /// <param name="query">C·H·W pixels.</param>
    /// <param name="data">The training images.</param>
    /// <param name="norms">‖xᵢ‖ of every training image (cosine only; may be empty for L2).</param>
    /// <param name="destination">N scores.</param>
    public static void Score(PixelMetric metric, ReadOnlySpan<float> query, ImageDataset data, ReadOnlySpan<float> norms, Span<float> destination)
    {
        ArgumentNullException.ThrowIfNull(data);
        if (query.Length != data.ImageLength || destination.Length != data.Count || (metric == PixelMetric.Cosine && norms.Length != data.Count))
        {
            throw new ArgumentException($"pixel scores: query {query.Length} values (expected {data.ImageLength}), destination {destination.Length} and norms {norms.Length} (expected {data.Count})");
        }
        float queryNorm = TensorPrimitives.Norm(query);
        for (int i = 0; i < data.Count; i++)
        {
            var x = data.Image(i);
            destination[i] = metric == PixelMetric.L2
                ? -TensorPrimitives.Distance(query, x)
                : queryNorm > 0 && norms[i] > 0 ? TensorPrimitives.Dot(query, x) / (queryNorm * norms[i]) : 0f;
        }
    }

    /// <summary>method.json settings of a pixel store.</summary>
    private sealed record PixelStoreSettings(PixelMetric Metric, long Rows, string DatasetFingerprint);

    private sealed class Scorer : IAttributionScorer
    {
        private readonly PixelMetric _metric;
        private readonly ImageDataset _data;
        private readonly float[] _norms;

        public Scorer(PixelMetric metric, ImageDataset data)
        {
            _metric = metric;
            _data = data;
            _norms = new float[data.Count];
            for (int i = 0; i < data.Count; i++)
            {
                _norms[i] = TensorPrimitives.Norm(data.Image(i));
            }
        }

        public string Method => "pixel";

        public long Rows => _data.Count;

        public float[] Scores(IReadOnlyList<AttributionQuery> queries, CancellationToken cancel = default)
        {
            ArgumentNullException.ThrowIfNull(queries);
            int n = _data.Count;
            var scores = new float[(long)queries.Count * n];
            for (int q = 0; q < queries.Count; q++)
            {
                cancel.ThrowIfCancellationRequested();
                if (queries[q].Image.Length != _data.ImageLength)
                {
                    throw new UserInputException($"query {queries[q].Label}: {queries[q].Image.Length} pixel values, " +
                        $"but the training images have {_data.Channels}×{_data.Height}×{_data.Width} = {_data.ImageLength}");
                }
                Score(_metric, queries[q].Image, _data, _norms, scores.AsSpan(q * n, n));
            }
            return scores;
        }

        public void Dispose()
        {
        }
    }
}

/// <summary>The settings the pixel baseline reads: its similarity.</summary>
internal sealed record PixelSettings
{
    /// <inheritdoc cref="MethodSettings.PixelMetric"/>
    public PixelMetric PixelMetric { get; init; }
}
