namespace OnnxAttribution.Store;

/// <summary>What a <see cref="StoreHistory"/> entry records beyond the files: who, why, which rows, the damping (the time is the time of recording).</summary>
public sealed record StoreChange
{
    /// <summary>Who asked for the change; null for the user name of the process.</summary>
    public string? By { get; init; }

    /// <summary>Why; null where no reason was given.</summary>
    public string? Reason { get; init; }

    /// <summary>Rows added: [first, end).</summary>
    public IReadOnlyList<long>? AddedRows { get; init; }

    /// <summary>Rows removed.</summary>
    public IReadOnlyList<long>? RemovedRows { get; init; }

    /// <summary>The relative damping of the preconditioner after the change.</summary>
    public double? Damping { get; init; }
}
