namespace OnnxAttribution.Core.Store;

/// <summary>The element type of a store's feature matrix, written in <c>meta.json</c> and in the <c>.npy</c> header.</summary>
public enum StoreDType
{
    /// <summary>IEEE 754 binary32, NumPy descr <c>'&lt;f4'</c>.</summary>
    Float32,

    /// <summary>IEEE 754 binary16, NumPy descr <c>'&lt;f2'</c>. Half the bytes; about 3 significant decimal digits, range ±65504.</summary>
    Float16,
}

/// <summary>Sizes and NumPy names of <see cref="StoreDType"/>.</summary>
public static class StoreDTypeExtensions
{
    /// <summary>Bytes per element: 4 or 2.</summary>
    public static int ElementSize(this StoreDType dtype) => dtype switch
    {
        StoreDType.Float32 => 4,
        StoreDType.Float16 => 2,
        _ => throw new ArgumentOutOfRangeException(nameof(dtype), dtype, "unknown store dtype"),
    };

    /// <summary>The NumPy <c>descr</c> string: <c>&lt;f4</c> or <c>&lt;f2</c>.</summary>
    public static string NpyDescr(this StoreDType dtype) => dtype switch
    {
        StoreDType.Float32 => "<f4",
        StoreDType.Float16 => "<f2",
        _ => throw new ArgumentOutOfRangeException(nameof(dtype), dtype, "unknown store dtype"),
    };
}
