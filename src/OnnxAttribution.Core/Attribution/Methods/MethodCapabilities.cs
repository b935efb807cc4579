namespace OnnxAttribution.Core.Attribution.Methods;

/// <summary>
/// What a method can do, declared by the method itself (<see cref="IAttributionMethod.Capabilities"/>): the CLI, the
/// evaluation, store updates and the server ask these instead of comparing method names, so a new method states its own
/// and nothing outside it needs to learn its name. Whether a method's damping can be chosen again after its store is built
/// is its type's (<see cref="IDampedMethod"/>), as that capability comes with the work of doing it.
/// </summary>
public sealed record MethodCapabilities
{
    /// <summary>It attributes models that take a condition (a class label or a prompt); without it such a model is refused.</summary>
    public bool ConditionalModels { get; init; }

    /// <summary>Its queries honour <see cref="Runtime.SessionSettings.QueryTimesteps"/> (the fast query setting of the TRAK kernel).</summary>
    public bool QueryTimesteps { get; init; }

    /// <summary>Its stores take rows added and removed in place (<c>append</c>, <c>remove</c>): its kernel is a sum over rows.</summary>
    public bool Updatable { get; init; }

    /// <summary>It builds only with the dense projector (it normalises each timestep's whole gradient, which only the dense projection forms).</summary>
    public bool DenseProjectorOnly { get; init; }

    /// <summary>It needs the model's training checkpoints (<see cref="MethodSettings.Checkpoints"/>).</summary>
    public bool NeedsCheckpoints { get; init; }

    /// <summary>It scores with models of its own (an ensemble's), not the model the store is attributed for; its store opens without one.</summary>
    public bool OwnModels { get; init; }
}
