using System.Runtime.CompilerServices;

namespace OnnxAttribution.Primitives;

/// <summary>
/// The binary16 → binary32 conversion used by the scan, branch-free and exact for every bit pattern (the method of
/// F. Giesen's <c>half_to_float_fast5</c>):
/// sign-extend the 16 bits to 32, shift left by 13 and keep bit 31 (sign) and bits 27..13 (exponent and mantissa): this is a
/// float whose value is the half's times 2⁻¹¹², exactly, for normals and subnormals alike (a half subnormal becomes a float
/// subnormal). Multiplying by 2¹¹² rebiases the exponent exactly. Inf and NaN (half exponent 31) would come out as finite
/// numbers ≥ 65536, so their exponent field is set to all ones before the multiply: Inf stays Inf, and a NaN keeps its sign and
/// payload and is quieted by the multiply, as <c>(float)(Half)</c> and the F16C instruction do.
/// </summary>
/// <remarks>Requires float subnormals to be honoured (no DAZ/FTZ), which is .NET's default.</remarks>
public static class HalfBits
{
    /// <summary>Sign, exponent and mantissa bits of the shifted half.</summary>
    public const int KeepMask = unchecked((int)0x8FFFE000);
    /// <summary>The half's five exponent bits after the shift.</summary>
    public const int HalfExponentMask = 0x0F800000; // the half's 5 exponent bits after the shift
    /// <summary>A float's exponent bits.</summary>
    public const int SingleExponentMask = 0x7F800000;
    /// <summary>2¹¹², the factor that rebiases the exponent.</summary>
    public static readonly float Rebias = BitConverter.Int32BitsToSingle(0x77800000); // 2^112

    /// <summary>The float value of the binary16 bits <paramref name="h"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float ToSingle(ushort h)
    {
        int x = ((short)h << 13) & KeepMask;
        if ((x & HalfExponentMask) == HalfExponentMask)
        {
            x |= SingleExponentMask;
        }
        return BitConverter.Int32BitsToSingle(x) * Rebias;
    }

    /// <summary>
    /// <see cref="ToSingle(ushort)"/> per lane, branch-free: each lane of <paramref name="halves"/> holds binary16 bits
    /// sign-extended to 32 (what <see cref="ISimd{TF,TU}.LoadHalf"/> loads).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static TF ToSingle<TS, TF, TU>(TU halves)
        where TS : ISimd<TF, TU> where TF : struct where TU : struct
    {
        TU x = TS.And(TS.ShiftLeft(halves, 13), TS.Create(unchecked((uint)KeepMask)));
        TU special = TS.Equals(TS.And(x, TS.Create((uint)HalfExponentMask)), TS.Create((uint)HalfExponentMask));
        x = TS.Or(x, TS.And(special, TS.Create((uint)SingleExponentMask)));
        return TS.Multiply(TS.AsSingle(x), TS.Create(Rebias));
    }
}
