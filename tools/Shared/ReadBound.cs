using System.Runtime.Intrinsics;
using OnnxAttribution.Store;

namespace OnnxAttribution.Tools;

/// <summary>The bandwidth bound of a scan: the same bytes read by a plain parallel SIMD sum (StoreBench, QueryBench).</summary>
internal static class ReadBound
{
    // Sums every 32-bit word of the data (float32: as floats; float16: pairs of halves as integers): the least work that still
    // reads every byte, split over all cores like the scan.
    public static unsafe void SequentialRead(FeatureStore store)
    {
        fixed (byte* p = store.GetRowBytes(store.FirstRow))
        {
            SequentialRead(p, store.Rows, (long)store.Dim * store.DType.ElementSize(), store.DType == StoreDType.Float32);
        }
    }

    /// <summary>The same read over any row-major bytes (the 8-bit copy: <paramref name="rows"/> rows of <paramref name="rowBytes"/>).</summary>
    public static unsafe void SequentialRead(byte* data, long rows, long rowBytes, bool asFloat)
    {
        int threads = Environment.ProcessorCount;
        long rowsPer = (rows + threads - 1) / threads;
        double sink = 0;
        nint start = (nint)data;
        var gate = new object();
        Parallel.For(0, threads, t =>
        {
            double local = SumRows((byte*)start, t * rowsPer, Math.Min(rows, (t + 1) * rowsPer), rowBytes, asFloat);
            lock (gate)
            {
                sink += local;
            }
        });
        if (sink == 1.2345)
        {
            Console.Error.Write("");
        }
    }

    // Fully optimised from the first call: it runs once per thread per measurement, too rarely for tiered JIT to promote it.
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveOptimization)]
    private static unsafe double SumRows(byte* data, long r0, long r1, long rowBytes, bool asFloat)
    {
        // Four independent accumulators (256 bytes per step) so the add latency does not bound the read.
        Vector512<float> f0 = default, f1 = default, f2 = default, f3 = default;
        Vector512<uint> i0 = default, i1 = default, i2 = default, i3 = default;
        for (long r = r0; r < r1; r++)
        {
            byte* p = data + (r * rowBytes);
            long b = 0;
            for (; b + 256 <= rowBytes; b += 256)
            {
                if (asFloat)
                {
                    f0 += Vector512.Load((float*)(p + b));
                    f1 += Vector512.Load((float*)(p + b + 64));
                    f2 += Vector512.Load((float*)(p + b + 128));
                    f3 += Vector512.Load((float*)(p + b + 192));
                }
                else
                {
                    i0 += Vector512.Load((uint*)(p + b));
                    i1 += Vector512.Load((uint*)(p + b + 64));
                    i2 += Vector512.Load((uint*)(p + b + 128));
                    i3 += Vector512.Load((uint*)(p + b + 192));
                }
            }
            for (; b < rowBytes; b++)
            {
                i0 += Vector512.Create((uint)p[b]);
            }
        }
        var accF = f0 + f1 + f2 + f3;
        var accI = i0 + i1 + i2 + i3;
        return Vector512.Sum(accF) + Vector512.Sum(accI);
    }
}
