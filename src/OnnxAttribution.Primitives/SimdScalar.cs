using System.Runtime.CompilerServices;

namespace OnnxAttribution.Primitives;

/// <summary>One float lane, no vector instructions: the scan's scalar path (<see cref="Sum"/> is the value itself).</summary>
public readonly unsafe struct SimdScalar : ISimd<float, uint>
{
    /// <inheritdoc/>
    public static int Count => 1;
    /// <inheritdoc/>
    public static float Zero => 0f;
    /// <inheritdoc/>
    public static uint LaneBits => 1u;
    /// <inheritdoc/>
    public static uint Indices => 0u;
    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float Load(float* source) => *source;
    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static void Store(float* destination, float value) => *destination = value;
    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static uint Load(uint* source) => *source;
    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static void Store(uint* destination, uint value) => *destination = value;
    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float Create(float value) => value;
    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static uint Create(uint value) => value;
    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float Add(float a, float b) => a + b;
    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float Subtract(float a, float b) => a - b;
    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float Multiply(float a, float b) => a * b;
    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float Divide(float a, float b) => a / b;
    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float Sqrt(float a) => MathF.Sqrt(a);
    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float FusedMultiplyAdd(float a, float b, float addend) => MathF.FusedMultiplyAdd(a, b, addend);
    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float Select(uint mask, float whenSet, float whenClear) => AsSingle((mask & AsUInt32(whenSet)) | (~mask & AsUInt32(whenClear)));
    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static uint Add(uint a, uint b) => a + b;
    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static uint Multiply(uint a, uint b) => a * b;
    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static uint Xor(uint a, uint b) => a ^ b;
    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static uint And(uint a, uint b) => a & b;
    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static uint Or(uint a, uint b) => a | b;
    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static uint ShiftRight(uint a, int count) => a >> count;
    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static uint ShiftLeft(uint a, int count) => a << count;
    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static uint Equals(uint a, uint b) => a == b ? uint.MaxValue : 0u;
    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static uint GreaterThan(float a, float b) => a > b ? uint.MaxValue : 0u;
    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float AsSingle(uint a) => BitConverter.UInt32BitsToSingle(a);
    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static uint AsUInt32(float a) => BitConverter.SingleToUInt32Bits(a);
    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float MultiplyAddEstimate(float a, float b, float addend) => float.MultiplyAddEstimate(a, b, addend);
    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float Sum(float value) => value;
    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float LoadHalf(ushort* source) => HalfBits.ToSingle(*source);
}
