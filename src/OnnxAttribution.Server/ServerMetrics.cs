using System.Diagnostics.Metrics;

namespace OnnxAttribution.Server;

/// <summary>
/// The server's counters, histograms and gauges: System.Diagnostics.Metrics instruments on the meter <see cref="MeterName"/>,
/// made by the application's own <see cref="IMeterFactory"/>, which OpenTelemetry's Prometheus exporter writes for
/// <c>GET /metrics</c> (<see cref="ServerApp.Build"/> enables the meter for this application's listeners only, so that
/// two servers in one process count their own requests). The exporter derives the series' names from the instruments':
/// a counter gets <c>_total</c>, a histogram in seconds (unit <c>s</c>) <c>_seconds</c>.
/// Thread-safe: requests and store workers record into it concurrently.
/// </summary>
internal sealed class ServerMetrics
{
    /// <summary>The meter's name, as a listener enables it.</summary>
    public const string MeterName = "OnnxAttribution.Server";

    /// <summary>Upper bounds of the latency buckets, in seconds.</summary>
    private static readonly InstrumentAdvice<double> Seconds = new() { HistogramBucketBoundaries = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60] };

    /// <summary>Upper bounds of the batch-size buckets (requests or queries per scan).</summary>
    private static readonly InstrumentAdvice<int> Counts = new() { HistogramBucketBoundaries = [1, 2, 4, 8, 16, 32, 64, 128, 256] };

    private readonly Counter<long> _requests;
    private readonly Histogram<double> _latency;
    private readonly Histogram<int> _batchRequests;
    private readonly Histogram<int> _batchQueries;
    private readonly Histogram<double> _score;
    private readonly Histogram<double> _generate;
    private readonly Counter<long> _rejected;
    private readonly List<Func<ServedStore>> _stores = [];

    /// <summary>Creates the instruments on this application's meter.</summary>
    public ServerMetrics(IMeterFactory meters)
    {
        ArgumentNullException.ThrowIfNull(meters);
        var meter = meters.Create(MeterName);
        _requests = meter.CreateCounter<long>("oa_http_requests", description: "HTTP requests answered, by route pattern, method and status.");
        _latency = meter.CreateHistogram("oa_http_request_duration", "s", "Time from the request's start to its answer, by route pattern.", advice: Seconds);
        _rejected = meter.CreateCounter<long>("oa_queue_rejected",
            description: "Requests refused with 429 because a store's lane was busy (too many waiting, or too much work ahead).");
        _batchRequests = meter.CreateHistogram("oa_store_batch_requests", null, "Requests scored together in one scan.", advice: Counts);
        _batchQueries = meter.CreateHistogram("oa_store_batch_queries", null, "Queries scored together in one scan.", advice: Counts);
        _score = meter.CreateHistogram("oa_store_score", "s", "The scorer's time per scan: the queries' features and one scan of the store.", advice: Seconds);
        _generate = meter.CreateHistogram("oa_store_generate", "s", "Making one request's queries: sampling from seeds.", advice: Seconds);
        meter.CreateObservableGauge("oa_queue_waiting", () => Lanes(q => q.Waiting),
            description: "Requests waiting in a store's lane (score: for the scorer; seeds: for the sampler).");
        meter.CreateObservableGauge("oa_queue_capacity", () => Lanes(q => q.Capacity), description: "Requests a store's lane holds before refusing with 429.");
        meter.CreateObservableGauge("oa_store_rows", Rows, description: "Rows of the store version that answers now.");
    }

    /// <summary>Counts a finished request and its latency, by route pattern (not the raw path: bounded label values).</summary>
    public void Request(string route, string method, int status, TimeSpan elapsed)
    {
        _requests.Add(1, new("route", route), new("method", method), new("status", status));
        _latency.Record(elapsed.TotalSeconds, new KeyValuePair<string, object?>("route", route));
    }

    /// <summary>One scan of a store: how many requests and queries shared it, and how long the scorer took.</summary>
    public void Scan(string store, int requests, int queries, TimeSpan scorer)
    {
        var tag = new KeyValuePair<string, object?>("store", store);
        _batchRequests.Record(requests, tag);
        _batchQueries.Record(queries, tag);
        _score.Record(scorer.TotalSeconds, tag);
    }

    /// <summary>Making one request's queries: decoding images, or sampling from seeds.</summary>
    public void Generate(string store, TimeSpan elapsed) => _generate.Record(elapsed.TotalSeconds, new KeyValuePair<string, object?>("store", store));

    /// <summary>A request refused because a lane of the store was busy.</summary>
    public void Rejected(string store, string lane) => _rejected.Add(1, new("store", store), new("lane", lane));

    /// <summary>A served store whose lanes and rows the gauges read, through <paramref name="current"/> (its version that answers now).</summary>
    public void AddStore(Func<ServedStore> current)
    {
        lock (_stores)
        {
            _stores.Add(current);
        }
    }

    private List<ServedStore> Stores()
    {
        lock (_stores)
        {
            return _stores.Select(current => current()).ToList();
        }
    }

    private IEnumerable<Measurement<int>> Lanes(Func<(string Store, string Lane, int Waiting, int Capacity), int> value) =>
        Stores().SelectMany(s => s.Queues()).Select(q => new Measurement<int>(value(q), new("store", q.Store), new("lane", q.Lane))).ToList();

    private IEnumerable<Measurement<long>> Rows() =>
        Stores().Select(s => new Measurement<long>(s.Info.Rows, new KeyValuePair<string, object?>("store", s.Info.Name))).ToList();
}
