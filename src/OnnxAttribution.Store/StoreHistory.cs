using System.Globalization;
using System.Reflection;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using OnnxAttribution.Primitives;

namespace OnnxAttribution.Store;

/// <summary>
/// The versions of a store (<c>history.json</c>): every change — featurize, merge, finalize, redamp, append, remove — adds one
/// <see cref="StoreVersion"/> whose id hashes its content and its parent's id, so the chain can be checked end to end
/// (<see cref="Verify"/>) and an answer can name the version it came from (<see cref="Head"/>).
/// </summary>
public sealed record StoreHistory
{
    /// <summary>The file format version written; readers refuse newer ones.</summary>
    public const int CurrentFormatVersion = 1;

    /// <summary>The format version of the file.</summary>
    public int FormatVersion { get; init; } = CurrentFormatVersion;

    /// <summary>The versions, oldest first.</summary>
    public IReadOnlyList<StoreVersion> Versions { get; init; } = [];

    /// <summary>The newest version; null when the history is empty.</summary>
    public StoreVersion? Head => Versions.Count > 0 ? Versions[^1] : null;

    /// <summary>The version of this build of the tool, as recorded in each entry.</summary>
    public static string ToolVersion { get; } =
        typeof(StoreHistory).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion ?? "unknown";

    /// <summary>The store's history, or null when it has no history.json (a store made before versions were recorded).</summary>
    /// <exception cref="StoreFormatException">The file cannot be read, is not valid, or is of a newer format.</exception>
    public static StoreHistory? TryLoad(string directory)
    {
        ArgumentNullException.ThrowIfNull(directory);
        string path = Path.Combine(directory, StoreFiles.History);
        if (!File.Exists(path))
        {
            return null;
        }
        StoreHistory? history;
        try
        {
            history = JsonSerializer.Deserialize<StoreHistory>(File.ReadAllText(path), StoreMeta.JsonOptions);
        }
        catch (JsonException e)
        {
            throw new StoreFormatException($"{path}: not a valid {StoreFiles.History}: {e.Message}", e);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new StoreFormatException($"{path}: cannot read it: {e.Message}", e);
        }
        if (history is null || history.Versions is null)
        {
            throw new StoreFormatException($"{path}: field 'versions' is missing");
        }
        if (history.FormatVersion != CurrentFormatVersion)
        {
            throw new StoreFormatException($"{path}: field 'formatVersion' is {history.FormatVersion}; this build reads {CurrentFormatVersion}");
        }
        return history;
    }

    /// <summary>
    /// Adds a version for the store's files as they are now in <paramref name="directory"/> (meta.json, checksums.json) and
    /// writes history.json there atomically.
    /// </summary>
    /// <param name="directory">The folder whose meta.json and checksums.json the version describes, and where history.json is written.</param>
    /// <param name="change">What made the version.</param>
    /// <param name="details">Who, why, which rows; may be null.</param>
    /// <param name="historyFrom">The folder whose history the version continues (the store, when <paramref name="directory"/> stages its next version); null for <paramref name="directory"/>.</param>
    /// <returns>The version written.</returns>
    /// <exception cref="StoreFormatException">The existing history or meta.json is damaged.</exception>
    public static StoreVersion Record(string directory, string change, StoreChange? details = null, string? historyFrom = null)
    {
        ArgumentNullException.ThrowIfNull(directory);
        ArgumentNullException.ThrowIfNull(change);
        var history = TryLoad(historyFrom ?? directory) ?? new StoreHistory();
        string metaPath = Path.Combine(directory, StoreFiles.Meta);
        var meta = StoreMeta.Load(metaPath);
        var sums = StoreChecksums.TryLoad(directory);
        var version = new StoreVersion
        {
            Number = (history.Head?.Number ?? 0) + 1,
            Parent = history.Head?.Id,
            Change = change,
            Time = DateTimeOffset.UtcNow,
            Tool = ToolVersion,
            By = details?.By ?? Environment.UserName,
            Reason = details?.Reason,
            AddedRows = details?.AddedRows,
            RemovedRows = details?.RemovedRows,
            Rows = meta.Rows,
            LiveRows = meta.LiveRows,
            ModelSha256 = meta.ModelFingerprint,
            DatasetFingerprint = meta.DatasetFingerprint,
            Settings = Describe(meta),
            Damping = details?.Damping,
            MetaSha256 = Sha256(metaPath),
            FeaturesSha256 = FeaturesHash(sums),
            Preconditioner = sums?.Files.GetValueOrDefault(StoreFiles.Preconditioner),
        };
        version = version with { Id = IdOf(version) };
        var written = history with { Versions = [.. history.Versions, version] };
        AtomicFile.Write(Path.Combine(directory, StoreFiles.History),
            s => s.Write(Encoding.UTF8.GetBytes(JsonSerializer.Serialize(written, StoreMeta.JsonOptions) + "\n")), durable: true);
        return version;
    }

    /// <summary>
    /// Checks the chain and the files: each entry's id is the hash of its content, each parent is the entry before, numbers
    /// count up from 1, and the newest entry's hashes of meta.json, the features' chunks and the preconditioner match the folder's.
    /// </summary>
    /// <returns>One line per problem, naming the file, the version and the field; empty when the chain holds.</returns>
    public IReadOnlyList<string> Verify(string directory)
    {
        ArgumentNullException.ThrowIfNull(directory);
        string path = Path.Combine(directory, StoreFiles.History);
        var problems = new List<string>();
        for (int i = 0; i < Versions.Count; i++)
        {
            var v = Versions[i];
            string where = $"{path}: version {v.Number} (entry {i})";
            if (v.Number != i + 1)
            {
                problems.Add($"{where}: field 'number': expected {i + 1}");
            }
            string? parent = i == 0 ? null : Versions[i - 1].Id;
            if (v.Parent != parent)
            {
                problems.Add($"{where}: field 'parent': expected {parent ?? "null"} (the id of the entry before), found {v.Parent ?? "null"}: the chain is broken");
            }
            if (v.Id != v.ComputedId)
            {
                problems.Add($"{where}: field 'id': the entry hashes to {v.ComputedId}, it records {v.Id ?? "null"}: the entry was changed after it was written");
            }
        }
        if (Head is { } head)
        {
            string meta = Path.Combine(directory, StoreFiles.Meta), checksums = Path.Combine(directory, StoreFiles.Checksums);
            string stale = "the store's files are not those of its newest version";
            if (File.Exists(meta) && Sha256(meta) != head.MetaSha256)
            {
                problems.Add($"{path}: version {head.Number}: field 'metaSha256' does not match {meta}: {stale}");
            }
            var sums = StoreChecksums.TryLoad(directory);
            if (FeaturesHash(sums) != head.FeaturesSha256)
            {
                problems.Add($"{path}: version {head.Number}: field 'featuresSha256' does not match the features' chunks in {checksums}: {stale}");
            }
            if (head.Preconditioner is { } pre && sums?.Files.GetValueOrDefault(StoreFiles.Preconditioner) != pre)
            {
                problems.Add($"{path}: version {head.Number}: field 'preconditioner' does not match {checksums}: {stale}");
            }
        }
        return problems;
    }

    /// <summary>The id of <paramref name="version"/>: SHA-256 of its JSON with the id left out.</summary>
    internal static string IdOf(StoreVersion version) =>
        Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(JsonSerializer.Serialize(version with { Id = null }, StoreMeta.JsonOptions))));

    /// <summary>SHA-256 of the features' chunk hashes (and their row counts) recorded in <paramref name="sums"/>; null without checksums.</summary>
    private static string? FeaturesHash(StoreChecksums? sums) => sums is null ? null
        : Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes($"{sums.Rows}/{sums.ChunkRows}/{string.Join(",", sums.FeatureChunks)}")));

    private static string Sha256(string path)
    {
        using var stream = File.OpenRead(path);
        return Convert.ToHexStringLower(SHA256.HashData(stream));
    }

    /// <summary>The settings the rows depend on, in one line.</summary>
    public static string Describe(StoreMeta meta)
    {
        ArgumentNullException.ThrowIfNull(meta);
        return string.Create(CultureInfo.InvariantCulture,
            $"{meta.Method}, {meta.Measurement}, {meta.Timesteps.Count} timesteps × {meta.NoiseDraws} draws (seed {meta.NoiseSeed}), " +
            $"{meta.Projector.Kind} projector k = {meta.Projector.Dim} (seed {meta.Projector.Seed}), {JsonNamingPolicy.CamelCase.ConvertName(meta.DType.ToString())}");
    }
}
