using OnnxAttribution.Store;

namespace OnnxAttribution.Tools;

/// <summary>Synthetic feature stores for the benchmarks (StoreBench, GpuCheck): values in [-1, 1) from a per-block xorshift.</summary>
internal static class SyntheticStore
{
    /// <summary>The meta of a synthetic store (fingerprints: the SHA-256 of the word "synthetic", as stores insist on one).</summary>
    public static StoreMeta Meta(long rows, int dim, StoreDType dtype)
    {
        string synthetic = Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData("synthetic"u8));
        return new StoreMeta
        {
            ModelFingerprint = synthetic,
            Method = "bench",
            Measurement = "none",
            Timesteps = [0],
            NoiseDraws = 1,
            NoiseSeed = 0,
            Projector = new ProjectorSpec("synthetic", 1, dim),
            DType = dtype,
            Rows = rows,
            DatasetFingerprint = synthetic,
        };
    }

    /// <summary>Writes the rows still pending in <paramref name="dir"/> (resumable: a complete store is left as it is).</summary>
    public static void Create(string dir, StoreMeta meta)
    {
        using var writer = FeatureStoreWriter.OpenOrCreate(dir, meta);
        const int block = 1024;
        int dim = meta.Projector.Dim;
        var values = new float[block * dim];
        foreach (long start in writer.PendingRows.Where(r => r % block == 0).ToList())
        {
            int n = (int)Math.Min(block, meta.Rows - start);
            Fill(values.AsSpan(0, n * dim), (ulong)start);
            writer.WriteRows(start, n, values.AsSpan(0, n * dim));
            if (start / block % 256 == 255)
            {
                writer.Flush();
            }
        }
        writer.Complete().Dispose();
    }

    private static void Fill(Span<float> values, ulong seed)
    {
        ulong s = (seed * 0x9E3779B97F4A7C15UL) | 1;
        for (int i = 0; i < values.Length; i++)
        {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            values[i] = ((int)(s >> 40) - (1 << 23)) * (1f / (1 << 23));
        }
    }
}
