using System.Text.Json.Nodes;
using System.Text.Json;
using OnnxAttribution.Primitives;
using OnnxAttribution.Runtime.Models;
using OnnxAttribution.Runtime;
using OnnxAttribution.Store;

namespace OnnxAttribution.Core.Attribution.Ensembles;

/// <summary>
/// The design of an encoded ensemble (Dai &amp; Gifford 2023, "Training Data Attribution for Diffusion Models", arXiv:2306.02174; docs/methods.md, Encoded ensembles):
/// the N training rows split into G groups, and an encoding matrix E ∈ {0,1}^{M×G} saying which groups member m trains
/// on (E[m,g] = 1: member m sees group g). Saved as <c>ensemble.json</c> in the ensemble folder, with every seed that
/// made it.
/// </summary>
/// <remarks>
/// Codes are random and balanced: every group is seen by exactly ⌊M/2⌋ or ⌈M/2⌉ members (alternating when M is odd),
/// chosen at random, and the members' loads are then evened out by swaps within columns, so every member sees
/// ⌊Σ/M⌋ or ⌈Σ/M⌉ groups. With M members there are at most C(M, M/2) distinct codes; groups with the same code get
/// the same score, so more members separate more groups.
/// </remarks>
public sealed record EnsembleDesign
{
    /// <summary>Format of ensemble.json; readers refuse newer ones.</summary>
    public int Version { get; init; } = 1;

    /// <summary>N, the training rows (row i is image i of the subset the ensemble was trained on).</summary>
    public required int Rows { get; init; }

    /// <summary>G, the number of groups.</summary>
    public required int Groups { get; init; }

    /// <summary>How the rows were split into the groups.</summary>
    public required GroupingKind Grouping { get; init; }

    /// <summary>Seed of the permutation of <see cref="GroupingKind.Random"/> (unused for contiguous groups).</summary>
    public required long GroupingSeed { get; init; }

    /// <summary>The group of every row, N values in 0..G−1.</summary>
    public required IReadOnlyList<int> GroupOfRow { get; init; }

    /// <summary>Seed of the encoding matrix.</summary>
    public required long EncodingSeed { get; init; }

    /// <summary>The encoding matrix, one string of G characters '0'/'1' per member: character g of member m is E[m,g].</summary>
    public required IReadOnlyList<string> Encoding { get; init; }

    /// <summary>The seed each member was trained with (initial weights and every batch).</summary>
    public required IReadOnlyList<long> MemberSeeds { get; init; }

    /// <summary>SHA-256 of the training images (<see cref="Data.ImageDataset.Fingerprint"/>) the rows index.</summary>
    public required string DatasetFingerprint { get; init; }

    /// <summary>The trainer's settings of every member (apart from its rows and seed), as the trainer writes them.</summary>
    public JsonObject? Training { get; init; }

    /// <summary>M, the number of members.</summary>
    public int Members => Encoding.Count;

    /// <summary>The folder of member <paramref name="member"/> inside the ensemble folder (a model folder).</summary>
    public static string MemberFolder(int member) => $"member-{member:D2}";

    /// <summary>Whether member <paramref name="member"/> trains on group <paramref name="group"/> (E[m,g] = 1).</summary>
    public bool Sees(int member, int group) => Encoding[member][group] == '1';

    /// <summary>The rows member <paramref name="member"/> trains on, ascending.</summary>
    public int[] RowsOf(int member)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(member);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(member, Members);
        return Enumerable.Range(0, Rows).Where(i => Sees(member, GroupOfRow[i])).ToArray();
    }

    /// <summary>A design from its seeds; the same arguments give the same design on every machine.</summary>
    /// <param name="rows">N.</param>
    /// <param name="groups">G, 1 ≤ G ≤ N.</param>
    /// <param name="members">M ≥ 2 (every group must be seen by one member and left out of another).</param>
    /// <param name="grouping">How rows are grouped (G = N gives every row its own group either way).</param>
    /// <param name="groupingSeed">Seed of the random grouping.</param>
    /// <param name="encodingSeed">Seed of the encoding matrix.</param>
    /// <param name="seed">The seed the members' training seeds are drawn from (<see cref="MemberSeed"/>).</param>
    /// <param name="datasetFingerprint">The training images' fingerprint.</param>
    /// <exception cref="UserInputException">The sizes do not fit.</exception>
    public static EnsembleDesign Create(int rows, int groups, int members, GroupingKind grouping, long groupingSeed, long encodingSeed, long seed, string datasetFingerprint)
    {
        ArgumentNullException.ThrowIfNull(datasetFingerprint);
        return new EnsembleDesign
        {
            Rows = rows,
            Groups = groups,
            Grouping = grouping,
            GroupingSeed = groupingSeed,
            GroupOfRow = AssignGroups(rows, groups, grouping, groupingSeed),
            EncodingSeed = encodingSeed,
            Encoding = Encode(members, groups, encodingSeed),
            MemberSeeds = Enumerable.Range(0, members).Select(m => MemberSeed(seed, m)).ToArray(),
            DatasetFingerprint = datasetFingerprint,
        };
    }

    /// <summary>The group of every row: N values in 0..G−1, every group of ⌊N/G⌋ or ⌈N/G⌉ rows.</summary>
    /// <exception cref="UserInputException">G is not in 1..N.</exception>
    public static int[] AssignGroups(int rows, int groups, GroupingKind grouping, long seed)
    {
        if (rows < 1 || groups < 1 || groups > rows)
        {
            throw new UserInputException($"ensemble: the number of groups must be between 1 and the number of training rows {rows} (got {groups})");
        }
        // Position p of the order goes to group ⌊p·G/N⌋: runs of equal size (±1).
        var order = Enumerable.Range(0, rows).ToArray();
        if (grouping == GroupingKind.Random && groups < rows)
        {
            Shuffle(order, new CounterRng(seed, 0));
        }
        var group = new int[rows];
        for (int p = 0; p < rows; p++)
        {
            group[order[p]] = checked((int)((long)p * groups / rows));
        }
        return group;
    }

    /// <summary>The balanced random encoding matrix E ∈ {0,1}^{M×G}, one '0'/'1' string per member.</summary>
    /// <exception cref="UserInputException">M &lt; 2 or G &lt; 1.</exception>
    public static string[] Encode(int members, int groups, long seed)
    {
        if (members < 2 || groups < 1)
        {
            throw new UserInputException($"ensemble: needs at least 2 members (got {members}) and 1 group (got {groups}): every group must be seen by some members and left out of others");
        }
        var e = new bool[members, groups];
        var load = new int[members];
        var order = new int[members];
        for (int g = 0; g < groups; g++)
        {
            // Column g: a uniformly random set of ⌊M/2⌋ members (⌈M/2⌉ for every other column when M is odd).
            int seen = members / 2 + (members % 2 == 1 && g % 2 == 1 ? 1 : 0);
            for (int m = 0; m < members; m++)
            {
                order[m] = m;
            }
            Shuffle(order, new CounterRng(seed, g));
            for (int k = 0; k < seen; k++)
            {
                e[order[k], g] = true;
                load[order[k]]++;
            }
        }
        // Even out the members' loads: move a group from the most to the least loaded member, in a column where only the
        // first sees it. Column sums stay as drawn; each swap narrows the spread, so this ends.
        var swaps = new CounterRng(seed, groups);
        var candidates = new List<int>();
        Span<double> u = stackalloc double[1];
        for (long swap = 0; ; swap++)
        {
            int heavy = 0, light = 0;
            for (int m = 1; m < members; m++)
            {
                heavy = load[m] > load[heavy] ? m : heavy;
                light = load[m] < load[light] ? m : light;
            }
            if (load[heavy] - load[light] <= 1)
            {
                break;
            }
            candidates.Clear();
            for (int g = 0; g < groups; g++)
            {
                if (e[heavy, g] && !e[light, g])
                {
                    candidates.Add(g);
                }
            }
            swaps.FillUniform(u, swap);
            int pick = candidates[(int)(u[0] * candidates.Count)];
            e[heavy, pick] = false;
            e[light, pick] = true;
            load[heavy]--;
            load[light]++;
        }
        return Enumerable.Range(0, members)
            .Select(m => string.Create(groups, m, (chars, row) =>
            {
                for (int g = 0; g < chars.Length; g++)
                {
                    chars[g] = e[row, g] ? '1' : '0';
                }
            }))
            .ToArray();
    }

    /// <summary>
    /// The training seed of member <paramref name="member"/>: element 0 and 1 of stream <paramref name="member"/> of the
    /// counter-based generator keyed by <paramref name="seed"/>, as a non-negative 63-bit number.
    /// </summary>
    public static long MemberSeed(long seed, int member)
    {
        Span<uint> words = stackalloc uint[2];
        new CounterRng(seed, member).FillUInt32(words);
        return (long)((((ulong)words[0] << 32) | words[1]) >> 1);
    }

    /// <summary>Writes ensemble.json into <paramref name="directory"/> (created if missing), atomically.</summary>
    public void Save(string directory)
    {
        Directory.CreateDirectory(directory);
        var path = Path.Combine(directory, StoreFiles.Ensemble);
        JsonFile.Save(path, this);
    }

    /// <summary>Reads and checks <c>ensemble.json</c>, or returns null when the folder has none.</summary>
    /// <exception cref="UserInputException">The file is not valid or its fields do not fit together.</exception>
    public static EnsembleDesign? TryLoad(string directory)
    {
        var path = Path.Combine(directory, StoreFiles.Ensemble);
        if (!File.Exists(path))
        {
            return null;
        }
        EnsembleDesign? design;
        try
        {
            design = JsonSerializer.Deserialize<EnsembleDesign>(File.ReadAllText(path), ModelMetadata.JsonOptions);
        }
        catch (JsonException e)
        {
            throw new UserInputException($"{path}: not valid ({e.Message})", e);
        }
        if (design is null)
        {
            throw new UserInputException($"{path}: empty");
        }
        design.Check(path);
        return design;
    }

    /// <summary>Reads and checks <c>ensemble.json</c>.</summary>
    /// <exception cref="UserInputException">It is missing, not valid, or its fields do not fit together.</exception>
    public static EnsembleDesign Load(string directory) =>
        TryLoad(directory) ?? throw new UserInputException($"{Path.Combine(directory, StoreFiles.Ensemble)} not found: not an ensemble folder (train one with 'train-ensemble')");

    /// <summary>The first top-level field in which this design differs from <paramref name="other"/>, or null when they are equal.</summary>
    public string? FirstDifference(EnsembleDesign other)
    {
        ArgumentNullException.ThrowIfNull(other);
        var a = JsonSerializer.SerializeToNode(this, ModelMetadata.JsonOptions)!.AsObject();
        var b = JsonSerializer.SerializeToNode(other, ModelMetadata.JsonOptions)!.AsObject();
        return a.Select(kv => kv.Key).Concat(b.Select(kv => kv.Key)).Distinct(StringComparer.Ordinal)
            .FirstOrDefault(key => !JsonNode.DeepEquals(a[key], b[key]));
    }

    private void Check(string path)
    {
        if (Version > 1)
        {
            throw new UserInputException($"{path}: field 'version' is {Version}; this build reads version 1");
        }
        if (Rows < 1 || Groups < 1 || Groups > Rows)
        {
            throw new UserInputException($"{path}: fields 'rows' ({Rows}) and 'groups' ({Groups}) need 1 ≤ groups ≤ rows");
        }
        if (GroupOfRow is null || GroupOfRow.Count != Rows || GroupOfRow.Any(g => g < 0 || g >= Groups))
        {
            throw new UserInputException($"{path}: field 'groupOfRow' must hold {Rows} groups in 0..{Groups - 1}");
        }
        if (Encoding is null || Encoding.Count < 2 || Encoding.Any(code => code is null || code.Length != Groups || code.Any(c => c is not '0' and not '1')))
        {
            throw new UserInputException($"{path}: field 'encoding' must hold at least 2 strings of {Groups} characters '0'/'1'");
        }
        if (MemberSeeds is null || MemberSeeds.Count != Encoding.Count)
        {
            throw new UserInputException($"{path}: field 'memberSeeds' must hold {Encoding.Count} seeds, one per member");
        }
        for (int g = 0; g < Groups; g++)
        {
            int seen = Enumerable.Range(0, Members).Count(m => Sees(m, g));
            if (seen == 0 || seen == Members)
            {
                throw new UserInputException($"{path}: field 'encoding': group {g} is {(seen == 0 ? "left out of" : "seen by")} every member, so it has no score");
            }
        }
    }

    /// <summary>Fisher–Yates with the uniform stream of <paramref name="rng"/>: element i of the stream picks the swap at step i.</summary>
    private static void Shuffle(int[] values, CounterRng rng)
    {
        var u = new double[Math.Max(0, values.Length - 1)];
        rng.FillUniform(u);
        for (int i = values.Length - 1; i > 0; i--)
        {
            int j = (int)(u[values.Length - 1 - i] * (i + 1));
            (values[i], values[j]) = (values[j], values[i]);
        }
    }
}
