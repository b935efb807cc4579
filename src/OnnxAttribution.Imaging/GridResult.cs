namespace OnnxAttribution.Imaging;

/// <summary>What <see cref="ImageGrid.Write"/> produced.</summary>
/// <param name="Width">The PNG's width in pixels.</param>
/// <param name="Height">The PNG's height in pixels.</param>
/// <param name="CaptionsDrawn">False when captions were asked for but no usable font was found, so they were left out.</param>
/// <param name="Note">Why captions were left out, or null.</param>
public sealed record GridResult(int Width, int Height, bool CaptionsDrawn, string? Note);
