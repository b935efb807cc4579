namespace OnnxAttribution.Runtime.Projection;

/// <summary>The distribution of a random projection's entries, scaled by 1/√k so that E‖Pᵀx‖² = ‖x‖².</summary>
public enum ProjectionKind
{
    /// <summary>±1/√k with equal probability (Achlioptas 2003). Applied as sign flips: no multiplies.</summary>
    Rademacher = 0,

    /// <summary>N(0, 1/k), by exact Box–Muller (see <see cref="ProjectionRowRng"/>).</summary>
    Gaussian = 1,
}
