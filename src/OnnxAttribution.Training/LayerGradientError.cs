namespace OnnxAttribution.Training;

/// <summary>The error of one parameter's per-example gradient, worst over the batch.</summary>
public sealed record LayerGradientError(string Parameter, long Size, double MaxRelativeError, double MaxAbsError);
