namespace OnnxAttribution.Training;

/// <summary>One run of the gradient graph against TorchSharp: a batch size and its timesteps.</summary>
public sealed record GradientCheckCase(
    string Model,
    int BatchSize,
    IReadOnlyList<long> Timesteps,
    double ForwardMaxAbsError,
    double GradientMaxRelativeError,
    string WorstParameter,
    IReadOnlyList<LayerGradientError> Layers);
