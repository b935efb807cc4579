using System.Diagnostics;
using System.Threading.Channels;
using OnnxAttribution.Cluster.Serving;
using OnnxAttribution.Primitives;
using OnnxAttribution.Core.Attribution;
using OnnxAttribution.Core.Attribution.Methods;
using OnnxAttribution.Runtime.Models;
using OnnxAttribution.Runtime;
using OnnxAttribution.Runtime.Sampling;
using OnnxAttribution.Store;

namespace OnnxAttribution.Server;

/// <summary>
/// One store the server answers for, opened once: a scorer for image queries, and for seed queries the model's forward
/// graph as a denoiser with a scorer of their own. Disposing it stops its workers and closes them.
/// </summary>
/// <remarks>
/// Concurrency: the scorers are not documented as thread-safe (TRAK's query side keeps a feature extractor over open ORT
/// sessions, other methods keep their own scratch), so each is used by one worker. Requests wait in two bounded lanes:
/// image queries in the scoring lane; seed requests in the sampling lane, whose worker samples their queries and scores
/// them with its own scorer (its ORT sessions on --seed-threads threads), so that an expensive seed request never
/// holds up image queries: they share the cores, not a queue. A lane admits a request while it is idle, or while the
/// work ahead of the request (waiting and running, estimated from the lane's recent cost per query and per sampling
/// step) is within its budget (--max-wait-ms for images, half of --request-timeout for seeds) and fewer requests than
/// its capacity wait; otherwise the request is refused at once with 429 and a Retry-After of the estimated work ahead,
/// instead of waiting past what a lookup may take. The scoring worker takes every request waiting when it becomes free
/// (up to <see cref="BatchQueries"/> queries) as one batch: one call of the scorer, one scan of the store, for all of
/// them. A query's scores do not depend on the other queries of its batch (the scan sums each pair the same way; see
/// ScanKernels). A request cancelled (client gone, timed out) while queued is dropped; its sampling stops; a scan
/// stops once every request of its batch is cancelled.
/// </remarks>
internal sealed partial class ServedStore : IDisposable
{
    /// <summary>The most queries the worker takes into one batch (a request is never split; one larger than this goes alone).</summary>
    public const int BatchQueries = 64;

    private readonly Attributor _images;
    private readonly Attributor _seeds;
    private readonly NoiseSchedule _schedule;
    private readonly ServerMetrics _metrics;
    private readonly Lane _scoring;
    private readonly Lane _sampling;
    private readonly Task _scoreWorker;
    private readonly Task _sampleWorker;
    private volatile bool _draining;

    // Recent costs, for admission: milliseconds per image query scored, per seed query scored by the seed lane's scorer,
    // and per seed × sampling step (moving averages; the warm-up gives the first values).
    private double _msPerQuery = 100;
    private double _msPerSeedQuery = 100;
    private double _msPerSeedStep = 1;

    private ServedStore(StoreInfo info, Attributor images, Attributor seeds, NoiseSchedule schedule, ServerLimits limits, ServerMetrics metrics)
    {
        Info = info;
        _images = images;
        _seeds = seeds;
        _schedule = schedule;
        _metrics = metrics;
        _scoring = new Lane("score", limits.QueueLength, "--queue", limits.MaxWait.TotalMilliseconds, "--max-wait-ms");
        _sampling = new Lane("seeds", limits.SeedQueueLength, "--seed-queue", limits.RequestTimeout.TotalMilliseconds / 2, "--request-timeout, half of it");
        _scoreWorker = Task.Factory.StartNew(ServeQueue, CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);
        _sampleWorker = Task.Factory.StartNew(SampleQueue, CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);
    }

    /// <summary>A request waiting for a worker; <see cref="Queries"/> is set once its images are there (given or sampled).</summary>
    private sealed record Pending(QueryInput Input, int Top, double PreparedMs, CancellationToken Cancel, TaskCompletionSource<AttributeResponse> Done)
    {
        public IReadOnlyList<AttributionQuery>? Queries { get; init; }

        /// <summary>The estimated milliseconds of work, counted against the lane's budget while it waits and runs.</summary>
        public double CostMs { get; init; }

        /// <summary>Set for a report: every row's score and the queries come back here too (shared by the copies <c>with</c> makes).</summary>
        public FullScores? Full { get; init; }

        /// <summary>Where the lane counts the request's cost (shared by the copies <c>with</c> makes).</summary>
        public LaneTicket Ticket { get; } = new();
    }

    /// <summary>A request's place in its lane's count: waiting, running, or released (finished or cancelled).</summary>
    private sealed class LaneTicket
    {
        public bool Running { get; set; }

        public bool Released { get; set; }

    }

    /// <summary>
    /// A bounded queue for one worker: admission counts the requests waiting and the estimated milliseconds of work
    /// ahead (waiting, and taken by the worker but not finished).
    /// </summary>
    private sealed class Lane(string name, int capacity, string capacityOption, double budgetMs, string budgetOption)
    {
        private readonly Lock _gate = new();
        private int _waiting;
        private double _waitingMs;
        private double _runningMs;

        public string Name { get; } = name;

        public int Capacity { get; } = capacity;

        /// <summary>The most estimated work a request may find ahead of it, in milliseconds (an idle lane takes any request).</summary>
        public double BudgetMs { get; } = budgetMs;

        public Channel<Pending> Queue { get; } = Channel.CreateUnbounded<Pending>(new UnboundedChannelOptions { SingleReader = true });

        public int Waiting
        {
            get
            {
                lock (_gate)
                {
                    return _waiting;
                }
            }
        }

        /// <summary>Estimated milliseconds of work ahead of a request that came now.</summary>
        public double AheadMs
        {
            get
            {
                lock (_gate)
                {
                    return _waitingMs + _runningMs;
                }
            }
        }

        /// <summary>Why the lane takes no request now; null when it does.</summary>
        public string? Busy
        {
            get
            {
                lock (_gate)
                {
                    return BusyLocked();
                }
            }
        }

        /// <summary>Seconds until the work ahead is likely done, 1..60.</summary>
        public int RetryAfterSeconds => (int)Math.Clamp(Math.Ceiling(AheadMs / 1000), 1, 60);

        /// <summary>Queues the request, or says why the lane is busy (null when queued).</summary>
        public string? TryAdd(Pending pending)
        {
            lock (_gate)
            {
                if (BusyLocked() is { } busy)
                {
                    return busy;
                }
                if (!Queue.Writer.TryWrite(pending))
                {
                    return "it is closing";
                }
                _waiting++;
                _waitingMs += pending.CostMs;
            }
            return null;
        }

        /// <summary>Takes the next request: its cost moves from waiting to running until <see cref="Finished"/>.</summary>
        public bool TryTake(out Pending pending)
        {
            lock (_gate)
            {
                if (!Queue.Reader.TryRead(out pending!))
                {
                    return false;
                }
                _waiting--;
                if (!pending.Ticket.Released)
                {
                    _waitingMs = Math.Max(0, _waitingMs - pending.CostMs);
                    _runningMs += pending.CostMs;
                    pending.Ticket.Running = true;
                }
                return true;
            }
        }

        /// <summary>The worker is done with the request (answered, failed or dropped).</summary>
        public void Finished(Pending pending)
        {
            Release(pending);
        }

        /// <summary>Removes the request's cost from the count, once (finished, or cancelled while waiting or running).</summary>
        public void Release(Pending pending)
        {
            lock (_gate)
            {
                var ticket = pending.Ticket;
                if (ticket.Released)
                {
                    return;
                }
                ticket.Released = true;
                if (ticket.Running)
                {
                    _runningMs = Math.Max(0, _runningMs - pending.CostMs);
                }
                else
                {
                    _waitingMs = Math.Max(0, _waitingMs - pending.CostMs);
                }
            }
        }

        private string? BusyLocked()
        {
            if (_waiting >= Capacity)
            {
                return $"{_waiting} requests are waiting, at most {Capacity} ({capacityOption})";
            }
            double ahead = _waitingMs + _runningMs;
            if (ahead > BudgetMs)
            {
                return FormattableString.Invariant($"about {ahead:F0} ms of work is ahead, at most {BudgetMs:F0} ms ({budgetOption})");
            }
            return null;
        }
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
        foreach (var lane in new[] { _scoring, _sampling })
        {
            if (lane.Busy is { } busy)
            {
                yield return $"store '{Name}': the {lane.Name} lane is busy: {busy}";
            }
        }
    }

    /// <summary>The lanes' lengths, for /metrics.</summary>
    public IEnumerable<(string Store, string Lane, int Waiting, int Capacity)> Queues() =>
        [(Name, _scoring.Name, _scoring.Waiting, _scoring.Capacity), (Name, _sampling.Name, _sampling.Waiting, _sampling.Capacity)];

    /// <summary>Refuses new requests from now on (503); those already queued are still answered.</summary>
    public void BeginDrain() => _draining = true;

    /// <summary>
    /// Opens a store with <paramref name="modelDirectory"/>, or with the model its source.json names; a cluster store
    /// (<see cref="StoreSpec.Cluster"/>) is scored through <paramref name="cluster"/>'s shards by a <see cref="ClusterScorer"/>.
    /// </summary>
    /// <exception cref="AttributionException">The store or model is missing, damaged, or they do not belong together.</exception>
    public static ServedStore Open(StoreSpec spec, string? modelDirectory, SessionSettings session, ServerLimits limits, ServerMetrics metrics, IGrainFactory? cluster = null)
    {
        ArgumentNullException.ThrowIfNull(spec);
        if (!Directory.Exists(spec.Directory))
        {
            throw new UserInputException($"{spec.Option} {spec.Name}: folder not found: {spec.Directory}");
        }
        var modelPath = modelDirectory ?? StoreSource.TryLoad(spec.Directory)?.ModelDirectory
            ?? throw new UserInputException($"{spec.Directory} has no {StoreFiles.Source}: pass --model");
        var model = ModelDirectory.Open(modelPath);
        Func<SessionSettings, IAttributionScorer> open = spec.Cluster
            ? s => ClusterScorer.Open(cluster ?? throw new InvalidOperationException("a cluster store needs the cluster's client"), spec.Name, model.Path, spec.Directory, s)
            : s => AttributionMethods.Open(spec.Directory, model.Path, s);
        // The image lane's scorer, and the seed lane's own (--seed-threads): sampling and scoring seed queries run beside
        // the image queries' scorer, not instead of it. Each is answered through an Attributor, as the CLI and the edge tool are.
        var seedSession = session with { IntraOpThreads = limits.SeedThreads };
        Attributor? images = null, seeds = null;
        IAttributionScorer? pending = open(session);
        try
        {
            images = Attributor.Over(pending, model.Path, spec.Directory, session, spec.Name);
            pending = open(seedSession);
            seeds = Attributor.Over(pending, model.Path, spec.Directory, seedSession, spec.Name);
            pending = null;
            // The forward graph is needed for seed queries: a model without one fails here, at start, not at the first seed
            // (the seed lane opens its session once, at the warm-up).
            model.RequireForward();
            var meta = model.Metadata;
            var provenance = StoreProvenance.Of(spec.Directory);
            var info = new StoreInfo(spec.Name, images.Method, images.Rows, DimOf(spec.Directory), Path.GetFileName(Path.TrimEndingDirectorySeparator(model.Path)), meta.Channels, meta.ImageSize,
                provenance.Version, provenance.VersionId, provenance.ModelSha256, meta.Condition, meta.Lora?.BaseSha256);
            return new ServedStore(info, images, seeds, model.CreateSchedule(), limits, metrics)
            {
                Location = $"{Path.GetFullPath(spec.Directory)}, model {model.Path}",
                StoreDirectory = spec.Directory,
            };
        }
        catch
        {
            pending?.Dispose();
            seeds?.Dispose();
            images?.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Samples one image in one step and scores it, dropping the answer, so that the first client does not pay for ONNX
    /// Runtime's first runs and the JIT (tools/bench-server.sh times the first request after start).
    /// </summary>
    public void WarmUp(CancellationToken cancel = default)
    {
        // Both lanes: a seed (sampled and scored by the seed lane), then its image as an image query.
        // A conditional model's first class (a text model's caption of it) stands in for any condition.
        var condition = Info.Condition is null ? null : new QueryCondition([Core.Data.Captions.EvaluationCondition(Info.Condition, 0)]);
        var queries = _seeds.GenerateQueries([0], SamplerKind.Ddim, 1, null, cancel, condition);
        AttributeAsync(new QueryInput.Seeds([0], SamplerKind.Ddim, 1, condition), 1, 0, cancel).GetAwaiter().GetResult();
        AttributeAsync(new QueryInput.Given(queries), 1, 0, cancel).GetAwaiter().GetResult();
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
    /// <param name="full">For a report: receives every row's score and the queries (sampled ones too); null for a plain lookup.</param>
    /// <exception cref="HttpProblem">429: the lane is busy (with Retry-After); 503: the server is draining.</exception>
    public Task<AttributeResponse> AttributeAsync(QueryInput input, int top, double preparedMs, CancellationToken cancel, FullScores? full = null)
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
            Full = full,
            CostMs = input switch
            {
                QueryInput.Seeds seeds => seeds.Values.Length * ((seeds.Steps * Volatile.Read(ref _msPerSeedStep)) + Volatile.Read(ref _msPerSeedQuery)),
                _ => input.Count * Volatile.Read(ref _msPerQuery),
            },
        };
        var lane = pending.Queries is null ? _sampling : _scoring;
        if (lane.TryAdd(pending) is { } busy)
        {
            _metrics.Rejected(Name, lane.Name);
            int retry = lane.RetryAfterSeconds;
            throw new HttpProblem(
                StatusCodes.Status429TooManyRequests,
                $"store '{Name}' is busy: in its {lane.Name} lane {busy}; retry after {retry} s",
                retry);
        }
        return Answer(lane, pending);
    }

    /// <summary>
    /// The request's answer. A request cancelled (timed out, client gone) stops counting in its lane at once, though the
    /// worker may still be winding its work down, and before the caller hears of it: a client told 504 may ask again at
    /// once, and must not be refused for work nobody waits for.
    /// </summary>
    private static async Task<AttributeResponse> Answer(Lane lane, Pending pending)
    {
        try
        {
            return await pending.Done.Task.WaitAsync(pending.Cancel).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (pending.Cancel.IsCancellationRequested)
        {
            lane.Release(pending);
            throw;
        }
    }

    /// <summary>The sampling lane: one seed request at a time, sampled, then scored by the lane's own scorer.</summary>
    private void SampleQueue()
    {
        var reader = _sampling.Queue.Reader;
        while (reader.WaitToReadAsync().AsTask().GetAwaiter().GetResult())
        {
            while (_sampling.TryTake(out var request))
            {
                try
                {
                    if (request.Cancel.IsCancellationRequested)
                    {
                        request.Done.TrySetCanceled(request.Cancel);
                        continue;
                    }
                    var clock = Stopwatch.StartNew();
                    var seeds = (QueryInput.Seeds)request.Input;
                    var queries = _seeds.GenerateQueries(seeds.Values, seeds.Sampler, seeds.Steps, null, request.Cancel, seeds.Condition);
                    double sampleMs = clock.Elapsed.TotalMilliseconds;
                    _metrics.Generate(Name, clock.Elapsed);
                    Average(ref _msPerSeedStep, sampleMs / (seeds.Values.Length * seeds.Steps));
                    var sampled = request with { Queries = queries, PreparedMs = request.PreparedMs + sampleMs };
                    Score(_seeds, [sampled], request.Cancel, ref _msPerSeedQuery);
                }
                catch (Exception e)
                {
                    Fail(request, e);
                }
                finally
                {
                    _sampling.Finished(request);
                }
            }
        }
    }

    /// <summary>Moves a cost average a tenth of the way to a new measurement.</summary>
    private static void Average(ref double average, double measured) =>
        Volatile.Write(ref average, (0.9 * Volatile.Read(ref average)) + (0.1 * measured));

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
                    _scoring.Finished(next);
                    continue;
                }
                batch.Add(next);
                queries += next.Queries!.Count;
            }
            if (batch.Count > 0)
            {
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
                    Score(_images, batch, whole.Token, ref _msPerQuery);
                }
                finally
                {
                    registrations.ForEach(r => r.Dispose());
                }
            }
        }
    }

    /// <summary>
    /// Scores every request's queries in one call of <paramref name="attributor"/>'s scorer and hands each request its part,
    /// ranked by the attributor; each request's work is then finished in its lane, and the cost per query recorded in
    /// <paramref name="msPerQuery"/>.
    /// </summary>
    private void Score(Attributor attributor, List<Pending> batch, CancellationToken cancel, ref double msPerQuery)
    {
        var clock = Stopwatch.StartNew();
        var scorer = attributor.Scorer;
        try
        {
            var all = batch.SelectMany(r => r.Queries!).ToList();
            TopKResult[] ranked;
            float[]? scores;
            IReadOnlyDictionary<string, double> stages;
            using (var recording = QueryStageRecorder.Begin())
            {
                // The largest top of the batch for everyone, each cut to its own: the same rows, as the ordering is total.
                ranked = scorer.TopK(all, batch.Max(r => r.Top), cancel);
                // A report also needs every row's score of its query: those queries alone take the full-score path too.
                var reported = batch.Where(r => r.Full is { WantsScores: true }).SelectMany(r => r.Queries!).ToList();
                scores = reported.Count > 0 ? scorer.Scores(reported, cancel) : null;
                stages = recording.Stages;
            }
            // A cluster store's answer may leave out shards that did not answer: every response says so (partial, missing).
            var coverage = (scorer as ClusterScorer)?.LastAnswer;
            double scoreMs = clock.Elapsed.TotalMilliseconds;
            Average(ref msPerQuery, scoreMs / Math.Max(1, all.Count));
            _metrics.Scan(Name, batch.Count, all.Count, clock.Elapsed);
            int first = 0, firstReported = 0;
            foreach (var request in batch)
            {
                var queries = request.Queries!;
                try
                {
                    if (request.Full is { } full)
                    {
                        full.Receive(queries, full.WantsScores ? scores : null, firstReported, scorer.Rows);
                        firstReported += full.WantsScores ? queries.Count : 0;
                    }
                    // A non-finite score fails its own request, not the batch.
                    var results = queries.Select((q, i) => attributor.Rank(q, ranked[first + i], request.Top)).ToList();
                    request.Done.TrySetResult(new AttributeResponse(Name, scorer.Method, results, new Timings(request.PreparedMs, scoreMs, batch.Count, stages),
                        coverage is null ? null : !coverage.Complete, coverage?.Missing, Info.VersionId, Info.ModelSha256));
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
            if (attributor == _images)
            {
                batch.ForEach(_scoring.Finished);
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
        _draining = true;
        _sampling.Queue.Writer.TryComplete();
        _sampleWorker.Wait(TimeSpan.FromSeconds(30));
        _scoring.Queue.Writer.TryComplete();
        _scoreWorker.Wait(TimeSpan.FromSeconds(30));
        _images.Dispose();
        _seeds.Dispose();
    }
}
