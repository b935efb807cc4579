namespace OnnxAttribution.Store;

/// <summary>What a 2-D <c>.npy</c> header says: element type, shape, and where the row-major data starts.</summary>
/// <param name="DType">Element type (<c>'&lt;f4'</c> or <c>'&lt;f2'</c>).</param>
/// <param name="Rows">Shape[0].</param>
/// <param name="Columns">Shape[1].</param>
/// <param name="DataOffset">Byte offset of element (0, 0); a multiple of <see cref="NpyFormat.Alignment"/>.</param>
public readonly record struct NpyHeader(StoreDType DType, long Rows, long Columns, long DataOffset)
{
    /// <summary>Bytes of the data section: Rows · Columns · element size.</summary>
    public long DataLength => checked(Rows * Columns * DType.ElementSize());

    /// <summary>The whole file's length: <see cref="DataOffset"/> + <see cref="DataLength"/>.</summary>
    public long FileLength => checked(DataOffset + DataLength);
}
