using OnnxAttribution.Store;

namespace OnnxAttribution.TestSupport;

/// <summary>Metas and deterministic row values shared by the store tests.</summary>
public static class StoreTestData
{
    public static StoreMeta Meta(long rows, int dim, StoreDType dtype = StoreDType.Float32, ShardSpec? shard = null) => new()
    {
        ModelFingerprint = new string('a', 64),
        Method = "trak",
        Measurement = "diffusion-loss",
        Timesteps = [100, 500, 900],
        NoiseDraws = 2,
        NoiseSeed = 7,
        Projector = new ProjectorSpec("rademacher", 42, dim) { Settings = new Dictionary<string, string> { ["blockRows"] = "256" } },
        DType = dtype,
        Rows = rows,
        DatasetFingerprint = new string('d', 64),
        Subset = "all",
        Shard = shard ?? ShardSpec.Whole,
        Settings = new Dictionary<string, string> { ["checkpoint"] = "final" },
    };

    /// <summary>The values of dataset row <paramref name="row"/>: the same on every call, as a featurizer's would be.</summary>
    public static float[] Row(long row, int dim)
    {
        var random = new Random(unchecked((int)(row * 7919) + 1));
        var values = new float[dim];
        for (int i = 0; i < dim; i++)
        {
            values[i] = (float)((random.NextDouble() * 2) - 1);
        }
        return values;
    }

    public static float[] Rows(long firstRow, int count, int dim)
    {
        var values = new float[count * dim];
        for (int r = 0; r < count; r++)
        {
            Row(firstRow + r, dim).CopyTo(values, r * dim);
        }
        return values;
    }

    /// <summary>Writes every row of <paramref name="meta"/>'s shard in batches of <paramref name="batch"/> and completes the store.</summary>
    public static FeatureStore WriteAll(string dir, StoreMeta meta, int batch = 5)
    {
        using var writer = FeatureStoreWriter.Create(dir, meta);
        int dim = meta.Projector.Dim;
        for (long r = writer.FirstRow; r < writer.FirstRow + writer.RowCount; r += batch)
        {
            int n = (int)Math.Min(batch, writer.FirstRow + writer.RowCount - r);
            writer.WriteRows(r, n, Rows(r, n, dim));
        }
        return writer.Complete();
    }
}
