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
/// queries. Disposing it stops its workers and closes both.
/// </summary>
/// <remarks>
/// Concurrency: the scorers are not documented as thread-safe (TRAK's query side keeps a feature extractor over open ORT
/// sessions, other methods keep their own scratch), so one worker per store uses the scorer, and another the denoiser
/// (its own ORT session). Requests wait in two bounded lanes: image queries in the scoring lane, seed requests first in
/// the sampling lane, whose worker samples their queries and hands them on to the scoring lane; an expensive seed
/// request thus never holds up image queries behind its sampling. A lane that is full refuses with 503 and a
/// Retry-After estimated from its recent service times. The scoring worker takes every request waiting when it becomes
/// free (up to <see cref="BatchQueries"/> queries) as one batch: one call of the scorer, one scan of the store, for all
/// of them. A query's scores do not depend on the other queries of its batch (the scan sums each pair the same way; see
/// ScanKernels). A request cancelled (client gone, timed out) while queued is dropped; its sampling stops; a scan
/// stops once every request of its batch is cancelled.
/// </remarks>
internal sealed class ServedStore : IDisposable
{
    /// <summary>The most queries the worker takes into one batch (a request is never split; one larger than this goes alone).</summary>
    public const int BatchQueries = 64;

    private readonly IAttributionScorer _scorer;
    private readonly OnnxDenoiser _denoiser;
    private readonly NoiseSchedule _schedule;
    private readonly ServerMetrics _metrics;
    private readonly Lane _scoring;
    private readonly Lane _sampling;
    private readonly Task _scoreWorker;
    private readonly Task _sampleWorker;
    private volatile bool _draining;

    private ServedStore(StoreInfo info, IAttributionScorer scorer, OnnxDenoiser denoiser, NoiseSchedule schedule, ServerLimits limits, ServerMetrics metrics)
    {
        Info = info;
        _scorer = scorer;
        _denoiser = denoiser;
        _schedule = schedule;
        _metrics = metrics;
        _scoring = new Lane("score", limits.QueueLength);
        _sampling = new Lane("seeds", limits.SeedQueueLength);
        _scoreWorker = Task.Factory.StartNew(ServeQueue, CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);
        _sampleWorker = Task.Factory.StartNew(SampleQueue, CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);
    }

    /// <summary>A request waiting for a worker; <see cref="Queries"/> is set once its images are there (given or sampled).</summary>
    private sealed record Pending(QueryInput Input, int Top, double PreparedMs, CancellationToken Cancel, TaskCompletionSource<AttributeResponse> Done)
    {
        public IReadOnlyList<AttributionQuery>? Queries { get; init; }
    }

    /// <summary>A bounded queue for one worker: admission counts the requests waiting, not yet taken by the worker.</summary>
    private sealed class Lane(string name, int capacity)
    {
        private int _waiting;
        private double _serviceMs = 100;

        public string Name { get; } = name;

        public int Capacity { get; } = capacity;

        public Channel<Pending> Queue { get; } = Channel.CreateUnbounded<Pending>(new UnboundedChannelOptions { SingleReader = true });

        public int Waiting => Volatile.Read(ref _waiting);

        public bool Saturated => Waiting >= Capacity;

        /// <summary>Seconds until a place is likely free: the waiting requests at the recent service time, 1..60.</summary>
        public int RetryAfterSeconds => (int)Math.Clamp(Math.Ceiling((Waiting + 1) * Volatile.Read(ref _serviceMs) / 1000), 1, 60);

        /// <summary>Queues the request if the lane has room (or unconditionally when it was admitted elsewhere).</summary>
        public bool TryAdd(Pending pending, bool admitted = false)
        {
            if (Interlocked.Increment(ref _waiting) > Capacity && !admitted)
            {
                Interlocked.Decrement(ref _waiting);
                return false;
            }
            if (!Queue.Writer.TryWrite(pending))
            {
                Interlocked.Decrement(ref _waiting);
                return false;
            }
            return true;
        }

        public bool TryTake(out Pending pending)
        {
            if (Queue.Reader.TryRead(out pending!))
            {
                Interlocked.Decrement(ref _waiting);
                return true;
            }
            return false;
        }

        /// <summary>Records a service time: a moving average over the last ~10.</summary>
        public void Served(double ms) => Volatile.Write(ref _serviceMs, (0.9 * Volatile.Read(ref _serviceMs)) + (0.1 * ms));
    }

    /// <summary>What <c>GET /stores</c> says about the store.</summary>
    public StoreInfo Info { get; }

    public string Name => Info.Name;

    /// <summary>The store and model folders, full paths: for the log, never for clients.</summary>
    public string Location { get; private init; } = "";

    /// <summary>C·H·W of the images the store's model takes.</summary>
    public int ImageLength => Info.Channels * Info.ImageSize * Info.ImageSize;

    /// <summary>T, the model's training timesteps: seed queries take 1..T sampling steps.</summary>
    public int TrainTimesteps => _schedule.Timesteps;

    /// <summary>True once <see cref="WarmUp"/> has answered a query.</summary>
    public bool IsWarm { get; private set; }

    /// <summary>Why the store cannot take more work now (not warm, a lane full, draining); empty when it can.</summary>
    public IEnumerable<string> NotReadyReasons()
    {
        if (!IsWarm)
        {
            yield return $"store '{Name}' is not warmed up";
        }
        if (_draining)
        {
            yield return $"store '{Name}' is draining (the server is stopping)";
        }
        foreach (var lane in new[] { _scoring, _sampling }.Where(l => l.Saturated))
        {
            yield return $"store '{Name}': the {lane.Name} queue is full ({lane.Waiting} of {lane.Capacity} waiting)";
        }
    }

    /// <summary>The lanes' lengths, for /metrics.</summary>
    public IEnumerable<(string Store, string Lane, int Waiting, int Capacity)> Queues() =>
        [(Name, _scoring.Name, _scoring.Waiting, _scoring.Capacity), (Name, _sampling.Name, _sampling.Waiting, _sampling.Capacity)];

    /// <summary>Refuses new requests from now on (503); those already queued are still answered.</summary>
    public void BeginDrain() => _draining = true;

    /// <summary>Opens a store with <paramref name="modelDirectory"/>, or with the model its source.json names.</summary>
    /// <exception cref="AttributionException">The store or model is missing, damaged, or they do not belong together.</exception>
    public static ServedStore Open(StoreSpec spec, string? modelDirectory, SessionSettings session, ServerLimits limits, ServerMetrics metrics)
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
            // The sampler's own threads (--seed-threads): sampling runs beside the scorer, not instead of it.
            forward = model.OpenDenoiser(session with { IntraOpThreads = limits.SeedThreads });
            var meta = model.Metadata;
            var info = new StoreInfo(spec.Name, opened.Method, opened.Rows, DimOf(spec.Directory), Path.GetFileName(Path.TrimEndingDirectorySeparator(model.Path)), meta.Channels, meta.ImageSize);
            return new ServedStore(info, opened, forward, model.CreateSchedule(), limits, metrics)
            {
                Location = $"{Path.GetFullPath(spec.Directory)}, model {model.Path}",
            };
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
    public void WarmUp(CancellationToken cancel = default)
    {
        AttributeAsync(new QueryInput.Seeds([0], SamplerKind.Ddim, 1), 1, 0, cancel).GetAwaiter().GetResult();
        IsWarm = true;
    }

    /// <summary>k of a store whose folder is a feature store (TRAK, D-TRAK, DAS, …); null for the others (pixel, journey, ensemble…).</summary>
    private static int? DimOf(string directory)
    {
        // meta.json alone: the scorer has already opened (and checked) the store.
        string meta = Path.Combine(directory, StoreFiles.Meta);
        return File.Exists(meta) ? StoreMeta.Load(meta).Projector.Dim : null;
    }

    /// <summary>
    /// Attributes the queries of one request, in one call of the scorer (one scan) together with whatever other requests
    /// were waiting for this store; seed requests are sampled first, in their own lane.
    /// </summary>
    /// <param name="input">Images given, or seeds to generate from (with this store's model).</param>
    /// <param name="top">Rows per query, ≥ 1.</param>
    /// <param name="preparedMs">Time already spent decoding the given images, added to <see cref="Timings.GenerateMs"/>.</param>
    /// <param name="cancel">The request's token (client gone, timed out): a queued request is dropped, its work stops.</param>
    /// <exception cref="HttpProblem">503: the lane is full (with Retry-After) or the server is draining.</exception>
    public Task<AttributeResponse> AttributeAsync(QueryInput input, int top, double preparedMs, CancellationToken cancel)
    {
        ArgumentNullException.ThrowIfNull(input);
        ArgumentOutOfRangeException.ThrowIfLessThan(top, 1);
        if (_draining)
        {
            throw new HttpProblem(StatusCodes.Status503ServiceUnavailable, $"store '{Name}': the server is stopping; no new requests", retryAfterSeconds: 5);
        }
        var pending = new Pending(input, top, preparedMs, cancel, new TaskCompletionSource<AttributeResponse>(TaskCreationOptions.RunContinuationsAsynchronously))
        {
            Queries = (input as QueryInput.Given)?.Queries,
        };
        var lane = pending.Queries is null ? _sampling : _scoring;
        if (!lane.TryAdd(pending))
        {
            _metrics.Rejected(Name, lane.Name);
            string option = lane == _sampling ? "--seed-queue" : "--queue";
            throw new HttpProblem(
                StatusCodes.Status503ServiceUnavailable,
                $"store '{Name}': the {lane.Name} queue is full ({lane.Capacity} requests waiting, {option}); retry later",
                lane.RetryAfterSeconds);
        }
        return pending.Done.Task.WaitAsync(cancel);
    }

    /// <summary>The sampling lane: one seed request at a time, its queries then queued for the scorer.</summary>
    private void SampleQueue()
    {
        var reader = _sampling.Queue.Reader;
        while (reader.WaitToReadAsync().AsTask().GetAwaiter().GetResult())
        {
            while (_sampling.TryTake(out var request))
            {
                if (request.Cancel.IsCancellationRequested)
                {
                    request.Done.TrySetCanceled(request.Cancel);
                    continue;
                }
                try
                {
                    var clock = Stopwatch.StartNew();
                    var seeds = (QueryInput.Seeds)request.Input;
                    var queries = GeneratedQueries.Generate(_denoiser, _schedule, seeds.Values, seeds.Sampler, seeds.Steps, request.Cancel);
                    _sampling.Served(clock.Elapsed.TotalMilliseconds);
                    _metrics.Generate(Name, clock.Elapsed);
                    var sampled = request with { Queries = queries, PreparedMs = request.PreparedMs + clock.Elapsed.TotalMilliseconds };
                    if (!_scoring.TryAdd(sampled, admitted: true))
                    {
                        throw new ObjectDisposedException(nameof(ServedStore), $"store '{Name}' is closing");
                    }
                }
                catch (Exception e)
                {
                    Fail(request, e);
                }
            }
        }
    }

    private void ServeQueue()
    {
        var reader = _scoring.Queue.Reader;
        var batch = new List<Pending>();
        while (reader.WaitToReadAsync().AsTask().GetAwaiter().GetResult())
        {
            batch.Clear();
            int queries = 0;
            while (queries < BatchQueries && _scoring.TryTake(out var next))
            {
                if (next.Cancel.IsCancellationRequested)
                {
                    next.Done.TrySetCanceled(next.Cancel);
                    continue;
                }
                batch.Add(next);
                queries += next.Queries!.Count;
            }
            if (batch.Count > 0)
            {
                Serve(batch);
            }
        }
    }

    /// <summary>Scores every request's queries in one call and hands each request its part.</summary>
    private void Serve(List<Pending> batch)
    {
        var clock = Stopwatch.StartNew();
        using var whole = new CancellationTokenSource();
        int live = batch.Count;
        var registrations = batch.Select(r => r.Cancel.Register(() =>
        {
            if (Interlocked.Decrement(ref live) == 0)
            {
                whole.Cancel();
            }
        })).ToList();
        try
        {
            var all = batch.SelectMany(r => r.Queries!).ToList();
            // The largest top of the batch for everyone, each cut to its own: the same rows, as the ordering is total.
            var ranked = _scorer.TopK(all, batch.Max(r => r.Top), whole.Token);
            double scoreMs = clock.Elapsed.TotalMilliseconds;
            _scoring.Served(scoreMs);
            _metrics.Scan(Name, batch.Count, all.Count, clock.Elapsed);
            int first = 0;
            foreach (var request in batch)
            {
                var queries = request.Queries!;
                try
                {
                    var results = queries.Select((q, i) => new QueryResult(q.Label, Ranked(Name, q, ranked[first + i], request.Top))).ToList();
                    request.Done.TrySetResult(new AttributeResponse(Name, _scorer.Method, results, new Timings(request.PreparedMs, scoreMs, batch.Count)));
                }
                catch (AttributionException e)
                {
                    request.Done.TrySetException(e);
                }
                first += queries.Count;
            }
        }
        catch (Exception e)
        {
            foreach (var request in batch)
            {
                Fail(request, e);
            }
        }
        finally
        {
            foreach (var registration in registrations)
            {
                registration.Dispose();
            }
        }
    }

    /// <summary>A query's best rows, cut to its own top; a non-finite score is an error, never an answer.</summary>
    /// <exception cref="StoreFormatException">A score is NaN or infinite: the store or its model is damaged.</exception>
    internal static List<RankedRow> Ranked(string store, AttributionQuery query, TopKResult ranked, int top)
    {
        var rows = new List<RankedRow>(Math.Min(top, ranked.Indices.Length));
        for (int r = 0; r < ranked.Indices.Length && r < top; r++)
        {
            float score = ranked.Scores[r];
            if (!float.IsFinite(score))
            {
                throw new StoreFormatException(
                    $"store '{store}': query '{query.Label}' scored {score.ToString(System.Globalization.CultureInfo.InvariantCulture)} at row {ranked.Indices[r]}; the store or its model holds non-finite values (run verify on the store)");
            }
            rows.Add(new RankedRow(ranked.Indices[r], score));
        }
        return rows;
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
        _draining = true;
        _sampling.Queue.Writer.TryComplete();
        _sampleWorker.Wait(TimeSpan.FromSeconds(30));
        _scoring.Queue.Writer.TryComplete();
        _scoreWorker.Wait(TimeSpan.FromSeconds(30));
        _scorer.Dispose();
        _denoiser.Dispose();
    }
}
