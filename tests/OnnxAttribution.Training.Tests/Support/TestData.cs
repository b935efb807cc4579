using OnnxAttribution.Core.Data;

namespace OnnxAttribution.Training.Tests.Support;

/// <summary>Small synthetic datasets with structure a denoiser can learn quickly.</summary>
internal static class TestData
{
    /// <summary>N images of bright bars (vertical or horizontal, random position) on a dark background, in [-1, 1].</summary>
    public static ImageDataset Bars(int count, int size, int seed)
    {
        var rng = new Random(seed);
        var pixels = new float[count * size * size];
        for (int n = 0; n < count; n++)
        {
            bool vertical = rng.Next(2) == 0;
            int pos = rng.Next(2, size - 4);
            int width = 2 + rng.Next(2);
            for (int y = 0; y < size; y++)
            {
                for (int x = 0; x < size; x++)
                {
                    int c = vertical ? x : y;
                    pixels[(n * size + y) * size + x] = c >= pos && c < pos + width ? 1f : -1f;
                }
            }
        }
        return new ImageDataset("bars", count, 1, size, size, pixels);
    }

    /// <summary>Gaussian values, seeded.</summary>
    public static float[] Normal(int length, int seed)
    {
        var rng = new Random(seed);
        var v = new float[length];
        for (int i = 0; i < length; i++)
        {
            v[i] = (float)TestRandom.Normal(rng);
        }
        return v;
    }

    /// <summary>The repository root, as recorded at build time.</summary>
    public static string RepositoryRoot() => RepositoryFiles.Root;
}
