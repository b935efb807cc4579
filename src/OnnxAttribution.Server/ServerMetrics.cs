using System.Collections.Concurrent;
using System.Globalization;
using System.Text;

namespace OnnxAttribution.Server;

/// <summary>
/// The server's counters and histograms, written for <c>GET /metrics</c> in Prometheus' text format (version 0.0.4).
/// Thread-safe: requests and store workers record into it concurrently.
/// </summary>
internal sealed class ServerMetrics
{
    /// <summary>Upper bounds of the latency buckets, in seconds.</summary>
    private static readonly double[] SecondBuckets = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

    /// <summary>Upper bounds of the batch-size buckets (requests or queries per scan).</summary>
    private static readonly double[] CountBuckets = [1, 2, 4, 8, 16, 32, 64, 128, 256];

    private readonly ConcurrentDictionary<(string Route, string Method, int Status), long> _requests = new();
    private readonly ConcurrentDictionary<string, Histogram> _latency = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<(string Store, string Name), Histogram> _storeHistograms = new();
    private readonly ConcurrentDictionary<(string Store, string Lane), long> _rejected = new();
    private readonly List<Func<IEnumerable<(string Store, string Lane, int Waiting, int Capacity)>>> _queues = [];

    /// <summary>Counts a finished request and its latency, by route pattern (not the raw path: bounded label values).</summary>
    public void Request(string route, string method, int status, TimeSpan elapsed)
    {
        _requests.AddOrUpdate((route, method, status), 1, (_, n) => n + 1);
        _latency.GetOrAdd(route, _ => new Histogram(SecondBuckets)).Observe(elapsed.TotalSeconds);
    }

    /// <summary>One scan of a store: how many requests and queries shared it, and how long the scorer took.</summary>
    public void Scan(string store, int requests, int queries, TimeSpan scorer)
    {
        _storeHistograms.GetOrAdd((store, "batch_requests"), _ => new Histogram(CountBuckets)).Observe(requests);
        _storeHistograms.GetOrAdd((store, "batch_queries"), _ => new Histogram(CountBuckets)).Observe(queries);
        _storeHistograms.GetOrAdd((store, "score_seconds"), _ => new Histogram(SecondBuckets)).Observe(scorer.TotalSeconds);
    }

    /// <summary>Making one request's queries: decoding images, or sampling from seeds.</summary>
    public void Generate(string store, TimeSpan elapsed) =>
        _storeHistograms.GetOrAdd((store, "generate_seconds"), _ => new Histogram(SecondBuckets)).Observe(elapsed.TotalSeconds);

    /// <summary>A request refused because a lane of the store was busy.</summary>
    public void Rejected(string store, string lane) => _rejected.AddOrUpdate((store, lane), 1, (_, n) => n + 1);

    /// <summary>Where the queue lengths are read from when the metrics are written.</summary>
    public void AddQueues(Func<IEnumerable<(string Store, string Lane, int Waiting, int Capacity)>> queues)
    {
        lock (_queues)
        {
            _queues.Add(queues);
        }
    }

    /// <summary>All metrics in Prometheus' text exposition format.</summary>
    public string Render()
    {
        var text = new StringBuilder();
        text.AppendLine("# HELP oa_http_requests_total HTTP requests answered, by route pattern, method and status.");
        text.AppendLine("# TYPE oa_http_requests_total counter");
        foreach (var ((route, method, status), n) in _requests.OrderBy(r => r.Key))
        {
            text.AppendLine(CultureInfo.InvariantCulture, $"oa_http_requests_total{{route=\"{Escape(route)}\",method=\"{Escape(method)}\",status=\"{status}\"}} {n}");
        }
        text.AppendLine("# HELP oa_http_request_duration_seconds Time from the request's start to its answer, by route pattern.");
        text.AppendLine("# TYPE oa_http_request_duration_seconds histogram");
        foreach (var (route, histogram) in _latency.OrderBy(r => r.Key, StringComparer.Ordinal))
        {
            histogram.Write(text, "oa_http_request_duration_seconds", $"route=\"{Escape(route)}\"");
        }
        List<(string Store, string Lane, int Waiting, int Capacity)> queues;
        lock (_queues)
        {
            queues = _queues.SelectMany(q => q()).ToList();
        }
        text.AppendLine("# HELP oa_queue_waiting Requests waiting in a store's lane (score: for the scorer; seeds: for the sampler).");
        text.AppendLine("# TYPE oa_queue_waiting gauge");
        foreach (var q in queues)
        {
            text.AppendLine(CultureInfo.InvariantCulture, $"oa_queue_waiting{{store=\"{Escape(q.Store)}\",lane=\"{q.Lane}\"}} {q.Waiting}");
        }
        text.AppendLine("# HELP oa_queue_capacity Requests a store's lane holds before refusing with 503.");
        text.AppendLine("# TYPE oa_queue_capacity gauge");
        foreach (var q in queues)
        {
            text.AppendLine(CultureInfo.InvariantCulture, $"oa_queue_capacity{{store=\"{Escape(q.Store)}\",lane=\"{q.Lane}\"}} {q.Capacity}");
        }
        text.AppendLine("# HELP oa_queue_rejected_total Requests refused with 429 because a store's lane was busy (too many waiting, or too much work ahead).");
        text.AppendLine("# TYPE oa_queue_rejected_total counter");
        foreach (var ((store, lane), n) in _rejected.OrderBy(r => r.Key))
        {
            text.AppendLine(CultureInfo.InvariantCulture, $"oa_queue_rejected_total{{store=\"{Escape(store)}\",lane=\"{lane}\"}} {n}");
        }
        foreach (var (name, help) in new[]
        {
            ("batch_requests", "Requests scored together in one scan."),
            ("batch_queries", "Queries scored together in one scan."),
            ("score_seconds", "The scorer's time per scan: the queries' features and one scan of the store."),
            ("generate_seconds", "Making one request's queries: sampling from seeds."),
        })
        {
            text.AppendLine(CultureInfo.InvariantCulture, $"# HELP oa_store_{name} {help}");
            text.AppendLine(CultureInfo.InvariantCulture, $"# TYPE oa_store_{name} histogram");
            foreach (var ((store, _), histogram) in _storeHistograms.Where(h => h.Key.Name == name).OrderBy(h => h.Key.Store, StringComparer.Ordinal))
            {
                histogram.Write(text, $"oa_store_{name}", $"store=\"{Escape(store)}\"");
            }
        }
        return text.ToString();
    }

    private static string Escape(string value) => value.Replace("\\", "\\\\", StringComparison.Ordinal).Replace("\"", "\\\"", StringComparison.Ordinal).Replace("\n", "\\n", StringComparison.Ordinal);

    /// <summary>A Prometheus histogram: cumulative bucket counts, sum and count.</summary>
    private sealed class Histogram(double[] bounds)
    {
        private readonly long[] _counts = new long[bounds.Length];
        private readonly Lock _lock = new();
        private double _sum;
        private long _count;

        public void Observe(double value)
        {
            lock (_lock)
            {
                int i = Array.FindIndex(bounds, b => value <= b);
                if (i >= 0)
                {
                    _counts[i]++;
                }
                _sum += value;
                _count++;
            }
        }

        public void Write(StringBuilder text, string name, string labels)
        {
            lock (_lock)
            {
                long cumulative = 0;
                for (int i = 0; i < bounds.Length; i++)
                {
                    cumulative += _counts[i];
                    text.AppendLine(CultureInfo.InvariantCulture, $"{name}_bucket{{{labels},le=\"{bounds[i].ToString(CultureInfo.InvariantCulture)}\"}} {cumulative}");
                }
                text.AppendLine(CultureInfo.InvariantCulture, $"{name}_bucket{{{labels},le=\"+Inf\"}} {_count}");
                text.AppendLine(CultureInfo.InvariantCulture, $"{name}_sum{{{labels}}} {_sum.ToString("R", CultureInfo.InvariantCulture)}");
                text.AppendLine(CultureInfo.InvariantCulture, $"{name}_count{{{labels}}} {_count}");
            }
        }
    }
}
