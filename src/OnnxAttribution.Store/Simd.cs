using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using OnnxAttribution.Store;

namespace OnnxAttribution.Core.Numerics;

/// <summary>
/// One SIMD width seen through static abstract members, so that each kernel (the projection kernels, the store scan) is
/// written once and the JIT compiles it separately for <see cref="Vector512{T}"/>, <see cref="Vector256{T}"/>,
/// <see cref="Vector128{T}"/> and a single float (<see cref="SimdScalar"/>): a value-type type argument gets its own
/// specialised code, every member inlines to one instruction or a few, and no call is virtual at run time.
/// </summary>
/// <remarks>
/// Lane i of a vector loaded from <c>p</c> holds <c>p[i]</c>. Most members are operations that IEEE 754 rounds exactly once
/// (add, subtract, multiply, divide, square root, fused multiply-add), bit operations, or exact conversions
/// (<see cref="LoadHalf"/>): a kernel that uses only those and sums each element in an order that does not depend on the
/// lane count produces the same numbers at every width, and the projection kernels rely on this (their golden-value tests
/// pin the bits across widths). Two members are not like that; the scan uses them, the projection kernels must not:
/// <see cref="MultiplyAddEstimate"/> is an estimate (fused where the hardware has FMA, a rounded multiply then add where
/// not, so it differs between machines), and <see cref="Sum"/> adds the lanes in a fixed order that depends on the
/// width. No other estimates, no library transcendentals, which differ between widths and machines.
/// </remarks>
/// <typeparam name="TF">The float vector.</typeparam>
/// <typeparam name="TU">The uint vector of the same width.</typeparam>
internal unsafe interface ISimd<TF, TU>
    where TF : struct
    where TU : struct
{
    static abstract int Count { get; }

    static abstract TF Zero { get; }

    static abstract TF Load(float* source);
    static abstract void Store(float* destination, TF value);
    static abstract TU Load(uint* source);
    static abstract void Store(uint* destination, TU value);
    static abstract TF Create(float value);
    static abstract TU Create(uint value);

    /// <summary>Lane i holds 2^i (lanes beyond 31 do not occur: the widest vector has 16 lanes).</summary>
    static abstract TU LaneBits { get; }

    /// <summary>Lane i holds i.</summary>
    static abstract TU Indices { get; }

    static abstract TF Add(TF a, TF b);
    static abstract TF Subtract(TF a, TF b);
    static abstract TF Multiply(TF a, TF b);
    static abstract TF Divide(TF a, TF b);
    static abstract TF Sqrt(TF a);
    static abstract TF FusedMultiplyAdd(TF a, TF b, TF addend);
    static abstract TF Select(TU mask, TF whenSet, TF whenClear);

    static abstract TU Add(TU a, TU b);
    static abstract TU Multiply(TU a, TU b);
    static abstract TU Xor(TU a, TU b);
    static abstract TU And(TU a, TU b);
    static abstract TU Or(TU a, TU b);
    static abstract TU ShiftRight(TU a, int count);
    static abstract TU ShiftLeft(TU a, int count);
    static abstract TU Equals(TU a, TU b);
    static abstract TU GreaterThan(TF a, TF b);

    static abstract TF AsSingle(TU a);
    static abstract TU AsUInt32(TF a);

    /// <summary>
    /// <see cref="Count"/> binary16 values at <paramref name="source"/> as floats, exactly: lane i is
    /// <see cref="HalfBits.ToSingle(ushort)"/> of <c>source[i]</c>.
    /// </summary>
    static abstract TF LoadHalf(ushort* source);

    /// <summary>
    /// An estimate of a·b + addend: fused (one rounding) where the hardware has FMA, multiply then add (two roundings) where
    /// not. Not for kernels that must give the same bits everywhere: they use <see cref="FusedMultiplyAdd"/>.
    /// </summary>
    static abstract TF MultiplyAddEstimate(TF a, TF b, TF addend);

    /// <summary>Sum of the lanes in a fixed order (<c>VectorN.Sum</c>'s), which depends on the width.</summary>
    static abstract float Sum(TF value);
}

// LoadHalf sign-extends Count halves to 32-bit lanes and converts them with HalfBits.ToSingle's lane-wise form. Lane layout:
// lane i of the float vector is half i of the loaded block (WidenLower of a sign-extending widen keeps order); callers handle
// the remainder with the scalar form.

/// <summary>512-bit vectors: 16 float lanes.</summary>
internal readonly unsafe struct Simd512 : ISimd<Vector512<float>, Vector512<uint>>
{
    public static int Count => Vector512<float>.Count;
    public static Vector512<float> Zero => Vector512<float>.Zero;
    public static Vector512<uint> LaneBits => Vector512.Create(1u, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768);
    public static Vector512<uint> Indices => Vector512<uint>.Indices;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<float> Load(float* source) => Vector512.Load(source);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static void Store(float* destination, Vector512<float> value) => value.Store(destination);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<uint> Load(uint* source) => Vector512.Load(source);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static void Store(uint* destination, Vector512<uint> value) => value.Store(destination);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<float> Create(float value) => Vector512.Create(value);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<uint> Create(uint value) => Vector512.Create(value);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<float> Add(Vector512<float> a, Vector512<float> b) => a + b;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<float> Subtract(Vector512<float> a, Vector512<float> b) => a - b;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<float> Multiply(Vector512<float> a, Vector512<float> b) => a * b;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<float> Divide(Vector512<float> a, Vector512<float> b) => a / b;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<float> Sqrt(Vector512<float> a) => Vector512.Sqrt(a);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<float> FusedMultiplyAdd(Vector512<float> a, Vector512<float> b, Vector512<float> addend) =>
        Vector512.FusedMultiplyAdd(a, b, addend);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<float> Select(Vector512<uint> mask, Vector512<float> whenSet, Vector512<float> whenClear) =>
        Vector512.ConditionalSelect(mask.AsSingle(), whenSet, whenClear);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<uint> Add(Vector512<uint> a, Vector512<uint> b) => a + b;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<uint> Multiply(Vector512<uint> a, Vector512<uint> b) => a * b;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<uint> Xor(Vector512<uint> a, Vector512<uint> b) => a ^ b;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<uint> And(Vector512<uint> a, Vector512<uint> b) => a & b;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<uint> Or(Vector512<uint> a, Vector512<uint> b) => a | b;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<uint> ShiftRight(Vector512<uint> a, int count) => Vector512.ShiftRightLogical(a, count);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<uint> ShiftLeft(Vector512<uint> a, int count) => Vector512.ShiftLeft(a, count);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<uint> Equals(Vector512<uint> a, Vector512<uint> b) => Vector512.Equals(a, b);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<uint> GreaterThan(Vector512<float> a, Vector512<float> b) => Vector512.GreaterThan(a, b).AsUInt32();
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<float> AsSingle(Vector512<uint> a) => a.AsSingle();
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<uint> AsUInt32(Vector512<float> a) => a.AsUInt32();
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<float> MultiplyAddEstimate(Vector512<float> a, Vector512<float> b, Vector512<float> addend) =>
        Vector512.MultiplyAddEstimate(a, b, addend);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float Sum(Vector512<float> value) => Vector512.Sum(value);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> LoadHalf(ushort* source) =>
        HalfBits.ToSingle<Simd512, Vector512<float>, Vector512<uint>>(Vector512.WidenLower(Vector256.Load((short*)source).ToVector512Unsafe()).AsUInt32());
}

/// <summary>256-bit vectors: 8 float lanes.</summary>
internal readonly unsafe struct Simd256 : ISimd<Vector256<float>, Vector256<uint>>
{
    public static int Count => Vector256<float>.Count;
    public static Vector256<float> Zero => Vector256<float>.Zero;
    public static Vector256<uint> LaneBits => Vector256.Create(1u, 2, 4, 8, 16, 32, 64, 128);
    public static Vector256<uint> Indices => Vector256<uint>.Indices;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<float> Load(float* source) => Vector256.Load(source);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static void Store(float* destination, Vector256<float> value) => value.Store(destination);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<uint> Load(uint* source) => Vector256.Load(source);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static void Store(uint* destination, Vector256<uint> value) => value.Store(destination);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<float> Create(float value) => Vector256.Create(value);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<uint> Create(uint value) => Vector256.Create(value);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<float> Add(Vector256<float> a, Vector256<float> b) => a + b;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<float> Subtract(Vector256<float> a, Vector256<float> b) => a - b;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<float> Multiply(Vector256<float> a, Vector256<float> b) => a * b;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<float> Divide(Vector256<float> a, Vector256<float> b) => a / b;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<float> Sqrt(Vector256<float> a) => Vector256.Sqrt(a);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<float> FusedMultiplyAdd(Vector256<float> a, Vector256<float> b, Vector256<float> addend) =>
        Vector256.FusedMultiplyAdd(a, b, addend);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<float> Select(Vector256<uint> mask, Vector256<float> whenSet, Vector256<float> whenClear) =>
        Vector256.ConditionalSelect(mask.AsSingle(), whenSet, whenClear);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<uint> Add(Vector256<uint> a, Vector256<uint> b) => a + b;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<uint> Multiply(Vector256<uint> a, Vector256<uint> b) => a * b;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<uint> Xor(Vector256<uint> a, Vector256<uint> b) => a ^ b;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<uint> And(Vector256<uint> a, Vector256<uint> b) => a & b;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<uint> Or(Vector256<uint> a, Vector256<uint> b) => a | b;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<uint> ShiftRight(Vector256<uint> a, int count) => Vector256.ShiftRightLogical(a, count);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<uint> ShiftLeft(Vector256<uint> a, int count) => Vector256.ShiftLeft(a, count);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<uint> Equals(Vector256<uint> a, Vector256<uint> b) => Vector256.Equals(a, b);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<uint> GreaterThan(Vector256<float> a, Vector256<float> b) => Vector256.GreaterThan(a, b).AsUInt32();
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<float> AsSingle(Vector256<uint> a) => a.AsSingle();
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<uint> AsUInt32(Vector256<float> a) => a.AsUInt32();
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<float> MultiplyAddEstimate(Vector256<float> a, Vector256<float> b, Vector256<float> addend) =>
        Vector256.MultiplyAddEstimate(a, b, addend);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float Sum(Vector256<float> value) => Vector256.Sum(value);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> LoadHalf(ushort* source) =>
        HalfBits.ToSingle<Simd256, Vector256<float>, Vector256<uint>>(Vector256.WidenLower(Vector128.Load((short*)source).ToVector256Unsafe()).AsUInt32());
}

/// <summary>128-bit vectors: 4 float lanes (SSE, NEON).</summary>
internal readonly unsafe struct Simd128 : ISimd<Vector128<float>, Vector128<uint>>
{
    public static int Count => Vector128<float>.Count;
    public static Vector128<float> Zero => Vector128<float>.Zero;
    public static Vector128<uint> LaneBits => Vector128.Create(1u, 2, 4, 8);
    public static Vector128<uint> Indices => Vector128<uint>.Indices;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector128<float> Load(float* source) => Vector128.Load(source);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static void Store(float* destination, Vector128<float> value) => value.Store(destination);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector128<uint> Load(uint* source) => Vector128.Load(source);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static void Store(uint* destination, Vector128<uint> value) => value.Store(destination);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector128<float> Create(float value) => Vector128.Create(value);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector128<uint> Create(uint value) => Vector128.Create(value);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector128<float> Add(Vector128<float> a, Vector128<float> b) => a + b;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector128<float> Subtract(Vector128<float> a, Vector128<float> b) => a - b;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector128<float> Multiply(Vector128<float> a, Vector128<float> b) => a * b;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector128<float> Divide(Vector128<float> a, Vector128<float> b) => a / b;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector128<float> Sqrt(Vector128<float> a) => Vector128.Sqrt(a);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector128<float> FusedMultiplyAdd(Vector128<float> a, Vector128<float> b, Vector128<float> addend) =>
        Vector128.FusedMultiplyAdd(a, b, addend);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector128<float> Select(Vector128<uint> mask, Vector128<float> whenSet, Vector128<float> whenClear) =>
        Vector128.ConditionalSelect(mask.AsSingle(), whenSet, whenClear);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector128<uint> Add(Vector128<uint> a, Vector128<uint> b) => a + b;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector128<uint> Multiply(Vector128<uint> a, Vector128<uint> b) => a * b;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector128<uint> Xor(Vector128<uint> a, Vector128<uint> b) => a ^ b;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector128<uint> And(Vector128<uint> a, Vector128<uint> b) => a & b;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector128<uint> Or(Vector128<uint> a, Vector128<uint> b) => a | b;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector128<uint> ShiftRight(Vector128<uint> a, int count) => Vector128.ShiftRightLogical(a, count);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector128<uint> ShiftLeft(Vector128<uint> a, int count) => Vector128.ShiftLeft(a, count);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector128<uint> Equals(Vector128<uint> a, Vector128<uint> b) => Vector128.Equals(a, b);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector128<uint> GreaterThan(Vector128<float> a, Vector128<float> b) => Vector128.GreaterThan(a, b).AsUInt32();
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector128<float> AsSingle(Vector128<uint> a) => a.AsSingle();
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector128<uint> AsUInt32(Vector128<float> a) => a.AsUInt32();
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector128<float> MultiplyAddEstimate(Vector128<float> a, Vector128<float> b, Vector128<float> addend) =>
        Vector128.MultiplyAddEstimate(a, b, addend);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float Sum(Vector128<float> value) => Vector128.Sum(value);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<float> LoadHalf(ushort* source) =>
        HalfBits.ToSingle<Simd128, Vector128<float>, Vector128<uint>>(Vector128.WidenLower(Vector64.Load((short*)source).ToVector128Unsafe()).AsUInt32());
}

/// <summary>One float lane, no vector instructions: the scan's scalar path (<see cref="Sum"/> is the value itself).</summary>
internal readonly unsafe struct SimdScalar : ISimd<float, uint>
{
    public static int Count => 1;
    public static float Zero => 0f;
    public static uint LaneBits => 1u;
    public static uint Indices => 0u;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float Load(float* source) => *source;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static void Store(float* destination, float value) => *destination = value;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static uint Load(uint* source) => *source;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static void Store(uint* destination, uint value) => *destination = value;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float Create(float value) => value;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static uint Create(uint value) => value;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float Add(float a, float b) => a + b;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float Subtract(float a, float b) => a - b;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float Multiply(float a, float b) => a * b;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float Divide(float a, float b) => a / b;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float Sqrt(float a) => MathF.Sqrt(a);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float FusedMultiplyAdd(float a, float b, float addend) => MathF.FusedMultiplyAdd(a, b, addend);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float Select(uint mask, float whenSet, float whenClear) => AsSingle((mask & AsUInt32(whenSet)) | (~mask & AsUInt32(whenClear)));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static uint Add(uint a, uint b) => a + b;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static uint Multiply(uint a, uint b) => a * b;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static uint Xor(uint a, uint b) => a ^ b;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static uint And(uint a, uint b) => a & b;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static uint Or(uint a, uint b) => a | b;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static uint ShiftRight(uint a, int count) => a >> count;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static uint ShiftLeft(uint a, int count) => a << count;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static uint Equals(uint a, uint b) => a == b ? uint.MaxValue : 0u;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static uint GreaterThan(float a, float b) => a > b ? uint.MaxValue : 0u;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float AsSingle(uint a) => BitConverter.UInt32BitsToSingle(a);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static uint AsUInt32(float a) => BitConverter.SingleToUInt32Bits(a);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float MultiplyAddEstimate(float a, float b, float addend) => float.MultiplyAddEstimate(a, b, addend);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float Sum(float value) => value;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float LoadHalf(ushort* source) => HalfBits.ToSingle(*source);
}
