using OnnxAttribution.Imaging;
using OnnxAttribution.Primitives;

namespace OnnxAttribution.Core.Data;

/// <summary>Reads a folder of PNG images as a dataset, in ordinal order of file name.</summary>
internal static class PngFolder
{
    /// <summary>Reads every <c>*.png</c> in <paramref name="directory"/> (not recursive).</summary>
    /// <param name="directory">The folder.</param>
    /// <param name="name">The dataset's name; null for the folder's name.</param>
    /// <remarks>The channel count and size are those of the first file; labels are absent.</remarks>
    /// <exception cref="UserInputException">The folder is missing or empty, or a file is unreadable or differs from the first
    /// in size or channel count (the message names it).</exception>
    public static ImageDataset Read(string directory, string? name = null)
    {
        ArgumentNullException.ThrowIfNull(directory);
        if (!Directory.Exists(directory))
        {
            throw new UserInputException($"image folder not found: {directory}");
        }
        var files = Directory.GetFiles(directory)
            .Where(f => f.EndsWith(".png", StringComparison.OrdinalIgnoreCase))
            .OrderBy(f => Path.GetFileName(f), StringComparer.Ordinal)
            .ToArray();
        if (files.Length == 0)
        {
            throw new UserInputException($"{directory}: no .png files in this folder");
        }
        var (first, c, h, w) = PngImage.ReadBytes(files[0]);
        int len = first.Length;
        var bytes = new byte[(long)files.Length * len];
        first.CopyTo(bytes, 0);
        for (int i = 1; i < files.Length; i++)
        {
            var (px, ci, hi, wi) = PngImage.ReadBytes(files[i]);
            if (hi != h || wi != w)
            {
                throw new UserInputException($"{files[i]}: image is {wi}×{hi} but {Path.GetFileName(files[0])} (the first file) is {w}×{h}; all images in a folder must be one size");
            }
            if (ci != c)
            {
                throw new UserInputException($"{files[i]}: image is {Describe(ci)} but {Path.GetFileName(files[0])} (the first file) is {Describe(c)}; all images in a folder must be one kind");
            }
            px.CopyTo(bytes, (long)i * len);
        }
        return ImageDataset.FromBytes(name ?? new DirectoryInfo(directory).Name, files.Length, c, h, w, bytes);
    }

    private static string Describe(int channels) => channels == 1 ? "grayscale" : "colour (RGB)";
}
