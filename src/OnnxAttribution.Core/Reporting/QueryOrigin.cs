using System.Globalization;
using OnnxAttribution.Runtime.Sampling;

namespace OnnxAttribution.Core.Reporting;

/// <summary>How a report's query image was made: sampled from a seed with the store's model, or given as a file.</summary>
/// <param name="Seed">The seed, for a generated query; null for a given image.</param>
/// <param name="Sampler">The sampler ("ddim" or "ddpm"), for a generated query.</param>
/// <param name="Steps">Sampling steps, for a generated query.</param>
/// <param name="FileName">The image's file name (no folder), for a given image; null for a generated query.</param>
public sealed record QueryOrigin(long? Seed, string? Sampler, int? Steps, string? FileName)
{
    /// <summary>A query sampled from <paramref name="seed"/>, as <c>attribute --seed</c> makes it.</summary>
    /// <param name="seed">The seed.</param>
    /// <param name="sampler">The sampler.</param>
    /// <param name="steps">Sampling steps.</param>
    public static QueryOrigin FromSeed(long seed, SamplerKind sampler, int steps) =>
        new(seed, sampler.ToString().ToLowerInvariant(), steps, null);

    /// <summary>A query given as an image file (or an upload) of this name.</summary>
    /// <param name="fileName">The name; a path is cut to its file name.</param>
    /// <exception cref="ArgumentNullException"><paramref name="fileName"/> is null.</exception>
    public static QueryOrigin FromFile(string fileName)
    {
        ArgumentNullException.ThrowIfNull(fileName);
        return new(null, null, null, Path.GetFileName(fileName));
    }

    /// <summary>One line for people: "seed 7, ddim sampler, 50 steps" or "uploaded image 'x.png'".</summary>
    public string Describe() => Seed is long seed
        ? string.Create(CultureInfo.InvariantCulture, $"generated from seed {seed} with the {Sampler} sampler in {Steps} steps")
        : $"given image '{FileName}'";
}
