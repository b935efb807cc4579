using System.Buffers.Binary;
using System.Runtime.InteropServices;
using OnnxAttribution.Primitives;

namespace OnnxAttribution.Runtime.Sampling;

/// <summary>
/// Reads and writes <c>.traj</c> files: one image's sampling trajectory. All fields little-endian.
/// </summary>
/// <remarks>
/// Layout (format version 1):
/// <code>
/// offset size  field
///  0      8    magic "OATRAJ01" (ASCII)
///  8      4    int32 format version (1)
/// 12      4    int32 element type of the states: 1 = float32 (ONNX TensorProto.FLOAT)
/// 16      4    int32 steps S
/// 20      4    int32 state count (S + 1)
/// 24      4    int32 C
/// 28      4    int32 H
/// 32      4    int32 W
/// 36      4    int32 sampler kind (1 = DDPM, 2 = DDIM)
/// 40      8    int64 seed
/// 48      8    float64 eta
/// 56      4    int32 flags (bit 0: x̂₀ clipped to [-1, 1])
/// 60      4    int32 T, the schedule's training timesteps
/// 64      8·S  int64 timesteps, sampling order
/// 64+8S   4·(S+1)·C·H·W  float32 states, [(S+1), C, H, W]
/// </code>
/// The file's length must equal what the header describes.
/// </remarks>
public static class TrajectoryFile
{
    /// <summary>The format version written, and the only one read.</summary>
    public const int FormatVersion = 1;

    /// <summary>The element type code of float32 states (ONNX's TensorProto.FLOAT).</summary>
    public const int Float32 = 1;

    /// <summary>The length of the fixed header in bytes; the timesteps start at this offset.</summary>
    public const int HeaderSize = 64;

    private const int FlagClipped = 1;

    /// <summary>The 8 magic bytes.</summary>
    public static ReadOnlySpan<byte> Magic => "OATRAJ01"u8;

    /// <summary>Writes <paramref name="trajectory"/> to <paramref name="path"/> (through a temporary file).</summary>
    public static void Write(string path, Trajectory trajectory)
    {
        ArgumentNullException.ThrowIfNull(path);
        ArgumentNullException.ThrowIfNull(trajectory);
        AtomicFile.Write(path, s => Write(s, trajectory));
    }

    /// <summary>Writes <paramref name="trajectory"/> to a stream.</summary>
    public static void Write(Stream stream, Trajectory trajectory)
    {
        ArgumentNullException.ThrowIfNull(stream);
        ArgumentNullException.ThrowIfNull(trajectory);
        Span<byte> h = stackalloc byte[HeaderSize];
        h.Clear();
        Magic.CopyTo(h);
        BinaryPrimitives.WriteInt32LittleEndian(h[8..], FormatVersion);
        BinaryPrimitives.WriteInt32LittleEndian(h[12..], Float32);
        BinaryPrimitives.WriteInt32LittleEndian(h[16..], trajectory.Steps);
        BinaryPrimitives.WriteInt32LittleEndian(h[20..], trajectory.StateCount);
        BinaryPrimitives.WriteInt32LittleEndian(h[24..], trajectory.Channels);
        BinaryPrimitives.WriteInt32LittleEndian(h[28..], trajectory.Height);
        BinaryPrimitives.WriteInt32LittleEndian(h[32..], trajectory.Width);
        BinaryPrimitives.WriteInt32LittleEndian(h[36..], (int)trajectory.Kind);
        BinaryPrimitives.WriteInt64LittleEndian(h[40..], trajectory.Seed);
        BinaryPrimitives.WriteDoubleLittleEndian(h[48..], trajectory.Eta);
        BinaryPrimitives.WriteInt32LittleEndian(h[56..], trajectory.ClipDenoised ? FlagClipped : 0);
        BinaryPrimitives.WriteInt32LittleEndian(h[60..], trajectory.TrainTimesteps);
        stream.Write(h);
        var ts = new byte[8 * trajectory.Steps];
        for (int i = 0; i < trajectory.Steps; i++)
        {
            BinaryPrimitives.WriteInt64LittleEndian(ts.AsSpan(8 * i), trajectory.Timesteps[i]);
        }
        stream.Write(ts);
        if (BitConverter.IsLittleEndian)
        {
            stream.Write(MemoryMarshal.AsBytes(trajectory.States));
        }
        else
        {
            Span<byte> b = stackalloc byte[4];
            foreach (var v in trajectory.States)
            {
                BinaryPrimitives.WriteSingleLittleEndian(b, v);
                stream.Write(b);
            }
        }
    }

    /// <summary>Reads a trajectory file.</summary>
    /// <exception cref="UserInputException">The file is missing, not a trajectory file, of another version or element type,
    /// or its length differs from what its header describes (the message names the field).</exception>
    public static Trajectory Read(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        if (!File.Exists(path))
        {
            throw new UserInputException($"trajectory file not found: {path}");
        }
        using var f = File.OpenRead(path);
        Span<byte> h = stackalloc byte[HeaderSize];
        if (f.ReadAtLeast(h, HeaderSize, throwOnEndOfStream: false) < HeaderSize)
        {
            throw new UserInputException($"{path}: shorter than the {HeaderSize}-byte trajectory header");
        }
        if (!h[..8].SequenceEqual(Magic))
        {
            throw new UserInputException($"{path}: not a trajectory file (magic is not \"OATRAJ01\")");
        }
        int version = BinaryPrimitives.ReadInt32LittleEndian(h[8..]);
        if (version != FormatVersion)
        {
            throw new UserInputException($"{path}: field 'format version' is {version}; this build reads version {FormatVersion}");
        }
        int elem = BinaryPrimitives.ReadInt32LittleEndian(h[12..]);
        if (elem != Float32)
        {
            throw new UserInputException($"{path}: field 'element type' is {elem}; only {Float32} (float32) is supported");
        }
        int steps = BinaryPrimitives.ReadInt32LittleEndian(h[16..]);
        int states = BinaryPrimitives.ReadInt32LittleEndian(h[20..]);
        int c = BinaryPrimitives.ReadInt32LittleEndian(h[24..]);
        int height = BinaryPrimitives.ReadInt32LittleEndian(h[28..]);
        int w = BinaryPrimitives.ReadInt32LittleEndian(h[32..]);
        int kind = BinaryPrimitives.ReadInt32LittleEndian(h[36..]);
        long seed = BinaryPrimitives.ReadInt64LittleEndian(h[40..]);
        double eta = BinaryPrimitives.ReadDoubleLittleEndian(h[48..]);
        int flags = BinaryPrimitives.ReadInt32LittleEndian(h[56..]);
        int trainT = BinaryPrimitives.ReadInt32LittleEndian(h[60..]);
        if (steps < 0 || states != steps + 1)
        {
            throw new UserInputException($"{path}: fields 'steps' ({steps}) and 'state count' ({states}) disagree; expected state count = steps + 1");
        }
        if (c < 1 || height < 1 || w < 1)
        {
            throw new UserInputException($"{path}: fields C, H, W must be positive (found {c}, {height}, {w})");
        }
        if (!Enum.IsDefined((SamplerKind)kind))
        {
            throw new UserInputException($"{path}: field 'sampler kind' is {kind}; expected 1 (DDPM) or 2 (DDIM)");
        }
        long stateValues = (long)states * c * height * w;
        long expectedLength = HeaderSize + 8L * steps + 4L * stateValues;
        if (f.Length != expectedLength)
        {
            throw new UserInputException($"{path}: the header describes {steps} steps of {c}×{height}×{w} ({expectedLength} bytes) but the file has {f.Length} bytes");
        }
        var tsBytes = new byte[8 * steps];
        f.ReadExactly(tsBytes);
        var timesteps = new long[steps];
        for (int i = 0; i < steps; i++)
        {
            timesteps[i] = BinaryPrimitives.ReadInt64LittleEndian(tsBytes.AsSpan(8 * i));
        }
        var data = new float[checked((int)stateValues)];
        f.ReadExactly(MemoryMarshal.AsBytes(data.AsSpan()));
        if (!BitConverter.IsLittleEndian)
        {
            var raw = MemoryMarshal.AsBytes(data.AsSpan());
            for (int i = 0; i < data.Length; i++)
            {
                data[i] = BinaryPrimitives.ReadSingleLittleEndian(raw.Slice(4 * i, 4));
            }
        }
        return new Trajectory((SamplerKind)kind, seed, c, height, w, timesteps, data, eta, (flags & FlagClipped) != 0, trainT);
    }
}
