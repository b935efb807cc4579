using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace OnnxAttribution.Primitives;

// LoadHalf sign-extends Count halves to 32-bit lanes and converts them with HalfBits.ToSingle's lane-wise form. Lane layout:
// lane i of the float vector is half i of the loaded block (WidenLower of a sign-extending widen keeps order); callers handle
// the remainder with the scalar form.

/// <summary>512-bit vectors: 16 float lanes.</summary>
public readonly unsafe struct Simd512 : ISimd<Vector512<float>, Vector512<uint>>
{
    /// <inheritdoc/>
    public static int Count => Vector512<float>.Count;
    /// <inheritdoc/>
    public static Vector512<float> Zero => Vector512<float>.Zero;
    /// <inheritdoc/>
    public static Vector512<uint> LaneBits => Vector512.Create(1u, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768);
    /// <inheritdoc/>
    public static Vector512<uint> Indices => Vector512<uint>.Indices;
    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<float> Load(float* source) => Vector512.Load(source);
    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static void Store(float* destination, Vector512<float> value) => value.Store(destination);
    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<uint> Load(uint* source) => Vector512.Load(source);
    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static void Store(uint* destination, Vector512<uint> value) => value.Store(destination);
    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<float> Create(float value) => Vector512.Create(value);
    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<uint> Create(uint value) => Vector512.Create(value);
    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<float> Add(Vector512<float> a, Vector512<float> b) => a + b;
    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<float> Subtract(Vector512<float> a, Vector512<float> b) => a - b;
    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<float> Multiply(Vector512<float> a, Vector512<float> b) => a * b;
    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<float> Divide(Vector512<float> a, Vector512<float> b) => a / b;
    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<float> Sqrt(Vector512<float> a) => Vector512.Sqrt(a);
    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<float> FusedMultiplyAdd(Vector512<float> a, Vector512<float> b, Vector512<float> addend) =>
        Vector512.FusedMultiplyAdd(a, b, addend);
    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<float> Select(Vector512<uint> mask, Vector512<float> whenSet, Vector512<float> whenClear) =>
        Vector512.ConditionalSelect(mask.AsSingle(), whenSet, whenClear);
    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<uint> Add(Vector512<uint> a, Vector512<uint> b) => a + b;
    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<uint> Multiply(Vector512<uint> a, Vector512<uint> b) => a * b;
    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<uint> Xor(Vector512<uint> a, Vector512<uint> b) => a ^ b;
    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<uint> And(Vector512<uint> a, Vector512<uint> b) => a & b;
    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<uint> Or(Vector512<uint> a, Vector512<uint> b) => a | b;
    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<uint> ShiftRight(Vector512<uint> a, int count) => Vector512.ShiftRightLogical(a, count);
    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<uint> ShiftLeft(Vector512<uint> a, int count) => Vector512.ShiftLeft(a, count);
    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<uint> Equals(Vector512<uint> a, Vector512<uint> b) => Vector512.Equals(a, b);
    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<uint> GreaterThan(Vector512<float> a, Vector512<float> b) => Vector512.GreaterThan(a, b).AsUInt32();
    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<float> AsSingle(Vector512<uint> a) => a.AsSingle();
    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<uint> AsUInt32(Vector512<float> a) => a.AsUInt32();
    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<float> MultiplyAddEstimate(Vector512<float> a, Vector512<float> b, Vector512<float> addend) =>
        Vector512.MultiplyAddEstimate(a, b, addend);
    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float Sum(Vector512<float> value) => Vector512.Sum(value);

    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> LoadHalf(ushort* source) =>
        HalfBits.ToSingle<Simd512, Vector512<float>, Vector512<uint>>(Vector512.WidenLower(Vector256.Load((short*)source).ToVector512Unsafe()).AsUInt32());
}
