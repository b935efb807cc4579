namespace OnnxAttribution.Core.Attribution.Ensembles;

/// <summary>How the training rows are split into groups.</summary>
public enum GroupingKind
{
    /// <summary>A seeded permutation of the rows cut into G runs of equal size (±1).</summary>
    Random,

    /// <summary>Rows in order cut into G runs of equal size (±1): group of row i = ⌊i·G/N⌋.</summary>
    Contiguous,
}
