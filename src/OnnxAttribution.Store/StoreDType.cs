namespace OnnxAttribution.Store;

/// <summary>The element type of a store's feature matrix, written in <c>meta.json</c> and in the <c>.npy</c> header.</summary>
public enum StoreDType
{
    /// <summary>IEEE 754 binary32, NumPy descr <c>'&lt;f4'</c>.</summary>
    Float32,

    /// <summary>IEEE 754 binary16, NumPy descr <c>'&lt;f2'</c>. Half the bytes; about 3 significant decimal digits, range ±65504.</summary>
    Float16,

    /// <summary>Signed 8-bit integers, NumPy descr <c>'|i1'</c>: only the 8-bit copy of a store's rows (<see cref="StoreFiles.QuantizedFeatures"/>),
    /// never the dtype of features.npy or of meta.json.</summary>
    Int8,
}
