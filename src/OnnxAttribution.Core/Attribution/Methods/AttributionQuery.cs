using OnnxAttribution.Runtime.Sampling;

namespace OnnxAttribution.Core.Attribution.Methods;

/// <summary>
/// A query: the image attributed (C·H·W values in [-1, 1]) and, when it was generated here, its sampling trajectory
/// (methods that attribute steps of the trajectory need it).
/// </summary>
/// <param name="Label">Names the query in answers and messages (a file name, <c>seed 7</c>).</param>
/// <param name="Image">The image.</param>
/// <param name="Trajectory">Its sampling trajectory, when generated here.</param>
public sealed record AttributionQuery(string Label, float[] Image, Trajectory? Trajectory = null)
{
    /// <summary>For a conditional model, the condition the image is attributed under (its class label: the one it was generated
    /// with, or the one the user names for a given image); null for an unconditional model.</summary>
    public long? Condition { get; init; }
}
