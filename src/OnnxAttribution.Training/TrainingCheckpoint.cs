using System.Buffers.Binary;
using System.Globalization;
using System.Runtime.InteropServices;
using System.Text;
using OnnxAttribution.Primitives;

namespace OnnxAttribution.Training;

/// <summary>
/// A training checkpoint file: everything needed to continue a run bit for bit — the weights, the EMA weights, Adam's
/// moments, the step and the seed (every batch is drawn from <see cref="DdpmTrainer.StepSeed"/>(seed, step), so no
/// generator state is stored).
/// </summary>
/// <remarks>
/// Layout, little-endian: the 8 bytes <c>OATCKPT\0</c>; int32 format version (1); int32 element type of every tensor
/// (1 = float32, the ONNX code); int64 step; int64 seed; int32 length + UTF-8 JSON of the <see cref="UNetConfig"/>;
/// int32 tensor count; then per tensor: int32 length + UTF-8 name, int32 rank, int64 per dimension, the row-major values.
/// Names are prefixed <c>model.</c>, <c>ema.</c>, <c>adam_m.</c>, <c>adam_v.</c>.
/// </remarks>
internal sealed class TrainingCheckpoint
{
    public static ReadOnlySpan<byte> Magic => "OATCKPT\0"u8;

    public const int FormatVersion = 1;

    public const int ElementTypeFloat32 = 1;

    private const string FilePrefix = "ckpt-";

    private const string FileSuffix = ".bin";

    public required int Step { get; init; }

    public required long Seed { get; init; }

    public required string ConfigJson { get; init; }

    /// <summary>The tensors by name, with their shapes.</summary>
    public required List<(string Name, long[] Shape, float[] Values)> Tensors { get; init; }

    /// <summary>The file name of the checkpoint at <paramref name="step"/>.</summary>
    public static string FileName(int step) => $"{FilePrefix}{step.ToString("D8", CultureInfo.InvariantCulture)}{FileSuffix}";

    /// <summary>The checkpoint with the highest step in <paramref name="directory"/>, or null when there is none.</summary>
    public static string? FindLatest(string directory) => List(directory).LastOrDefault().Path;

    /// <summary>The checkpoint files in <paramref name="directory"/> with their steps, by increasing step (none when it does not exist).</summary>
    public static List<(int Step, string Path)> List(string directory)
    {
        if (!Directory.Exists(directory))
        {
            return [];
        }
        return Directory.EnumerateFiles(directory, FilePrefix + "*" + FileSuffix)
            .Select(f => (Ok: int.TryParse(Path.GetFileName(f)[FilePrefix.Length..^FileSuffix.Length], NumberStyles.None, CultureInfo.InvariantCulture, out int step), Step: step, Path: f))
            .Where(c => c.Ok)
            .Select(c => (c.Step, c.Path))
            .OrderBy(c => c.Step)
            .ToList();
    }

    /// <summary>Writes to a temporary file and moves it into place, so a killed run never leaves half a checkpoint.</summary>
    public void Save(string path)
    {
        var tmp = path + ".tmp";
        using (var stream = File.Create(tmp))
        using (var w = new BinaryWriter(stream, Encoding.UTF8))
        {
            w.Write(Magic);
            w.Write(FormatVersion);
            w.Write(ElementTypeFloat32);
            w.Write((long)Step);
            w.Write(Seed);
            WriteString(w, ConfigJson);
            w.Write(Tensors.Count);
            foreach (var (name, shape, values) in Tensors)
            {
                WriteString(w, name);
                w.Write(shape.Length);
                foreach (var d in shape)
                {
                    w.Write(d);
                }
                if (BitConverter.IsLittleEndian)
                {
                    w.Write(MemoryMarshal.AsBytes(values.AsSpan()));
                }
                else
                {
                    foreach (var v in values)
                    {
                        w.Write(v);
                    }
                }
            }
        }
        File.Move(tmp, path, overwrite: true);
    }

    /// <exception cref="ModelFileException">The file is missing, truncated, or not a checkpoint of a known version.</exception>
    public static TrainingCheckpoint Load(string path)
    {
        if (!File.Exists(path))
        {
            throw new ModelFileException($"checkpoint not found: {path}");
        }
        try
        {
            using var stream = File.OpenRead(path);
            using var r = new BinaryReader(stream, Encoding.UTF8);
            var magic = r.ReadBytes(Magic.Length);
            if (!magic.AsSpan().SequenceEqual(Magic))
            {
                throw new ModelFileException($"{path}: not a training checkpoint (the first 8 bytes are not 'OATCKPT\\0')");
            }
            int version = r.ReadInt32();
            if (version != FormatVersion)
            {
                throw new ModelFileException($"{path}: checkpoint format version {version}; this build reads version {FormatVersion}");
            }
            int elementType = r.ReadInt32();
            if (elementType != ElementTypeFloat32)
            {
                throw new ModelFileException($"{path}: element type {elementType}; expected {ElementTypeFloat32} (float32)");
            }
            long step = r.ReadInt64();
            long seed = r.ReadInt64();
            string config = ReadString(r, path);
            int count = r.ReadInt32();
            if (count < 0)
            {
                throw new ModelFileException($"{path}: negative tensor count {count}");
            }
            var tensors = new List<(string, long[], float[])>(count);
            for (int i = 0; i < count; i++)
            {
                string name = ReadString(r, path);
                int rank = r.ReadInt32();
                if (rank is < 0 or > 8)
                {
                    throw new ModelFileException($"{path}: tensor '{name}' has rank {rank}; expected 0..8");
                }
                var shape = new long[rank];
                long n = 1;
                for (int k = 0; k < rank; k++)
                {
                    shape[k] = r.ReadInt64();
                    if (shape[k] < 0)
                    {
                        throw new ModelFileException($"{path}: tensor '{name}' has negative dimension {shape[k]}");
                    }
                    n = checked(n * shape[k]);
                }
                var bytes = r.ReadBytes(checked((int)(n * sizeof(float))));
                if (bytes.Length != n * sizeof(float))
                {
                    throw new ModelFileException($"{path}: truncated in tensor '{name}'");
                }
                var values = new float[n];
                for (int k = 0; k < n; k++)
                {
                    values[k] = BinaryPrimitives.ReadSingleLittleEndian(bytes.AsSpan(k * sizeof(float)));
                }
                tensors.Add((name, shape, values));
            }
            return new TrainingCheckpoint { Step = checked((int)step), Seed = seed, ConfigJson = config, Tensors = tensors };
        }
        catch (EndOfStreamException e)
        {
            throw new ModelFileException($"{path}: the checkpoint is truncated", e);
        }
    }

    private static void WriteString(BinaryWriter w, string s)
    {
        var bytes = Encoding.UTF8.GetBytes(s);
        w.Write(bytes.Length);
        w.Write(bytes);
    }

    private static string ReadString(BinaryReader r, string path)
    {
        int len = r.ReadInt32();
        if (len is < 0 or > 1 << 20)
        {
            throw new ModelFileException($"{path}: string length {len} is out of range");
        }
        var bytes = r.ReadBytes(len);
        if (bytes.Length != len)
        {
            throw new EndOfStreamException();
        }
        return Encoding.UTF8.GetString(bytes);
    }
}
