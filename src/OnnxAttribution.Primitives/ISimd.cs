using System.Runtime.Intrinsics;

namespace OnnxAttribution.Primitives;

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
public unsafe interface ISimd<TF, TU>
    where TF : struct
    where TU : struct
{
    /// <summary>The number of float lanes.</summary>
    static abstract int Count { get; }

    /// <summary>Every lane 0.</summary>
    static abstract TF Zero { get; }

    /// <summary>Lanes from <paramref name="source"/>[0 … Count).</summary>
    static abstract TF Load(float* source);
    /// <summary>Writes the lanes of <paramref name="value"/> to <paramref name="destination"/>[0 … Count).</summary>
    static abstract void Store(float* destination, TF value);
    /// <summary>Lanes from <paramref name="source"/>[0 … Count).</summary>
    static abstract TU Load(uint* source);
    /// <summary>Writes the lanes of <paramref name="value"/> to <paramref name="destination"/>[0 … Count).</summary>
    static abstract void Store(uint* destination, TU value);
    /// <summary>Every lane <paramref name="value"/>.</summary>
    static abstract TF Create(float value);
    /// <summary>Every lane <paramref name="value"/>.</summary>
    static abstract TU Create(uint value);

    /// <summary>Lane i holds 2^i (lanes beyond 31 do not occur: the widest vector has 16 lanes).</summary>
    static abstract TU LaneBits { get; }

    /// <summary>Lane i holds i.</summary>
    static abstract TU Indices { get; }

    /// <summary>a + b per lane.</summary>
    static abstract TF Add(TF a, TF b);
    /// <summary>a − b per lane.</summary>
    static abstract TF Subtract(TF a, TF b);
    /// <summary>a · b per lane.</summary>
    static abstract TF Multiply(TF a, TF b);
    /// <summary>a / b per lane.</summary>
    static abstract TF Divide(TF a, TF b);
    /// <summary>√a per lane.</summary>
    static abstract TF Sqrt(TF a);
    /// <summary>a · b + addend per lane, rounded once, on every machine.</summary>
    static abstract TF FusedMultiplyAdd(TF a, TF b, TF addend);
    /// <summary>Per bit: <paramref name="whenSet"/> where <paramref name="mask"/> is set, else <paramref name="whenClear"/>.</summary>
    static abstract TF Select(TU mask, TF whenSet, TF whenClear);

    /// <summary>a + b per lane, modulo 2³².</summary>
    static abstract TU Add(TU a, TU b);
    /// <summary>a · b per lane, modulo 2³².</summary>
    static abstract TU Multiply(TU a, TU b);
    /// <summary>Bitwise exclusive or.</summary>
    static abstract TU Xor(TU a, TU b);
    /// <summary>Bitwise and.</summary>
    static abstract TU And(TU a, TU b);
    /// <summary>Bitwise or.</summary>
    static abstract TU Or(TU a, TU b);
    /// <summary>Logical shift right of each lane.</summary>
    static abstract TU ShiftRight(TU a, int count);
    /// <summary>Shift left of each lane.</summary>
    static abstract TU ShiftLeft(TU a, int count);
    /// <summary>All ones in lanes where a = b, zero elsewhere.</summary>
    static abstract TU Equals(TU a, TU b);
    /// <summary>All ones in lanes where a &gt; b, zero elsewhere.</summary>
    static abstract TU GreaterThan(TF a, TF b);

    /// <summary>The same bits read as floats.</summary>
    static abstract TF AsSingle(TU a);
    /// <summary>The same bits read as uints.</summary>
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
