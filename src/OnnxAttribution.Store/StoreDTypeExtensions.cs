namespace OnnxAttribution.Store;

/// <summary>Sizes and NumPy names of <see cref="StoreDType"/>.</summary>
public static class StoreDTypeExtensions
{
    /// <summary>Bytes per element: 4, 2 or 1.</summary>
    public static int ElementSize(this StoreDType dtype) => dtype switch
    {
        StoreDType.Float32 => 4,
        StoreDType.Float16 => 2,
        StoreDType.Int8 => 1,
        _ => throw new ArgumentOutOfRangeException(nameof(dtype), dtype, "unknown store dtype"),
    };

    /// <summary>The NumPy <c>descr</c> string: <c>&lt;f4</c>, <c>&lt;f2</c> or <c>|i1</c>.</summary>
    public static string NpyDescr(this StoreDType dtype) => dtype switch
    {
        StoreDType.Float32 => "<f4",
        StoreDType.Float16 => "<f2",
        StoreDType.Int8 => "|i1",
        _ => throw new ArgumentOutOfRangeException(nameof(dtype), dtype, "unknown store dtype"),
    };
}
