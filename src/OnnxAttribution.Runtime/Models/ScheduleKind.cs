namespace OnnxAttribution.Runtime.Models;

/// <summary>The kind of β schedule of a DDPM.</summary>
public enum ScheduleKind
{
    /// <summary>β linear from β₁ to β_T (Ho et al. 2020).</summary>
    Linear,

    /// <summary>ᾱ_t = cos²(((t/T)+s)/(1+s)·π/2) normalised, β clipped at 0.999 (Nichol &amp; Dhariwal 2021, eq. 17).</summary>
    Cosine,
}
