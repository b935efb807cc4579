using OnnxAttribution.Core.Sampling;

namespace OnnxAttribution.Core.Attribution.Methods;

/// <summary>
/// A query: the image attributed (C·H·W values in [-1, 1]) and, when it was generated here, its sampling trajectory
/// (methods that attribute steps of the trajectory need it).
/// </summary>
public sealed record AttributionQuery(string Label, float[] Image, Trajectory? Trajectory = null);
