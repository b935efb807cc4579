using System.Diagnostics;
using OnnxAttribution.Core;
using OnnxAttribution.Core.Attribution;
using OnnxAttribution.Core.Attribution.Methods;
using OnnxAttribution.Core.Models;
using OnnxAttribution.Core.Runtime;
using OnnxAttribution.Core.Sampling;
using OnnxAttribution.Core.Store;

namespace OnnxAttribution.Server;

/// <summary>
/// One store the server answers for, opened once: its scorer, and the model's forward graph as a denoiser for seed
/// queries. Disposing it closes both.
/// </summary>
/// <remarks>
/// Concurrency: a store answers one request at a time. The scorers are not documented as thread-safe (TRAK's query
/// side keeps a feature extractor over open ORT sessions, other methods keep their own scratch), so neither the scorer
/// nor the denoiser is shared between requests: a <see cref="SemaphoreSlim"/> per store queues them, and waiting honours
/// the request's abort token. ONNX Runtime's intra-op threads and the parallel scan already use the cores for one
/// query; clients that have several queries send them in one request, which costs one scan.
/// </remarks>
internal sealed class ServedStore(StoreInfo info, IAttributionScorer scorer, OnnxDenoiser denoiser, NoiseSchedule schedule) : IDisposable
{
    private readonly SemaphoreSlim _gate = new(1, 1);

    /// <summary>What <c>GET /stores</c> says about the store.</summary>
    public StoreInfo Info { get; } = info;

    public string Name => Info.Name;

    /// <summary>C·H·W of the images the store's model takes.</summary>
    public int ImageLength => Info.Channels * Info.ImageSize * Info.ImageSize;

    /// <summary>T, the model's training timesteps: seed queries take 1..T sampling steps.</summary>
    public int TrainTimesteps => schedule.Timesteps;

    /// <summary>Opens a store with <paramref name="modelDirectory"/>, or with the model its source.json names.</summary>
    /// <exception cref="AttributionException">The store or model is missing, damaged, or they do not belong together.</exception>
    public static ServedStore Open(StoreSpec spec, string? modelDirectory, SessionSettings session)
    {
        ArgumentNullException.ThrowIfNull(spec);
        if (!Directory.Exists(spec.Directory))
        {
            throw new UserInputException($"--store {spec.Name}: folder not found: {spec.Directory}");
        }
        var modelPath = modelDirectory ?? StoreSource.TryLoad(spec.Directory)?.ModelDirectory
            ?? throw new UserInputException($"{spec.Directory} has no {StoreSource.FileName}: pass --model");
        var model = ModelDirectory.Open(modelPath);
        var opened = AttributionMethods.Open(spec.Directory, model.Path, session);
        OnnxDenoiser? forward = null;
        try
        {
            forward = model.OpenDenoiser(session);
            var meta = model.Metadata;
            var info = new StoreInfo(spec.Name, opened.Method, opened.Rows, DimOf(spec.Directory), Path.GetFullPath(spec.Directory), model.Path, meta.Channels, meta.ImageSize);
            return new ServedStore(info, opened, forward, model.CreateSchedule());
        }
        catch
        {
            forward?.Dispose();
            opened.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Samples one image in one step and scores it, dropping the answer, so that the first client does not pay for ONNX
    /// Runtime's first runs and the JIT (about a second on the demo store, against ~0.15 s warm).
    /// </summary>
    public void WarmUp(CancellationToken cancel = default)
    {
        _gate.Wait(cancel);
        try
        {
            scorer.TopK(GeneratedQueries.Generate(denoiser, schedule, [0], SamplerKind.Ddim, 1, cancel), 1, cancel);
        }
        finally
        {
            _gate.Release();
        }
    }

    /// <summary>k of a store whose folder is a feature store (TRAK, D-TRAK, DAS, …); null for the others (pixel, journey, ensemble…).</summary>
    private static int? DimOf(string directory)
    {
        if (!File.Exists(Path.Combine(directory, StoreFiles.Meta)))
        {
            return null;
        }
        using var store = FeatureStore.Open(directory);
        return store.Dim;
    }

    /// <summary>
    /// Attributes the queries of one request in one call of the scorer (one scan), after the requests before it.
    /// </summary>
    /// <param name="input">Images given, or seeds to generate from (with this store's model).</param>
    /// <param name="top">Rows per query, ≥ 1.</param>
    /// <param name="preparedMs">Time already spent decoding the given images, added to <see cref="Timings.GenerateMs"/>.</param>
    /// <param name="cancel">The request's abort token: waiting for the store, sampling and scoring stop when it fires.</param>
    public async Task<AttributeResponse> AttributeAsync(QueryInput input, int top, double preparedMs, CancellationToken cancel)
    {
        ArgumentNullException.ThrowIfNull(input);
        ArgumentOutOfRangeException.ThrowIfLessThan(top, 1);
        await _gate.WaitAsync(cancel).ConfigureAwait(false);
        try
        {
            var clock = Stopwatch.StartNew();
            var queries = input switch
            {
                QueryInput.Given given => given.Queries,
                QueryInput.Seeds seeds => GeneratedQueries.Generate(denoiser, schedule, seeds.Values, seeds.Sampler, seeds.Steps, cancel),
                _ => throw new UnreachableException($"query input {input.GetType().Name}"),
            };
            double generateMs = preparedMs + clock.Elapsed.TotalMilliseconds;
            clock.Restart();
            var ranked = scorer.TopK(queries, top, cancel);
            double scoreMs = clock.Elapsed.TotalMilliseconds;
            var results = queries.Select((q, i) => new QueryResult(
                q.Label,
                ranked[i].Indices.Select((row, r) => new RankedRow(row, ranked[i].Scores[r])).ToList())).ToList();
            return new AttributeResponse(Name, scorer.Method, results, new Timings(generateMs, scoreMs));
        }
        finally
        {
            _gate.Release();
        }
    }

    public void Dispose()
    {
        scorer.Dispose();
        denoiser.Dispose();
        _gate.Dispose();
    }
}
