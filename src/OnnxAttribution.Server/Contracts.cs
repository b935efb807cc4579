using System.Text.Json.Serialization;
using OnnxAttribution.Cluster.Serving;

namespace OnnxAttribution.Server;

/// <summary>The body of <c>POST /stores/{name}/attribute</c> as JSON: exactly one of images, png and seeds.</summary>
/// <param name="Images">Images as the model takes them: each C·H·W floats in [-1, 1], channel-major.</param>
/// <param name="Png">A base64-encoded PNG (any size and colour type; resized and converted to the model's).</param>
/// <param name="Seeds">Seeds to generate the queries from, as <c>attribute --seed</c> does.</param>
/// <param name="Sampler">With seeds: "ddim" (default) or "ddpm".</param>
/// <param name="Steps">With seeds: sampling steps, 1..T (default 50).</param>
/// <param name="Label">For a class-conditional model: the class label of every query (or give <paramref name="Labels"/>).</param>
/// <param name="Labels">For a class-conditional model: one class label per query.</param>
/// <param name="Guidance">With seeds, for a conditional model: the classifier-free guidance scale they are sampled with (default 1).</param>
/// <param name="Prompt">For a text-conditioned model: the prompt of every query, e.g. "a dark sneaker" (or give <paramref name="Prompts"/>).</param>
/// <param name="Prompts">For a text-conditioned model: one prompt per query.</param>
internal sealed record AttributeRequest(float[][]? Images, string? Png, long[]? Seeds, string? Sampler, int? Steps,
    long? Label = null, long[]? Labels = null, double? Guidance = null, string? Prompt = null, string[]? Prompts = null);

internal sealed record HealthResponse(string Status);

/// <summary>The answer of <c>GET /readyz</c>: "ready", or "not ready" with the reasons (a store not warm, a queue full, draining).</summary>
internal sealed record ReadyResponse(string Status, IReadOnlyList<string> Reasons);

/// <summary>A served store.</summary>
/// <param name="Name">Its URL segment.</param>
/// <param name="Method">The attribution method, as the CLI spells it (e.g. "d-trak").</param>
/// <param name="Rows">N, the training rows scored.</param>
/// <param name="Dim">k of a feature store; null for methods whose folder holds none (pixel, journey-trak, ensemble…).</param>
/// <param name="Model">The name of the model folder it was opened with (no path: clients are not told the server's file layout).</param>
/// <param name="Channels">C of the images queries are given in.</param>
/// <param name="ImageSize">H = W of the images queries are given in.</param>
/// <param name="Version">The number of the store's version being served (its history.json); null for a store without versions.</param>
/// <param name="VersionId">That version's id (SHA-256 of its entry); null for a store without versions.</param>
/// <param name="ModelSha256">SHA-256 of the model's gradient graph the store was built from (meta.json's modelFingerprint); null where the folder has no meta.json.</param>
/// <param name="Condition">The condition the store's model needs with every query (a class label: its classes and names); null for an unconditional model.</param>
/// <param name="LoraBaseSha256">For a LoRA fine-tune (its gradients the adapters'), SHA-256 of its base model's forward.onnx; null otherwise.</param>
internal sealed record StoreInfo(string Name, string Method, long Rows, int? Dim, string Model, int Channels, int ImageSize,
    int? Version = null, string? VersionId = null, string? ModelSha256 = null, Runtime.Models.ConditionSpec? Condition = null, string? LoraBaseSha256 = null);

internal sealed record StoresResponse(IReadOnlyList<StoreInfo> Stores);


/// <summary>Where the time of a request went, in milliseconds, not counting the wait for the store.</summary>
/// <param name="GenerateMs">Making the query images: decoding the body (and PNGs), or sampling from seeds.</param>
/// <param name="ScoreMs">The scorer: query features and one scan of the store for all queries of the batch.</param>
/// <param name="BatchedRequests">Requests scored together in that call (this one included): concurrent requests to a store share a scan.</param>
/// <param name="StagesMs">
/// Where <paramref name="ScoreMs"/> went, by stage (<see cref="Runtime.QueryTrace"/>): for TRAK-family stores
/// <c>features</c> (the model's passes and the projection), <c>solve</c> (the kernel solve) and <c>scan</c> (the rows,
/// with the top-k selection in the same pass); empty for methods that report none.
/// </param>
internal sealed record Timings(double GenerateMs, double ScoreMs, int BatchedRequests, IReadOnlyDictionary<string, double> StagesMs);

/// <summary>The answer of <c>POST /stores/{name}/attribute</c>: one <see cref="QueryRanking"/> per query, the shape of the CLI's and the edge tool's <c>--json</c>.</summary>
/// <param name="Store">The store's name.</param>
/// <param name="Method">Its method.</param>
/// <param name="Rankings">One per query, best first.</param>
/// <param name="Timings">Where the time went.</param>
/// <param name="Partial">Stores served by the cluster only (absent otherwise): true when some shard did not answer, so the
/// rankings cover the other rows only.</param>
/// <param name="Missing">Stores served by the cluster only: the shards no replica answered for, with their rows and why; empty when complete.</param>
/// <param name="StoreVersion">The id of the store version that answered (history.json); absent for a store without versions.</param>
/// <param name="ModelSha256">SHA-256 of the model's gradient graph the store was built from; absent where unknown.</param>
internal sealed record AttributeResponse(string Store, string Method, IReadOnlyList<QueryRanking> Rankings, Timings Timings,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] bool? Partial = null,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] IReadOnlyList<MissingRows>? Missing = null,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] string? StoreVersion = null,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] string? ModelSha256 = null);

internal sealed record ErrorResponse(string Error);

/// <summary>The answer of <c>GET /stores/{name}/rows/{row}</c>: a training row and its class label.</summary>
/// <param name="Store">The store's name.</param>
/// <param name="Row">The row.</param>
/// <param name="Label">The training image's class label; null (left out) where the dataset has none.</param>
internal sealed record RowResponse(string Store, long Row, [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] int? Label);
