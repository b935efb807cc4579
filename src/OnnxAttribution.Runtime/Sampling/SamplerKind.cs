namespace OnnxAttribution.Runtime.Sampling;

/// <summary>Which reverse process generates images. The numeric values are written in trajectory files.</summary>
public enum SamplerKind
{
    /// <summary>DDPM ancestral sampling (Ho et al. 2020, Algorithm 2) with σ_t² = β_t.</summary>
    Ddpm = 1,

    /// <summary>DDIM (Song, Meng &amp; Ermon 2021, eq. 12) with stochasticity η.</summary>
    Ddim = 2,
}
