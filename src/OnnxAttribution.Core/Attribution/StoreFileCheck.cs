namespace OnnxAttribution.Core.Attribution;

/// <summary>One check of <see cref="StoreVerifier.Verify"/>: what was checked, in which file, and what was found.</summary>
/// <param name="File">The file checked (a path).</param>
/// <param name="Check">What was checked (e.g. "chunks", "finite", "checksum", "model file").</param>
/// <param name="Ok">Whether it passed.</param>
/// <param name="Detail">What was found: the damaged row ranges and hashes when it failed; a note when it passed.</param>
public sealed record StoreFileCheck(string File, string Check, bool Ok, string Detail);
