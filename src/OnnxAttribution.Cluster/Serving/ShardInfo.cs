using OnnxAttribution.Store;

namespace OnnxAttribution.Cluster.Serving;

/// <summary>One replica of one shard of a served store: which rows it holds and where it is mapped.</summary>
[GenerateSerializer]
public sealed record ShardInfo
{
    /// <summary>The store's name.</summary>
    [Id(0)] public required string Store { get; init; }

    /// <summary>The shard's index i of n.</summary>
    [Id(1)] public int Shard { get; init; }

    /// <summary>n, the store's shard count.</summary>
    [Id(2)] public int ShardCount { get; init; }

    /// <summary>The first row it holds.</summary>
    [Id(3)] public long FirstRow { get; init; }

    /// <summary>The rows it holds.</summary>
    [Id(4)] public long Rows { get; init; }

    /// <summary>N, the rows of the whole store.</summary>
    [Id(5)] public long TotalRows { get; init; }

    /// <summary>The name of the silo that maps it.</summary>
    [Id(6)] public required string SiloName { get; init; }

    /// <summary>That silo's address (checked against the membership table).</summary>
    [Id(7)] public required SiloAddress Silo { get; init; }

    /// <summary>The key of its <see cref="IShardScanGrain"/>.</summary>
    [Id(8)] public required string GrainKey { get; init; }

    /// <summary>
    /// SHA-256 of the shard's meta.json with its shard fields set to the whole store's (<see cref="SettingsOf"/>): equal
    /// for every shard of one featurization and its merged store, so the head refuses rows of another one.
    /// </summary>
    [Id(9)] public string Settings { get; init; } = "";

    /// <summary>The identity of a store's settings whatever shard it is: see <see cref="Settings"/>.</summary>
    public static string SettingsOf(StoreMeta meta)
    {
        ArgumentNullException.ThrowIfNull(meta);
        return Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(System.Text.Encoding.UTF8.GetBytes((meta with { Shard = ShardSpec.Whole }).ToJson())));
    }

    /// <summary>The grain key of shard <paramref name="shard"/> of <paramref name="store"/> on silo <paramref name="siloName"/>.</summary>
    public static string KeyOf(string store, int shard, string siloName) => $"{store}|{shard}|{siloName}";
}
