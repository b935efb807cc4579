using System.Numerics.Tensors;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Google.Protobuf;
using Microsoft.ML.OnnxRuntime.Tensors;
using Microsoft.ML.OnnxRuntime;
using OnnxAttribution.Onnx.Proto;
using OnnxAttribution.Onnx;
using OnnxAttribution.Primitives;
using OnnxAttribution.Store;

namespace OnnxAttribution.Runtime;

/// <summary>
/// The store scan as an ONNX graph that ONNX Runtime runs on the session's device: per chunk of rows, scores = queries · rowsᵀ
/// (one Gemm) and each query's best rows (TopK); the chunks' candidates are merged on the host in the order of
/// <see cref="FeatureStore.TopK"/> (higher score first, then lower row). Only the k values and indices per query come
/// back to the host.
/// </summary>
/// <remarks>
/// <para>Where the rows live: <em>resident</em> chunks are copied once to the execution device's memory (through IOBinding,
/// when the scan opens) and bound for every query; <em>streamed</em> chunks are bound straight from the memory-mapped store,
/// so ONNX Runtime copies them to the device per run (on CPU, a streamed chunk is read in place, with no copy at all).</para>
/// <para>Float16 rows on CUDA are multiplied in float16 (<see cref="HalfGemm"/>): each query is first scaled by a power of two
/// so that every score is at most 1 in magnitude (Cauchy–Schwarz with the largest row norm, measured when the scan opens), then
/// unscaled exactly. The scores then carry float16's 11-bit precision. Elsewhere float16 rows are cast to float32 first and
/// the scores agree with the SIMD scan's to float32 rounding (the sums run in another order).</para>
/// </remarks>
public sealed class OrtStoreScan : IDisposable
{
    /// <summary>Rows per chunk are chosen so that a chunk holds at most this many bytes of the store.</summary>
    public const long DefaultChunkBytes = 256L << 20;

    /// <summary>On CUDA the rows are made resident when the store holds at most this many bytes; streamed otherwise.</summary>
    public const long ResidentLimitBytes = 64L << 30;

    private const string RowsName = "rows";
    private const string QueriesName = "queries";
    private const string TopName = "top";
    private const string ValuesName = "values";
    private const string IndicesName = "indices";

    private readonly InferenceSession _session;
    private readonly OrtMemoryInfo _host = OrtMemoryInfo.DefaultInstance;
    private readonly List<Chunk> _chunks = [];
    private readonly float _maxRowNorm;

    private OrtStoreScan(FeatureStore store, InferenceSession session, bool halfGemm, bool resident, float maxRowNorm)
    {
        Store = store;
        _session = session;
        HalfGemm = halfGemm;
        Resident = resident;
        _maxRowNorm = maxRowNorm;
    }

    /// <summary>The store scanned; the scan does not own it.</summary>
    public FeatureStore Store { get; }

    /// <summary>Whether float16 rows are multiplied in float16 (CUDA), rather than cast to float32 first.</summary>
    public bool HalfGemm { get; }

    /// <summary>Whether the rows were copied once to the device's memory (else each run binds them from the mapping).</summary>
    public bool Resident { get; }

    /// <summary>The number of chunks the rows are scanned in.</summary>
    public int Chunks => _chunks.Count;

    /// <summary>Opens the scan of <paramref name="store"/> on the device of <paramref name="settings"/>.</summary>
    /// <param name="store">A store of float32 or float16 rows; it must outlive the scan.</param>
    /// <param name="settings">The device (CPU or CUDA) and threads.</param>
    /// <param name="resident">Copy the rows to the device once; null: on CUDA when the store holds at most <see cref="ResidentLimitBytes"/>, never on CPU.</param>
    /// <param name="halfGemm">Multiply float16 rows in float16; null: on CUDA only (the CPU provider has no float16 Gemm).</param>
    /// <param name="chunkBytes">The most bytes of the store one Gemm reads.</param>
    /// <exception cref="UserInputException">The device cannot be used.</exception>
    public static OrtStoreScan Open(FeatureStore store, SessionSettings settings, bool? resident = null, bool? halfGemm = null, long chunkBytes = DefaultChunkBytes)
    {
        ArgumentNullException.ThrowIfNull(store);
        ArgumentNullException.ThrowIfNull(settings);
        ArgumentOutOfRangeException.ThrowIfLessThan(chunkBytes, 1);
        bool cuda = settings.Device == ExecutionDevice.Cuda;
        long rowBytes = (long)store.Dim * store.DType.ElementSize();
        bool half = store.DType == StoreDType.Float16 && (halfGemm ?? cuda);
        bool keep = resident ?? (cuda && store.Rows * rowBytes <= ResidentLimitBytes);
        InferenceSession? session = null;
        OrtStoreScan? scan = null;
        using var options = OrtSessions.CreateOptions(settings);
        try
        {
            session = new InferenceSession(ScanGraph(store.DType, store.Dim, half).ToByteArray(), options);
            scan = new OrtStoreScan(store, session, half, keep, half ? MaxRowNorm(store) : 0f);
            long rowsPerChunk = Math.Max(1, chunkBytes / rowBytes);
            using var device = keep ? DeviceMemory(settings) : null;
            using var copier = keep ? new InferenceSession(CopyGraph(store.DType, store.Dim).ToByteArray(), options) : null;
            for (long first = 0; first < store.Rows; first += rowsPerChunk)
            {
                long rows = Math.Min(rowsPerChunk, store.Rows - first);
                var mapped = scan.MappedChunk(first, rows);
                scan._chunks.Add(keep ? new Chunk(first, rows, CopyTo(copier!, device!, mapped)) : new Chunk(first, rows, mapped));
            }
            return scan;
        }
        catch (OnnxRuntimeException e)
        {
            if (scan is null)
            {
                session?.Dispose();
            }
            scan?.Dispose();
            throw new SettingException("Scan", ScanEngine.Onnx, $"ONNX Runtime could not set up the store scan on {settings.Device} ({e.Message})", ScanEngine.Simd, e);
        }
        catch
        {
            if (scan is null)
            {
                session?.Dispose();
            }
            scan?.Dispose();
            throw;
        }
    }

    /// <summary>The device memory the rows are copied to: the GPU's for CUDA, ONNX Runtime's CPU memory otherwise.</summary>
    internal static OrtMemoryInfo DeviceMemory(SessionSettings settings) => settings.Device == ExecutionDevice.Cuda
        ? new OrtMemoryInfo(OrtMemoryInfo.allocatorCUDA, OrtAllocatorType.DeviceAllocator, settings.CudaDeviceId, OrtMemType.Default)
        : new OrtMemoryInfo(OrtMemoryInfo.allocatorCPU, OrtAllocatorType.DeviceAllocator, 0, OrtMemType.Default);

    /// <summary>The best <paramref name="top"/> rows for each query (dataset row indices, as <see cref="FeatureStore.TopK"/>).</summary>
    /// <param name="queries">count × Dim float32 values, row-major (the preconditioned queries).</param>
    /// <param name="count">Number of queries, scored together.</param>
    /// <param name="top">Rows per query; fewer when the store holds fewer.</param>
    public TopKResult[] TopK(ReadOnlySpan<float> queries, int count, int top)
    {
        ObjectDisposedException.ThrowIf(_chunks.Count == 0 && Store.Rows > 0, this);
        int dim = Store.Dim;
        if (queries.Length != (long)count * dim)
        {
            throw new ArgumentException($"queries holds {queries.Length} values, expected count × Dim = {count} × {dim}", nameof(queries));
        }
        ArgumentOutOfRangeException.ThrowIfNegative(top);
        int kept = (int)Math.Min(top, Store.Rows);
        var scaled = queries.ToArray();
        var unscale = new int[count];
        if (HalfGemm)
        {
            ScaleQueries(scaled, count, dim, _maxRowNorm, unscale);
        }
        var candidates = new List<(float Score, long Row)>[count];
        for (int q = 0; q < count; q++)
        {
            candidates[q] = new List<(float, long)>(kept * Math.Max(1, _chunks.Count));
        }
        if (kept > 0 && count > 0)
        {
            using var queryValue = OrtValue.CreateTensorValueFromMemory(scaled, [count, dim]);
            foreach (var chunk in _chunks)
            {
                RunChunk(chunk, queryValue, count, (int)Math.Min(kept, chunk.Rows), unscale, candidates);
            }
        }
        return candidates.Select(c => Best(c, kept)).ToArray();
    }

    /// <summary>Scores one chunk and adds each query's best rows of it to the candidates.</summary>
    private void RunChunk(Chunk chunk, OrtValue queryValue, int count, int chunkTop, int[] unscale, List<(float, long)>[] candidates)
    {
        using var topValue = OrtValue.CreateTensorValueFromMemory(new[] { (long)chunkTop }, [1]);
        using var binding = _session.CreateIoBinding();
        binding.BindInput(RowsName, chunk.Value);
        binding.BindInput(QueriesName, queryValue);
        binding.BindInput(TopName, topValue);
        binding.BindOutputToDevice(ValuesName, _host);
        binding.BindOutputToDevice(IndicesName, _host);
        using var runOptions = new RunOptions();
        _session.RunWithBinding(runOptions, binding);
        using var outputs = binding.GetOutputValues();
        var values = outputs[0].GetTensorDataAsSpan<float>();
        var indices = outputs[1].GetTensorDataAsSpan<long>();
        long firstRow = Store.FirstRow + chunk.First;
        for (int q = 0; q < count; q++)
        {
            for (int j = 0; j < chunkTop; j++)
            {
                int at = (q * chunkTop) + j;
                candidates[q].Add((MathF.ScaleB(values[at], unscale[q]), firstRow + indices[at]));
            }
        }
    }

    /// <summary>The kept best of a query's candidates, in <see cref="FeatureStore.TopK"/>'s order.</summary>
    private static TopKResult Best(List<(float Score, long Row)> candidates, int kept)
    {
        candidates.Sort(static (a, b) => TopKHeap.Better(a.Score, a.Row, b.Score, b.Row) ? -1 : TopKHeap.Better(b.Score, b.Row, a.Score, a.Row) ? 1 : 0);
        int n = Math.Min(kept, candidates.Count);
        var rows = new long[n];
        var scores = new float[n];
        for (int i = 0; i < n; i++)
        {
            (scores[i], rows[i]) = candidates[i];
        }
        return new TopKResult(rows, scores);
    }

    /// <summary>
    /// Scales each query by a power of two 2^-e so that |score| ≤ ‖row‖·‖query‖ ≤ 1 for every row (float16's range), and
    /// records e to unscale the scores exactly.
    /// </summary>
    internal static void ScaleQueries(float[] queries, int count, int dim, float maxRowNorm, int[] unscale)
    {
        for (int q = 0; q < count; q++)
        {
            var row = queries.AsSpan(q * dim, dim);
            float bound = maxRowNorm * TensorPrimitives.Norm(row);
            if (!float.IsFinite(bound) || bound <= 0f)
            {
                continue; // nothing to gain: zero scores, or a non-finite query the caller refuses anyway
            }
            int e = (int)Math.Ceiling(Math.Log2(bound));
            TensorPrimitives.Multiply(row, (float)Math.ScaleB(1.0, -e), row);
            unscale[q] = e;
        }
    }

    /// <summary>The largest Euclidean norm of a row of the store (one pass over it).</summary>
    internal static float MaxRowNorm(FeatureStore store)
    {
        var row = new float[store.Dim];
        float max = 0f;
        for (long i = 0; i < store.Rows; i++)
        {
            store.ReadRow(store.FirstRow + i, row);
            max = MathF.Max(max, TensorPrimitives.Norm(row));
        }
        return max;
    }

    /// <summary>A tensor over the mapped rows [first, first + rows) of the store, read in place.</summary>
    private unsafe OrtValue MappedChunk(long first, long rows)
    {
        var bytes = Store.GetLocalRowsBytes(first, first + rows);
        // The mapping is not managed memory: the pointer stays valid until the store is disposed.
        nint data = (nint)Unsafe.AsPointer(ref MemoryMarshal.GetReference(bytes));
        var type = Store.DType == StoreDType.Float16 ? TensorElementType.Float16 : TensorElementType.Float;
        return OrtValue.CreateTensorValueWithData(_host, type, [rows, Store.Dim], data, bytes.Length);
    }

    /// <summary>Copies a host tensor into <paramref name="device"/> memory by running the copy graph bound there.</summary>
    internal static OrtValue CopyTo(InferenceSession copier, OrtMemoryInfo device, OrtValue mapped)
    {
        using (mapped)
        {
            using var binding = copier.CreateIoBinding();
            binding.BindInput(RowsName, mapped);
            binding.BindOutputToDevice("copy", device);
            using var runOptions = new RunOptions();
            copier.RunWithBinding(runOptions, binding);
            var outputs = binding.GetOutputValues(); // the caller owns the copy: the collection is not disposed
            return outputs[0];
        }
    }

    /// <summary>rows [R, k] of the store's type, queries [Q, k] float32, top [1] int64 → values [Q, top], indices [Q, top].</summary>
    internal static ModelProto ScanGraph(StoreDType dtype, int dim, bool halfGemm)
    {
        var g = new GraphBuilder("store_scan");
        int rowType = ElementType(dtype);
        g.Graph.Input.Add(Value(RowsName, rowType, "rows", dim));
        g.Graph.Input.Add(Value(QueriesName, TensorData.Float, "queries", dim));
        g.Graph.Input.Add(GraphBuilder.ValueInfo(TopName, TensorData.Int64, [1]));
        string scores;
        if (dtype == StoreDType.Float32)
        {
            scores = g.Node("Gemm", [QueriesName, RowsName], null, Attr.Int("transB", 1));
        }
        else if (halfGemm)
        {
            string halfQueries = g.Node("Cast", [QueriesName], null, Attr.Int("to", rowType));
            string halfScores = g.Node("Gemm", [halfQueries, RowsName], null, Attr.Int("transB", 1));
            scores = g.Node("Cast", [halfScores], null, Attr.Int("to", TensorData.Float));
        }
        else
        {
            string rows = g.Node("Cast", [RowsName], null, Attr.Int("to", TensorData.Float));
            scores = g.Node("Gemm", [QueriesName, rows], null, Attr.Int("transB", 1));
        }
        g.NodeMulti("TopK", [scores, TopName], [ValuesName, IndicesName], Attr.Int("axis", 1), Attr.Int("largest", 1), Attr.Int("sorted", 1));
        g.Graph.Output.Add(Value(ValuesName, TensorData.Float, "queries", -1));
        g.Graph.Output.Add(Value(IndicesName, TensorData.Int64, "queries", -1));
        return g.Build();
    }

    /// <summary>rows → copy (Identity): run with the output bound to the device, it moves a chunk there.</summary>
    internal static ModelProto CopyGraph(StoreDType dtype, int dim)
    {
        var g = new GraphBuilder("store_rows_to_device");
        g.Graph.Input.Add(Value(RowsName, ElementType(dtype), "rows", dim));
        g.Node("Identity", [RowsName], "copy");
        g.Graph.Output.Add(Value("copy", ElementType(dtype), "rows", dim));
        return g.Build();
    }

    private static int ElementType(StoreDType dtype) =>
        dtype == StoreDType.Float16 ? (int)TensorProto.Types.DataType.Float16 : TensorData.Float;

    /// <summary>A [symbolic, second] tensor; a negative second dimension is symbolic too ("top").</summary>
    private static ValueInfoProto Value(string name, int elemType, string first, long second)
    {
        var info = GraphBuilder.ValueInfo(name, elemType, [1, Math.Max(second, 1)]);
        var dims = info.Type.TensorType.Shape.Dim;
        dims[0] = new TensorShapeProto.Types.Dimension { DimParam = first };
        if (second < 0)
        {
            dims[1] = new TensorShapeProto.Types.Dimension { DimParam = "top" };
        }
        return info;
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        foreach (var chunk in _chunks)
        {
            chunk.Value.Dispose();
        }
        _chunks.Clear();
        _session.Dispose();
    }

    /// <summary>Local rows [First, First + Rows) and the tensor that holds them (mapped, or on the device).</summary>
    private sealed record Chunk(long First, long Rows, OrtValue Value);
}
