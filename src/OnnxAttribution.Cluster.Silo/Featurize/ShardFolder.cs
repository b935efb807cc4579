using OnnxAttribution.Store;

namespace OnnxAttribution.Cluster.Silo.Featurize;

/// <summary>What a work item's store folder on disk says about it: the durable part of a cluster featurization.</summary>
internal static class ShardFolder
{
    /// <summary>Null when the folder holds a complete shard store that opens (sampled checksums included); else why not.</summary>
    public static string? Incomplete(string directory)
    {
        if (!File.Exists(Path.Combine(directory, StoreFiles.Meta)))
        {
            return $"{directory}: no {StoreFiles.Meta} yet";
        }
        try
        {
            using var store = FeatureStore.Open(directory);
            return null;
        }
        catch (StoreFormatException e)
        {
            return e.Message;
        }
    }
}
