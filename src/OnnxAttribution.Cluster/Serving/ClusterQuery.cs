using System.Diagnostics;
using OnnxAttribution.Primitives;
using OnnxAttribution.Core.Attribution;
using OnnxAttribution.Core.Attribution.Methods;
using OnnxAttribution.Runtime;
using OnnxAttribution.Store;

namespace OnnxAttribution.Cluster.Serving;

/// <summary>
/// The query head of a store served by the cluster: computes each query's features and preconditioned vector once
/// (the model and the store's preconditioner.bin, here), fans the vector out to one replica of every shard, and merges the
/// shards' top rows. Scores are the single-machine scan's, bit for bit (same row bytes, same kernel, a total order on ties).
/// </summary>
/// <remarks>Not thread-safe (one ONNX Runtime session); one batch at a time.</remarks>
public sealed class ClusterQuery : IDisposable
{
    private readonly IGrainFactory _grains;
    private readonly TrakQueryHead _head;
    private readonly string _settings;
    private readonly TimeSpan _shardTimeout;

    private ClusterQuery(IGrainFactory grains, string store, TrakQueryHead head, TimeSpan shardTimeout)
    {
        _grains = grains;
        _settings = ShardInfo.SettingsOf(head.Meta);
        Store = store;
        _head = head;
        _shardTimeout = shardTimeout;
    }

    /// <summary>The served store's name.</summary>
    public string Store { get; }

    /// <summary>The stage name of the fan-out in query traces (beside features and solve).</summary>
    public const string FanOutStage = "fan-out";

    /// <summary>The store's method, as the CLI spells it (meta.json's).</summary>
    public string Method => _head.Meta.Method;

    /// <summary>N, the store's rows.</summary>
    public long Rows => _head.Meta.Rows;

    /// <summary>Time of the last batch's stages (features, solve, fan-out) in milliseconds.</summary>
    public (double Features, double Solve, double FanOut) LastTimings { get; private set; }

    /// <summary>
    /// Opens the head: <paramref name="headStore"/> is the merged, finalized store's folder, or a folder with a copy of its
    /// small files: meta.json, preconditioner.bin and checksums.json (features.npy is not read; see
    /// <see cref="TrakQueryHead.OpenWithoutFeatures"/>).
    /// </summary>
    /// <exception cref="AttributionException">A file is missing or damaged, the store is not finalized, or finalized with the dual kernel (which the fan-out cannot split).</exception>
    public static ClusterQuery Open(IGrainFactory grains, string store, string modelDirectory, string headStore, SessionSettings? session = null, TimeSpan? shardTimeout = null)
    {
        ArgumentNullException.ThrowIfNull(grains);
        ArgumentNullException.ThrowIfNull(store);
        var head = TrakQueryHead.OpenWithoutFeatures(headStore, modelDirectory, session);
        if (head.Kernel == KernelForm.Dual)
        {
            head.Dispose();
            throw new AttributionException($"{headStore}: finalized with the dual kernel (N ≤ k): its scores are not one scan per row; " +
                "finalize it with the primal kernel to serve it on the cluster");
        }
        return new ClusterQuery(grains, store, head, shardTimeout ?? TimeSpan.FromSeconds(10));
    }

    /// <summary>The <paramref name="top"/> best rows of each query over every shard that answers (those that do not are listed in <see cref="ClusterAnswer.Missing"/>).</summary>
    public async Task<ClusterAnswer> AttributeAsync(IReadOnlyList<AttributionQuery> queries, int top, CancellationToken cancel = default)
    {
        ArgumentNullException.ThrowIfNull(queries);
        var clock = Stopwatch.StartNew();
        var features = _head.Features(TrakMethod.Images(queries), queries.Count, TrakMethod.Conditions(queries));
        double featuresMs = clock.Elapsed.TotalMilliseconds;
        var x = _head.Precondition(features, queries.Count);
        double solveMs = clock.Elapsed.TotalMilliseconds - featuresMs;
        ClusterAnswer answer;
        using (QueryTrace.Start(FanOutStage))
        {
            answer = await FanOutAsync(x, queries.Select(q => q.Label).ToList(), top, cancel);
        }
        LastTimings = (featuresMs, solveMs, clock.Elapsed.TotalMilliseconds - featuresMs - solveMs);
        return answer;
    }

    /// <summary>The preconditioned vectors (ΦᵀΦ + λI)⁻¹ φ_q of the queries, count × k: what the fan-out sends.</summary>
    public float[] Precondition(IReadOnlyList<AttributionQuery> queries)
    {
        ArgumentNullException.ThrowIfNull(queries);
        return _head.Precondition(_head.Features(TrakMethod.Images(queries), queries.Count, TrakMethod.Conditions(queries)), queries.Count);
    }

    /// <summary>Sends preconditioned vectors (labels.Count × k) to one replica of every shard and merges their top rows.</summary>
    public async Task<ClusterAnswer> FanOutAsync(float[] preconditioned, IReadOnlyList<string> labels, int top, CancellationToken cancel = default)
    {
        ArgumentNullException.ThrowIfNull(preconditioned);
        ArgumentNullException.ThrowIfNull(labels);
        ArgumentOutOfRangeException.ThrowIfNegative(top);
        int count = labels.Count;
        var replicas = await _grains.GetGrain<IShardRegistryGrain>(Store).GetAsync().WaitAsync(cancel);
        int shards = replicas.Count > 0 ? replicas[0].ShardCount : 1;
        var asked = Enumerable.Range(0, shards).Select(s => AskShardAsync(s, shards, replicas.Where(r => r.Shard == s).ToList(), preconditioned, count, top, cancel)).ToList();
        var answers = await Task.WhenAll(asked);
        var rankings = new QueryRanking[count];
        for (int q = 0; q < count; q++)
        {
            var rows = answers.Where(a => a.Result is not null).SelectMany(a => a.Result!.Indices[q].Zip(a.Result.Scores[q]))
                .Order(RowOrder.Instance).Take(top).Select((r, i) => new RankedRow(i + 1, r.Item1, r.Item2)).ToArray();
            rankings[q] = new QueryRanking(labels[q], rows);
        }
        return new ClusterAnswer(rankings, answers.Where(a => a.Missing is not null).Select(a => a.Missing!).ToList(),
            answers.Where(a => a.Replica is not null).Select(a => a.Replica!).ToList());
    }

    /// <summary>Asks the replicas of one shard in turn until one answers within the timeout.</summary>
    private async Task<(ShardTopK? Result, ShardInfo? Replica, MissingRows? Missing)> AskShardAsync(int shard, int shards, List<ShardInfo> replicas,
        float[] x, int count, int top, CancellationToken cancel)
    {
        var errors = new List<string>();
        foreach (var replica in replicas)
        {
            if (replica.Settings != _settings)
            {
                // Another featurization registered under this store's name: its rows are not the rows the head preconditions for.
                errors.Add($"{replica.SiloName}: its shard's meta.json differs from the head's (another featurization under this store's name)");
                continue;
            }
            try
            {
                var result = await _grains.GetGrain<IShardScanGrain>(replica.GrainKey).TopKAsync(x, count, top).WaitAsync(_shardTimeout, cancel);
                return (result, replica, null);
            }
            catch (Exception e) when (e is not OperationCanceledException || !cancel.IsCancellationRequested)
            {
                errors.Add($"{replica.SiloName}: {(e is TimeoutException ? $"no answer within {_shardTimeout.TotalSeconds:F0} s" : e.Message)}");
            }
        }
        var spec = new ShardSpec(shard, shards);
        string reason = errors.Count == 0 ? "no replica registered" : string.Join("; ", errors);
        return (null, null, new MissingRows(shard, spec.FirstRow(Rows), spec.RowCount(Rows), reason));
    }

    /// <inheritdoc/>
    public void Dispose() => _head.Dispose();

    /// <summary>The store scan's order: higher score first, ties to the lower row, NaN last.</summary>
    private sealed class RowOrder : IComparer<(long Row, float Score)>
    {
        public static readonly RowOrder Instance = new();

        public int Compare((long Row, float Score) a, (long Row, float Score) b)
        {
            bool an = float.IsNaN(a.Score), bn = float.IsNaN(b.Score);
            if (an || bn)
            {
                return an == bn ? a.Row.CompareTo(b.Row) : an ? 1 : -1;
            }
            int byScore = b.Score.CompareTo(a.Score);
            return byScore != 0 ? byScore : a.Row.CompareTo(b.Row);
        }
    }
}
