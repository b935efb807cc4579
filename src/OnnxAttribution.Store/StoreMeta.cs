using System.Globalization;
using System.Security.Cryptography;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace OnnxAttribution.Store;

/// <summary>
/// Everything a feature store's rows depend on, written as <c>meta.json</c> (camelCase). Two stores (or a store and a query)
/// are compatible when every field is equal; <see cref="DescribeDifferences(StoreMeta)"/> says which are not.
/// </summary>
/// <remarks>Equality is by value, arrays and dictionaries included (record equality would compare array references).</remarks>
public sealed record StoreMeta
{
    /// <summary>The store layout version this code writes and reads.</summary>
    public const int CurrentFormatVersion = 1;

    /// <summary>Layout version of the store directory (meta.json, features.npy, done.bitmap).</summary>
    public int FormatVersion { get; init; } = CurrentFormatVersion;

    /// <summary>SHA-256 (lower-case hex) of the gradient graph vjp.onnx the features came from; see <see cref="FingerprintFile"/>.</summary>
    public required string ModelFingerprint { get; init; }

    /// <summary>The attribution method the features are for (e.g. "trak", "d-trak", "journey-trak"): a recorded label.</summary>
    public required string Method { get; init; }

    /// <summary>The measurement function (e.g. "diffusion-loss", "squared-output-norm").</summary>
    public required string Measurement { get; init; }

    /// <summary>Diffusion timesteps the gradients were taken at, in order.</summary>
    public required IReadOnlyList<long> Timesteps { get; init; }

    /// <summary>Noise draws per (example, timestep).</summary>
    public required int NoiseDraws { get; init; }

    /// <summary>Seed of the noise draws.</summary>
    public required long NoiseSeed { get; init; }

    /// <summary>The projector; its <see cref="ProjectorSpec.Dim"/> is the store's column count k.</summary>
    public required ProjectorSpec Projector { get; init; }

    /// <summary>Element type of features.npy.</summary>
    [JsonPropertyName("dtype")]
    public required StoreDType DType { get; init; }

    /// <summary>Rows N of the whole dataset (a shard holds <see cref="ShardSpec.RowCount"/> of them).</summary>
    public required long Rows { get; init; }

    /// <summary>A fingerprint of the training set the rows are in the order of.</summary>
    public required string DatasetFingerprint { get; init; }

    /// <summary>Which subset of the dataset (e.g. "all", "first-4000", a subset file's hash); null when none.</summary>
    public string? Subset { get; init; }

    /// <summary>Which rows this store holds; <see cref="ShardSpec.Whole"/> unless featurization was split.</summary>
    public ShardSpec Shard { get; init; } = ShardSpec.Whole;

    /// <summary>Other settings the rows depend on (batch size does not; e.g. "kfac.damping" might). Compared key by key.</summary>
    public IReadOnlyDictionary<string, string> Settings { get; init; } = new SortedDictionary<string, string>(StringComparer.Ordinal);

    /// <summary>
    /// SHA-256 (lower-case hex) of every model file the rows and the queries depend on, by file name in the model folder
    /// (forward.onnx, whose graph featurize and queries run; vjp.onnx when present; model.json, with the noise schedule).
    /// Empty in stores made before it was recorded: those are checked by <see cref="ModelFingerprint"/> alone.
    /// Compared only for the files both sides record.
    /// </summary>
    public IReadOnlyDictionary<string, string> ModelFiles { get; init; } = new SortedDictionary<string, string>(StringComparer.Ordinal);

    /// <summary>
    /// The hash of the store's checksums.json (<see cref="StoreChecksums.AlgorithmName"/>): set when the store's writer records
    /// checksums, so a complete store without that file is refused. Null in stores made before checksums existed (opened
    /// without them). Not part of the rows' identity.
    /// </summary>
    public string? Checksums { get; init; }

    /// <summary>
    /// Rows taken out of every answer by <c>remove</c>, ascending: their features are zero and scans skip them. Row numbers
    /// stay those of the dataset, so a row keeps its number in every version. Null (not written) when none were removed.
    /// </summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public IReadOnlyList<long>? RemovedRows { get; init; }

    /// <summary>How many rows are answered: <see cref="ShardRows"/> less <see cref="RemovedRows"/>.</summary>
    [JsonIgnore]
    public long LiveRows => ShardRows - (RemovedRows?.Count ?? 0);

    /// <summary>First dataset row held by this store.</summary>
    [JsonIgnore]
    public long FirstRow => Shard.FirstRow(Rows);

    /// <summary>Rows held by this store (its features.npy shape[0]).</summary>
    [JsonIgnore]
    public long ShardRows => Shard.RowCount(Rows);

    internal static readonly JsonSerializerOptions JsonOptions = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.CamelCase,
        WriteIndented = true,
        Converters = { new JsonStringEnumConverter(JsonNamingPolicy.CamelCase) },
        UnmappedMemberHandling = JsonUnmappedMemberHandling.Disallow,
        RespectNullableAnnotations = true,
    };

    /// <summary>SHA-256 of a file's bytes as lower-case hex (for <see cref="ModelFingerprint"/>).</summary>
    public static string FingerprintFile(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        using var stream = File.OpenRead(path);
        return Convert.ToHexStringLower(SHA256.HashData(stream));
    }

    /// <summary>
    /// Every field that differs, one line each, as "<c>field: store has X, query asks Y</c>" with this meta as the store's and
    /// <paramref name="other"/> as the query's. Empty when the two are equal.
    /// </summary>
    public IReadOnlyList<string> DescribeDifferences(StoreMeta other) => DescribeDifferences(other, "store has", "query asks");

    /// <summary>As <see cref="DescribeDifferences(StoreMeta)"/>, with the two sides labelled (e.g. "shard 0 has", "shard 3 has").</summary>
    public IReadOnlyList<string> DescribeDifferences(StoreMeta other, string thisLabel, string otherLabel)
    {
        ArgumentNullException.ThrowIfNull(other);
        var diffs = new List<string>();
        void Check<T>(string field, T a, T b, Func<T, string> show, Func<T, T, bool>? equal = null)
        {
            if (!(equal?.Invoke(a, b) ?? EqualityComparer<T>.Default.Equals(a, b)))
            {
                diffs.Add($"{field}: {thisLabel} {show(a)}, {otherLabel} {show(b)}");
            }
        }
        static string Str(string? s) => s is null ? "null" : $"\"{s}\"";
        static string Num(long v) => v.ToString(CultureInfo.InvariantCulture);
        Check("formatVersion", FormatVersion, other.FormatVersion, v => Num(v));
        Check("modelFingerprint", ModelFingerprint, other.ModelFingerprint, Str);
        Check("method", Method, other.Method, Str);
        Check("measurement", Measurement, other.Measurement, Str);
        Check("timesteps", Timesteps, other.Timesteps, t => $"[{string.Join(", ", t)}]", (a, b) => a.SequenceEqual(b));
        Check("noiseDraws", NoiseDraws, other.NoiseDraws, v => Num(v));
        Check("noiseSeed", NoiseSeed, other.NoiseSeed, Num);
        Check("projector.kind", Projector.Kind, other.Projector.Kind, Str);
        Check("projector.seed", Projector.Seed, other.Projector.Seed, Num);
        Check("projector.dim", Projector.Dim, other.Projector.Dim, v => Num(v));
        CheckSettings(diffs, "projector.settings", Projector.Settings, other.Projector.Settings, thisLabel, otherLabel);
        Check("dtype", DType, other.DType, d => JsonNamingPolicy.CamelCase.ConvertName(d.ToString()));
        Check("rows", Rows, other.Rows, Num);
        Check("datasetFingerprint", DatasetFingerprint, other.DatasetFingerprint, Str);
        Check("subset", Subset, other.Subset, Str);
        Check("shard", Shard, other.Shard, s => $"{s.Index} of {s.Count}");
        CheckSettings(diffs, "settings", Settings, other.Settings, thisLabel, otherLabel);
        Check("removedRows", RemovedRows ?? [], other.RemovedRows ?? [], r => r.Count == 0 ? "none" : $"{r.Count} rows [{string.Join(", ", r.Take(8))}{(r.Count > 8 ? ", …" : "")}]",
            (a, b) => a.SequenceEqual(b));
        var recordedByBoth = ModelFiles.Where(kv => other.ModelFiles.ContainsKey(kv.Key)).ToDictionary();
        CheckSettings(diffs, "modelFiles", recordedByBoth, other.ModelFiles.Where(kv => recordedByBoth.ContainsKey(kv.Key)).ToDictionary(), thisLabel, otherLabel);
        return diffs;
    }

    private static void CheckSettings(List<string> diffs, string field, IReadOnlyDictionary<string, string> a,
        IReadOnlyDictionary<string, string> b, string thisLabel, string otherLabel)
    {
        foreach (string key in a.Keys.Union(b.Keys).Order(StringComparer.Ordinal))
        {
            string Show(IReadOnlyDictionary<string, string> d) => d.TryGetValue(key, out var v) ? $"\"{v}\"" : "nothing";
            if (!a.TryGetValue(key, out var va) || !b.TryGetValue(key, out var vb) || va != vb)
            {
                diffs.Add($"{field}.{key}: {thisLabel} {Show(a)}, {otherLabel} {Show(b)}");
            }
        }
    }

    internal static bool SameSettings(IReadOnlyDictionary<string, string> a, IReadOnlyDictionary<string, string> b) =>
        a.Count == b.Count && a.All(kv => b.TryGetValue(kv.Key, out var v) && v == kv.Value);

    /// <inheritdoc/>
    public bool Equals(StoreMeta? other) => other is not null && DescribeDifferences(other).Count == 0;

    /// <inheritdoc/>
    public override int GetHashCode() => HashCode.Combine(ModelFingerprint, Method, Rows, Projector.Dim, DType, Shard);

    /// <summary>Checks the fields that make a store file impossible: version, fingerprints, sizes, shard.</summary>
    internal void Validate(string where)
    {
        if (FormatVersion != CurrentFormatVersion)
        {
            throw new StoreFormatException($"{where}: field 'formatVersion': expected {CurrentFormatVersion}, found {FormatVersion}");
        }
        RequireSha256(where, "modelFingerprint", ModelFingerprint);
        RequireSha256(where, "datasetFingerprint", DatasetFingerprint);
        if (Rows < 0)
        {
            throw new StoreFormatException($"{where}: field 'rows': expected a non-negative count, found {Rows}");
        }
        if (Projector is null || Projector.Dim < 1)
        {
            throw new StoreFormatException($"{where}: field 'projector.dim': expected a positive dimension, found {Projector?.Dim.ToString(CultureInfo.InvariantCulture) ?? "no projector"}");
        }
        if (DType is not (StoreDType.Float32 or StoreDType.Float16))
        {
            throw new StoreFormatException($"{where}: field 'dtype': expected float32 or float16, found {DType}");
        }
        if (Shard is null)
        {
            throw new StoreFormatException($"{where}: field 'shard': missing");
        }
        Shard.Validate(where);
        if (Checksums is not null && Checksums != StoreChecksums.AlgorithmName)
        {
            throw new StoreFormatException($"{where}: field 'checksums': expected '{StoreChecksums.AlgorithmName}' or null, found '{Checksums}'");
        }
        if (RemovedRows is { } removed)
        {
            for (int i = 0; i < removed.Count; i++)
            {
                if (removed[i] < FirstRow || removed[i] >= FirstRow + ShardRows || (i > 0 && removed[i] <= removed[i - 1]))
                {
                    throw new StoreFormatException($"{where}: field 'removedRows[{i}]': expected ascending rows of the store ({FirstRow} to {FirstRow + ShardRows - 1}), found {removed[i]}");
                }
            }
        }
        if (ModelFiles is null)
        {
            throw new StoreFormatException($"{where}: field 'modelFiles': expected an object of file names and SHA-256 hashes, found null");
        }
        foreach (var (file, hash) in ModelFiles)
        {
            if (hash is null || hash.Length != 64 || !hash.All(char.IsAsciiHexDigitLower))
            {
                throw new StoreFormatException($"{where}: field 'modelFiles.{file}': expected 64 lower-case hex digits (SHA-256), found '{hash}'");
            }
        }
    }

    private static void RequireSha256(string where, string field, string? value)
    {
        if (value is null || value.Length != 64 || !value.All(char.IsAsciiHexDigitLower))
        {
            string shown = value is null ? "null" : value.Length > 80 ? $"\"{value[..80]}…\"" : $"\"{value}\"";
            throw new StoreFormatException($"{where}: field '{field}': expected a SHA-256 as 64 lower-case hex digits, found {shown}");
        }
    }

    /// <summary>This meta as meta.json text (settings sorted by key, so equal metas give equal bytes).</summary>
    public string ToJson()
    {
        var normalized = this with
        {
            Settings = new SortedDictionary<string, string>(Settings.ToDictionary(), StringComparer.Ordinal),
            Projector = Projector with { Settings = new SortedDictionary<string, string>(Projector.Settings.ToDictionary(), StringComparer.Ordinal) },
            ModelFiles = new SortedDictionary<string, string>(ModelFiles.ToDictionary(), StringComparer.Ordinal),
        };
        return JsonSerializer.Serialize(normalized, JsonOptions) + "\n";
    }

    /// <summary>Parses meta.json text; <paramref name="name"/> is used in messages.</summary>
    /// <exception cref="StoreFormatException">Not valid JSON, a missing or unknown field, or impossible values.</exception>
    public static StoreMeta FromJson(string json, string name)
    {
        ArgumentNullException.ThrowIfNull(json);
        StoreMeta? meta;
        try
        {
            meta = JsonSerializer.Deserialize<StoreMeta>(json, JsonOptions);
        }
        catch (JsonException e)
        {
            throw new StoreFormatException($"{name}: not a valid store meta.json: {e.Message}", e);
        }
        if (meta is null)
        {
            throw new StoreFormatException($"{name}: expected a JSON object, found null");
        }
        meta.Validate(name);
        return meta;
    }

    /// <summary>Reads and validates a meta.json file.</summary>
    /// <exception cref="StoreFormatException">The file is missing or invalid.</exception>
    public static StoreMeta Load(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        // A change that a kill interrupted after it was decided is finished before its files are read.
        StoreCommit.Recover(Path.GetDirectoryName(Path.GetFullPath(path))!);
        string text;
        try
        {
            text = File.ReadAllText(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new StoreFormatException($"{path}: cannot read the store's meta.json: {e.Message}", e);
        }
        return FromJson(text, path);
    }
}
