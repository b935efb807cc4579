using OnnxAttribution.Primitives;

namespace OnnxAttribution.Core.Data;

/// <summary>
/// Turns a <c>--data</c> value into a dataset:
/// <list type="bullet">
/// <item><description><c>fashion-mnist</c> (or <c>fashion-mnist-train</c>): the training split from the Debian package
/// <c>dataset-fashion-mnist</c>, files <c>train-images-idx3-ubyte.gz</c> and <c>train-labels-idx1-ubyte.gz</c>;
/// <c>fashion-mnist-test</c>: its <c>t10k-*</c> files;</description></item>
/// <item><description><c>embedded</c> (or <c>fashion-mnist-16</c>): the small 16×16 subset shipped in <c>models/data/fashion-mnist-16</c>;</description></item>
/// <item><description>a directory: a folder of PNG images (<see cref="PngFolder"/>);</description></item>
/// <item><description>a path to an idx3 image file (gzip or not): IDX, with the labels file beside it when one is found
/// (<c>images-idx3</c> replaced by <c>labels-idx1</c> in the name).</description></item>
/// </list>
/// </summary>
/// <param name="FashionMnistDirectory">Where the Debian package puts Fashion-MNIST.</param>
/// <param name="EmbeddedDataDirectory">The folder that holds <c>fashion-mnist-16/</c>, or null to search for <c>models/data</c>
/// upwards from the application's folder and the current directory.</param>
public sealed record DatasetLocator(string FashionMnistDirectory = DatasetLocator.DebianFashionMnistDirectory, string? EmbeddedDataDirectory = null)
{
    /// <summary>The folder the Debian package <c>dataset-fashion-mnist</c> installs into.</summary>
    public const string DebianFashionMnistDirectory = "/usr/share/datasets/fashion-mnist";

    /// <summary>The name of the embedded dataset's folder under <c>models/data</c>.</summary>
    public const string EmbeddedName = "fashion-mnist-16";

    /// <summary>The file names of the embedded dataset.</summary>
    public const string EmbeddedImagesFile = "train-images-idx3-ubyte.gz";

    /// <inheritdoc cref="EmbeddedImagesFile"/>
    public const string EmbeddedLabelsFile = "train-labels-idx1-ubyte.gz";

    /// <summary>The <see cref="ImageDataset.Fingerprint"/> of the shipped embedded dataset; a test checks the files against it.</summary>
    public const string EmbeddedFingerprint = "2f77801b23525c931d8f156e240d1643130dea53298b253d260b62a741d03da7";

    /// <summary>Whether <paramref name="data"/> is a dataset name (embedded, fashion-mnist, …) rather than a path; names win over paths.</summary>
    public static bool IsName(string data)
    {
        ArgumentNullException.ThrowIfNull(data);
        return data.Trim().ToLowerInvariant() is "fashion-mnist" or "fashion-mnist-train" or "fashion-mnist-test" or "embedded" or EmbeddedName;
    }

    /// <summary>The Fashion-MNIST classes' names, label 0 … 9 (Xiao et al. 2017).</summary>
    public static IReadOnlyList<string> FashionMnistClasses { get; } =
        ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"];

    /// <summary>The class names of a named dataset (every named dataset is Fashion-MNIST); empty for a path.</summary>
    public static IReadOnlyList<string> ClassNamesOf(string data) => IsName(data) ? FashionMnistClasses : [];

    /// <summary>Loads the dataset <paramref name="data"/> names.</summary>
    /// <exception cref="UserInputException">The name is unknown, or its files are missing or unreadable (the message says how to get them).</exception>
    public ImageDataset Load(string data)
    {
        ArgumentNullException.ThrowIfNull(data);
        switch (data.Trim().ToLowerInvariant())
        {
            case "fashion-mnist":
            case "fashion-mnist-train":
                return LoadFashionMnist("train", "fashion-mnist");
            case "fashion-mnist-test":
                return LoadFashionMnist("t10k", "fashion-mnist-test");
            case "embedded":
            case EmbeddedName:
                return LoadEmbedded();
        }
        if (Directory.Exists(data))
        {
            return PngFolder.Read(data);
        }
        if (File.Exists(data))
        {
            int? rank = IdxFile.PeekRank(data);
            if (rank == 1)
            {
                throw new UserInputException($"{data}: this is an IDX label file (idx1); pass the image file (idx3) instead");
            }
            if (rank != 3)
            {
                throw new UserInputException($"{data}: not an IDX image file (idx3-ubyte, gzip or not)");
            }
            var labels = LabelsBeside(data);
            return IdxFile.ReadDataset(data, labels, Path.GetFileName(data));
        }
        throw new SettingException("Data", data,
            "not a known dataset name (fashion-mnist, fashion-mnist-test, embedded), nor an existing folder of PNGs or IDX file");
    }

    /// <summary>Loads the dataset <paramref name="data"/> names, takes the <paramref name="subset"/>, then resizes to
    /// <paramref name="size"/>×<paramref name="size"/> when it differs (null: as stored).</summary>
    /// <exception cref="UserInputException">The name, the subset or the size is not valid for this dataset.</exception>
    public ImageDataset Load(string data, string subset, int? size)
    {
        var dataset = SubsetSpec.Parse(subset).Apply(Load(data));
        if (size is int s && (dataset.Height != s || dataset.Width != s))
        {
            if (s <= 0)
            {
                throw new SettingException("Size", s, "must be positive");
            }
            dataset = dataset.Resize(s, s);
        }
        return dataset;
    }

    /// <summary>The folder holding the embedded dataset's files.</summary>
    /// <exception cref="UserInputException">It cannot be found.</exception>
    public string ResolveEmbeddedDirectory()
    {
        if (EmbeddedDataDirectory is not null)
        {
            var dir = Path.Combine(EmbeddedDataDirectory, EmbeddedName);
            return Directory.Exists(dir) ? dir
                : throw new UserInputException($"embedded dataset not found: {dir} does not exist");
        }
        return FindEmbeddedDirectory([AppContext.BaseDirectory, Directory.GetCurrentDirectory()])
            ?? throw new UserInputException(
                $"embedded dataset not found: no models/data/{EmbeddedName}/{EmbeddedImagesFile} in or above {AppContext.BaseDirectory} or {Directory.GetCurrentDirectory()}");
    }

    /// <summary>The first <c>models/data/fashion-mnist-16</c> (or <c>data/fashion-mnist-16</c>) holding the images file,
    /// looking in each start directory and then its parents; null when there is none.</summary>
    internal static string? FindEmbeddedDirectory(IEnumerable<string> startDirectories)
    {
        foreach (var start in startDirectories)
        {
            for (var d = new DirectoryInfo(start); d is not null; d = d.Parent)
            {
                foreach (var candidate in new[] { Path.Combine(d.FullName, "models", "data", EmbeddedName), Path.Combine(d.FullName, "data", EmbeddedName) })
                {
                    if (File.Exists(Path.Combine(candidate, EmbeddedImagesFile)))
                    {
                        return candidate;
                    }
                }
            }
        }
        return null;
    }

    private ImageDataset LoadEmbedded()
    {
        var dir = ResolveEmbeddedDirectory();
        return IdxFile.ReadDataset(Path.Combine(dir, EmbeddedImagesFile), Path.Combine(dir, EmbeddedLabelsFile), EmbeddedName);
    }

    private ImageDataset LoadFashionMnist(string split, string name)
    {
        var images = Path.Combine(FashionMnistDirectory, $"{split}-images-idx3-ubyte.gz");
        var labels = Path.Combine(FashionMnistDirectory, $"{split}-labels-idx1-ubyte.gz");
        foreach (var f in new[] { images, labels })
        {
            if (!File.Exists(f))
            {
                throw new UserInputException(
                    $"Fashion-MNIST not found: {f} is missing. Install it with `sudo apt-get install dataset-fashion-mnist` (Debian/Ubuntu), " +
                    "or give the path of an idx3-ubyte file or a folder of PNGs as the data");
            }
        }
        return IdxFile.ReadDataset(images, labels, name);
    }

    private static string? LabelsBeside(string imagesPath)
    {
        var file = Path.GetFileName(imagesPath);
        if (!file.Contains("images-idx3", StringComparison.Ordinal))
        {
            return null;
        }
        var candidate = Path.Combine(Path.GetDirectoryName(Path.GetFullPath(imagesPath))!, file.Replace("images-idx3", "labels-idx1", StringComparison.Ordinal));
        return File.Exists(candidate) ? candidate : null;
    }
}
