using System.Text.Json;
using OnnxAttribution.Core.Data;
using OnnxAttribution.Core.Models;
using OnnxAttribution.Core.Store;

namespace OnnxAttribution.Core.Attribution;

/// <summary>
/// Where a store's rows came from, as typed by the user (<c>source.json</c>): the model folder and the dataset, so
/// <c>attribute</c> can find the model and draw the training images without asking again. Not part of the rows'
/// identity (meta.json holds the fingerprints that are checked).
/// </summary>
/// <remarks>The file holds the model folder and a dataset path relative to the store folder (<see cref="PathsRelativeTo"/>),
/// so the store works from any working directory and moves with a model kept beside it. <see cref="TryLoad"/> gives them
/// back as full paths.</remarks>
public sealed record StoreSource(string ModelDirectory, string Data, string Subset, int ImageSize)
{
    /// <summary>The value of <see cref="PathsRelativeTo"/> for paths relative to the store folder.</summary>
    public const string StoreFolder = "store";

    /// <summary>
    /// <see cref="StoreFolder"/> when the file's paths are relative to the store folder; null in files written before this
    /// field, whose relative paths are relative to the working directory of the run that wrote them (read as before).
    /// </summary>
    public string? PathsRelativeTo { get; init; }

    /// <summary>Writes source.json into <paramref name="storeDirectory"/> (created if missing), with the model folder and a
    /// dataset path relative to the store folder.</summary>
    public void Save(string storeDirectory)
    {
        ArgumentNullException.ThrowIfNull(storeDirectory);
        Directory.CreateDirectory(storeDirectory);
        string store = Path.GetFullPath(storeDirectory);
        string Relative(string path) => Path.GetRelativePath(store, Path.GetFullPath(path));
        var written = this with
        {
            ModelDirectory = Relative(ModelDirectory),
            Data = IsDataPath(Data) ? Relative(Data) : Data,
            PathsRelativeTo = StoreFolder,
        };
        JsonFile.Save(Path.Combine(storeDirectory, StoreFiles.Source), written);
    }

    private static bool IsDataPath(string data) => !DatasetLocator.IsName(data) && (Directory.Exists(data) || File.Exists(data));

    /// <summary>The training images of the store's rows, loaded again as the user named them (row i is image i).</summary>
    /// <param name="locator">Where named datasets are found; null for the default.</param>
    /// <exception cref="UserInputException">The dataset can no longer be loaded.</exception>
    public ImageDataset LoadData(DatasetLocator? locator = null) => (locator ?? new DatasetLocator()).Load(Data, Subset, ImageSize);

    /// <summary>Reads source.json, or null when the store has none; paths relative to the store folder come back as full paths.</summary>
    /// <exception cref="UserInputException">The file is not valid.</exception>
    public static StoreSource? TryLoad(string storeDirectory)
    {
        ArgumentNullException.ThrowIfNull(storeDirectory);
        var path = Path.Combine(storeDirectory, StoreFiles.Source);
        if (!File.Exists(path))
        {
            return null;
        }
        try
        {
            var source = JsonSerializer.Deserialize<StoreSource>(File.ReadAllText(path), ModelMetadata.JsonOptions)
                ?? throw new UserInputException($"{path}: expected a JSON object, found null");
            if (source.PathsRelativeTo is null)
            {
                return source;
            }
            if (source.PathsRelativeTo != StoreFolder)
            {
                throw new UserInputException($"{path}: field 'pathsRelativeTo': expected \"{StoreFolder}\" or absent, found \"{source.PathsRelativeTo}\"");
            }
            string FromStore(string relative) => Path.GetFullPath(Path.Combine(storeDirectory, relative));
            return source with
            {
                ModelDirectory = FromStore(source.ModelDirectory),
                Data = DatasetLocator.IsName(source.Data) ? source.Data : FromStore(source.Data),
            };
        }
        catch (JsonException e)
        {
            throw new UserInputException($"{path}: not valid ({e.Message})", e);
        }
    }
}
