using System.Diagnostics;
using System.Threading.Channels;
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
/// queries. Disposing it stops its worker and closes both.
/// </summary>
/// <remarks>
/// Concurrency: the scorers are not documented as thread-safe (TRAK's query side keeps a feature extractor over open ORT
/// sessions, other methods keep their own scratch), so one worker per store uses the scorer and the denoiser. Requests
/// queue for it, and it takes every request waiting when it becomes free (up to <see cref="BatchQueries"/> queries) as one
/// batch: one call of the scorer, one scan of the store, for all of them. Under load the queued requests thus share the
/// scan and the query side's batched ONNX Runtime runs instead of waiting for one another in turn. A query's scores do
/// not depend on the other queries of its batch (the scan sums each pair the same way; see ScanKernels). A request
/// aborted while queued is dropped; one aborted after its batch started returns at once, its answer discarded.
/// </remarks>
internal sealed class ServedStore : IDisposable
{
    /// <summary>The most queries the worker takes into one batch (a request is never split; one larger than this goes alone).</summary>
    public const int BatchQueries = 64;

    private readonly IAttributionScorer _scorer;
    private readonly OnnxDenoiser _denoiser;
    private readonly NoiseSchedule _schedule;
    private readonly Channel<Pending> _queue = Channel.CreateUnbounded<Pending>(new UnboundedChannelOptions { SingleReader = true });
    private readonly Task _worker;

    private ServedStore(StoreInfo info, IAttributionScorer scorer, OnnxDenoiser denoiser, NoiseSchedule schedule)
    {
        Info = info;
        _scorer = scorer;
        _denoiser = denoiser;
        _schedule = schedule;
        _worker = Task.Factory.StartNew(ServeQueue, CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);
    }

    /// <summary>A request waiting for the worker.</summary>
    private sealed record Pending(QueryInput Input, int Top, double PreparedMs, CancellationToken Cancel, TaskCompletionSource<AttributeResponse> Done);

    /// <summary>What <c>GET /stores</c> says about the store.</summary>
    public StoreInfo Info { get; }

    public string Name => Info.Name;

    /// <summary>C·H·W of the images the store's model takes.</summary>
    public int ImageLength => Info.Channels * Info.ImageSize * Info.ImageSize;

    /// <summary>T, the model's training timesteps: seed queries take 1..T sampling steps.</summary>
    public int TrainTimesteps => _schedule.Timesteps;

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
    /// Runtime's first runs and the JIT (tools/bench-server.sh times the first request after start).
    /// </summary>
    public void WarmUp(CancellationToken cancel = default) =>
        AttributeAsync(new QueryInput.Seeds([0], SamplerKind.Ddim, 1), 1, 0, cancel).GetAwaiter().GetResult();

    /// <summary>k of a store whose folder is a feature store (TRAK, D-TRAK, DAS, …); null for the others (pixel, journey, ensemble…).</summary>
    private static int? DimOf(string directory)
    {
        // meta.json alone: the scorer has already opened (and checked) the store.
        string meta = Path.Combine(directory, StoreFiles.Meta);
        return File.Exists(meta) ? StoreMeta.Load(meta).Projector.Dim : null;
    }

    /// <summary>
    /// Attributes the queries of one request, in one call of the scorer (one scan) together with whatever other requests
    /// were waiting for this store.
    /// </summary>
    /// <param name="input">Images given, or seeds to generate from (with this store's model).</param>
    /// <param name="top">Rows per query, ≥ 1.</param>
    /// <param name="preparedMs">Time already spent decoding the given images, added to <see cref="Timings.GenerateMs"/>.</param>
    /// <param name="cancel">The request's abort token: a queued request is dropped, a running one stops waiting.</param>
    public Task<AttributeResponse> AttributeAsync(QueryInput input, int top, double preparedMs, CancellationToken cancel)
    {
        ArgumentNullException.ThrowIfNull(input);
        ArgumentOutOfRangeException.ThrowIfLessThan(top, 1);
        var pending = new Pending(input, top, preparedMs, cancel, new TaskCompletionSource<AttributeResponse>(TaskCreationOptions.RunContinuationsAsynchronously));
        if (!_queue.Writer.TryWrite(pending))
        {
            throw new ObjectDisposedException(nameof(ServedStore), $"store '{Name}' is closing");
        }
        return pending.Done.Task.WaitAsync(cancel);
    }

    private void ServeQueue()
    {
        var reader = _queue.Reader;
        var batch = new List<Pending>();
        while (reader.WaitToReadAsync().AsTask().GetAwaiter().GetResult())
        {
            batch.Clear();
            int queries = 0;
            while (queries < BatchQueries && reader.TryRead(out var next))
            {
                if (next.Cancel.IsCancellationRequested)
                {
                    next.Done.TrySetCanceled(next.Cancel);
                    continue;
                }
                batch.Add(next);
                queries += next.Input.Count;
            }
            if (batch.Count > 0)
            {
                Serve(batch);
            }
        }
    }

    /// <summary>Makes each request's queries, scores all of them in one call and hands each request its part.</summary>
    private void Serve(List<Pending> batch)
    {
        var clock = Stopwatch.StartNew();
        var served = new List<(Pending Request, IReadOnlyList<AttributionQuery> Queries, double GenerateMs)>();
        foreach (var request in batch)
        {
            try
            {
                clock.Restart();
                var queries = request.Input switch
                {
                    QueryInput.Given given => given.Queries,
                    QueryInput.Seeds seeds => GeneratedQueries.Generate(_denoiser, _schedule, seeds.Values, seeds.Sampler, seeds.Steps, request.Cancel),
                    _ => throw new UnreachableException($"query input {request.Input.GetType().Name}"),
                };
                served.Add((request, queries, request.PreparedMs + clock.Elapsed.TotalMilliseconds));
            }
            catch (Exception e)
            {
                Fail(request, e);
            }
        }
        if (served.Count == 0)
        {
            return;
        }
        try
        {
            clock.Restart();
            var all = served.SelectMany(r => r.Queries).ToList();
            // The largest top of the batch for everyone, each cut to its own: the same rows, as the ordering is total.
            var ranked = _scorer.TopK(all, served.Max(r => r.Request.Top));
            double scoreMs = clock.Elapsed.TotalMilliseconds;
            int first = 0;
            foreach (var (request, queries, generateMs) in served)
            {
                var results = queries.Select((q, i) => new QueryResult(
                    q.Label,
                    ranked[first + i].Indices.Take(request.Top).Select((row, r) => new RankedRow(row, ranked[first + i].Scores[r])).ToList())).ToList();
                first += queries.Count;
                request.Done.TrySetResult(new AttributeResponse(Name, _scorer.Method, results, new Timings(generateMs, scoreMs, served.Count)));
            }
        }
        catch (Exception e)
        {
            foreach (var (request, _, _) in served)
            {
                Fail(request, e);
            }
        }
    }

    private static void Fail(Pending request, Exception e)
    {
        if (e is OperationCanceledException && request.Cancel.IsCancellationRequested)
        {
            request.Done.TrySetCanceled(request.Cancel);
        }
        else
        {
            request.Done.TrySetException(e);
        }
    }

    public void Dispose()
    {
        _queue.Writer.TryComplete();
        _worker.Wait(TimeSpan.FromSeconds(30));
        _scorer.Dispose();
        _denoiser.Dispose();
    }
}
