namespace OnnxAttribution.Imaging;

/// <summary>How a grid of images is laid out.</summary>
/// <param name="Columns">Tiles per row; the row count follows from the number of images.</param>
/// <param name="Scale">Integer upscaling of each image (nearest neighbour).</param>
/// <param name="Gap">Pixels between tiles and around the border.</param>
/// <param name="FontSize">Caption text size in pixels.</param>
public sealed record GridLayout(int Columns, int Scale = 4, int Gap = 4, float FontSize = 11f);
