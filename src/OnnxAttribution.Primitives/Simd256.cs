using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace OnnxAttribution.Primitives;

/// <summary>256-bit vectors: 8 float lanes.</summary>
public readonly unsafe struct Simd256 : ISimd<Vector256<float>, Vector256<uint>>
{
    /// <inheritdoc/>
    public static int Count => Vector256<float>.Count;
    /// <inheritdoc/>
    public static Vector256<float> Zero => Vector256<float>.Zero;
    /// <inheritdoc/>
    public static Vector256<uint> LaneBits => Vector256.Create(1u, 2, 4, 8, 16, 32, 64, 128);
    /// <inheritdoc/>
    public static Vector256<uint> Indices => Vector256<uint>.Indices;
    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<float> Load(float* source) => Vector256.Load(source);
    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static void Store(float* destination, Vector256<float> value) => value.Store(destination);
    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<uint> Load(uint* source) => Vector256.Load(source);
    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static void Store(uint* destination, Vector256<uint> value) => value.Store(destination);
    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<float> Create(float value) => Vector256.Create(value);
    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<uint> Create(uint value) => Vector256.Create(value);
    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<float> Add(Vector256<float> a, Vector256<float> b) => a + b;
    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<float> Subtract(Vector256<float> a, Vector256<float> b) => a - b;
    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<float> Multiply(Vector256<float> a, Vector256<float> b) => a * b;
    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<float> Divide(Vector256<float> a, Vector256<float> b) => a / b;
    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<float> Sqrt(Vector256<float> a) => Vector256.Sqrt(a);
    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<float> FusedMultiplyAdd(Vector256<float> a, Vector256<float> b, Vector256<float> addend) =>
        Vector256.FusedMultiplyAdd(a, b, addend);
    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<float> Select(Vector256<uint> mask, Vector256<float> whenSet, Vector256<float> whenClear) =>
        Vector256.ConditionalSelect(mask.AsSingle(), whenSet, whenClear);
    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<uint> Add(Vector256<uint> a, Vector256<uint> b) => a + b;
    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<uint> Multiply(Vector256<uint> a, Vector256<uint> b) => a * b;
    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<uint> Xor(Vector256<uint> a, Vector256<uint> b) => a ^ b;
    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<uint> And(Vector256<uint> a, Vector256<uint> b) => a & b;
    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<uint> Or(Vector256<uint> a, Vector256<uint> b) => a | b;
    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<uint> ShiftRight(Vector256<uint> a, int count) => Vector256.ShiftRightLogical(a, count);
    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<uint> ShiftLeft(Vector256<uint> a, int count) => Vector256.ShiftLeft(a, count);
    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<uint> Equals(Vector256<uint> a, Vector256<uint> b) => Vector256.Equals(a, b);
    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<uint> GreaterThan(Vector256<float> a, Vector256<float> b) => Vector256.GreaterThan(a, b).AsUInt32();
    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<float> AsSingle(Vector256<uint> a) => a.AsSingle();
    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<uint> AsUInt32(Vector256<float> a) => a.AsUInt32();
    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<float> MultiplyAddEstimate(Vector256<float> a, Vector256<float> b, Vector256<float> addend) =>
        Vector256.MultiplyAddEstimate(a, b, addend);
    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float Sum(Vector256<float> value) => Vector256.Sum(value);

    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> LoadHalf(ushort* source) =>
        HalfBits.ToSingle<Simd256, Vector256<float>, Vector256<uint>>(Vector256.WidenLower(Vector128.Load((short*)source).ToVector256Unsafe()).AsUInt32());
}
