using OnnxAttribution.Core.Attribution;
using OnnxAttribution.Core.Attribution.Methods;
using OnnxAttribution.Core.Data;

namespace OnnxAttribution.Server.Tests.Support;

/// <summary>A small D-TRAK store of the shipped model (fm16) over the first rows of the embedded dataset, for server tests.</summary>
internal static class SmallStore
{
    /// <summary>The shipped model every test store is built with.</summary>
    public static string Model => Path.Combine(Repository.Root, "models", "fm16");

    /// <summary>The training images of a store built with <paramref name="rows"/> rows.</summary>
    public static ImageDataset Data(int rows) => new DatasetLocator().Load("embedded", $"0:{rows}", 16);

    /// <summary>Builds a D-TRAK store (2 timesteps) of <paramref name="rows"/> rows, k = <paramref name="dim"/>, into <paramref name="directory"/>.</summary>
    public static string BuildDtrak(string directory, int rows, int dim)
    {
        var subset = $"0:{rows}";
        AttributionMethods.Find("d-trak").Build(new MethodBuildRequest
        {
            ModelDirectory = Model,
            Data = Data(rows),
            Source = new StoreSource(Model, "embedded", subset, 16),
            OutDirectory = directory,
            Settings = new MethodSettings { Timesteps = 2, Dim = dim },
        });
        return directory;
    }
}

/// <summary>A D-TRAK store built into a temporary folder of its own; disposing deletes the folder.</summary>
internal sealed class TemporaryStore : IDisposable
{
    private readonly string _root;

    /// <summary>Builds the store (see <see cref="SmallStore.BuildDtrak"/>) in a new temporary folder named after <paramref name="prefix"/>.</summary>
    public TemporaryStore(string prefix, int rows, int dim)
    {
        _root = System.IO.Directory.CreateTempSubdirectory(prefix).FullName;
        Directory = SmallStore.BuildDtrak(Path.Combine(_root, "dtrak"), rows, dim);
    }

    /// <summary>The store folder.</summary>
    public string Directory { get; }

    /// <summary>The temporary folder the store lies in, for other files of a test.</summary>
    public string Root => _root;

    public void Dispose() => System.IO.Directory.Delete(_root, recursive: true);
}
