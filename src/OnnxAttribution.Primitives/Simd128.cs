using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace OnnxAttribution.Primitives;

/// <summary>128-bit vectors: 4 float lanes (SSE, NEON).</summary>
public readonly unsafe struct Simd128 : ISimd<Vector128<float>, Vector128<uint>>
{
    /// <inheritdoc/>
    public static int Count => Vector128<float>.Count;
    /// <inheritdoc/>
    public static Vector128<float> Zero => Vector128<float>.Zero;
    /// <inheritdoc/>
    public static Vector128<uint> LaneBits => Vector128.Create(1u, 2, 4, 8);
    /// <inheritdoc/>
    public static Vector128<uint> Indices => Vector128<uint>.Indices;
    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector128<float> Load(float* source) => Vector128.Load(source);
    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static void Store(float* destination, Vector128<float> value) => value.Store(destination);
    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector128<uint> Load(uint* source) => Vector128.Load(source);
    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static void Store(uint* destination, Vector128<uint> value) => value.Store(destination);
    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector128<float> Create(float value) => Vector128.Create(value);
    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector128<uint> Create(uint value) => Vector128.Create(value);
    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector128<float> Add(Vector128<float> a, Vector128<float> b) => a + b;
    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector128<float> Subtract(Vector128<float> a, Vector128<float> b) => a - b;
    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector128<float> Multiply(Vector128<float> a, Vector128<float> b) => a * b;
    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector128<float> Divide(Vector128<float> a, Vector128<float> b) => a / b;
    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector128<float> Sqrt(Vector128<float> a) => Vector128.Sqrt(a);
    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector128<float> FusedMultiplyAdd(Vector128<float> a, Vector128<float> b, Vector128<float> addend) =>
        Vector128.FusedMultiplyAdd(a, b, addend);
    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector128<float> Select(Vector128<uint> mask, Vector128<float> whenSet, Vector128<float> whenClear) =>
        Vector128.ConditionalSelect(mask.AsSingle(), whenSet, whenClear);
    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector128<uint> Add(Vector128<uint> a, Vector128<uint> b) => a + b;
    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector128<uint> Multiply(Vector128<uint> a, Vector128<uint> b) => a * b;
    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector128<uint> Xor(Vector128<uint> a, Vector128<uint> b) => a ^ b;
    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector128<uint> And(Vector128<uint> a, Vector128<uint> b) => a & b;
    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector128<uint> Or(Vector128<uint> a, Vector128<uint> b) => a | b;
    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector128<uint> ShiftRight(Vector128<uint> a, int count) => Vector128.ShiftRightLogical(a, count);
    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector128<uint> ShiftLeft(Vector128<uint> a, int count) => Vector128.ShiftLeft(a, count);
    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector128<uint> Equals(Vector128<uint> a, Vector128<uint> b) => Vector128.Equals(a, b);
    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector128<uint> GreaterThan(Vector128<float> a, Vector128<float> b) => Vector128.GreaterThan(a, b).AsUInt32();
    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector128<float> AsSingle(Vector128<uint> a) => a.AsSingle();
    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector128<uint> AsUInt32(Vector128<float> a) => a.AsUInt32();
    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector128<float> MultiplyAddEstimate(Vector128<float> a, Vector128<float> b, Vector128<float> addend) =>
        Vector128.MultiplyAddEstimate(a, b, addend);
    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float Sum(Vector128<float> value) => Vector128.Sum(value);

    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<float> LoadHalf(ushort* source) =>
        HalfBits.ToSingle<Simd128, Vector128<float>, Vector128<uint>>(Vector128.WidenLower(Vector64.Load((short*)source).ToVector128Unsafe()).AsUInt32());
}
