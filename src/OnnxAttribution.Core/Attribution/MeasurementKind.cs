namespace OnnxAttribution.Core.Attribution;

/// <summary>
/// The function f whose gradient is attributed, as a cotangent fed to the gradient graph (docs/design.md: one graph
/// serves every measurement). D is the number of output elements per example.
/// </summary>
public enum MeasurementKind
{
    /// <summary>The diffusion loss ‖ε − ε̂‖²/D; cotangent 2(ε̂ − ε)/D (TRAK with the training loss).</summary>
    Loss,

    /// <summary>D-TRAK's "Square": the squared output norm ‖ε̂‖²/D; cotangent 2ε̂/D (Zheng et al. 2024, Table 1).</summary>
    Square,

    /// <summary>
    /// The mean of the output, Σε̂/D; cotangent 1/D everywhere. DAS's public code differentiates this (Lin et al. 2024): the
    /// output's Jacobian projected onto the all-ones direction, the paper's speed-up of projecting the output dimension taken to one.
    /// </summary>
    Mean,
}
