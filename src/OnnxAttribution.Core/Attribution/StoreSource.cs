using System.Text.Json;
using OnnxAttribution.Core.Data;
using OnnxAttribution.Primitives;
using OnnxAttribution.Runtime.Models;
using OnnxAttribution.Runtime;
using OnnxAttribution.Store;

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

    /// <summary>
    /// Rows added by <c>append</c>, in order after those of <see cref="Data"/> and <see cref="Subset"/>; null when none.
    /// Their dataset paths are written relative to the store folder like <see cref="Data"/>.
    /// </summary>
    public IReadOnlyList<StoreSourcePart>? Appended { get; init; }

    /// <summary>Writes source.json into <paramref name="storeDirectory"/> (created if missing), with the model folder and a
    /// dataset path relative to the store folder.</summary>
    public void Save(string storeDirectory) => Save(storeDirectory, storeDirectory);

    /// <summary>Writes source.json into <paramref name="folder"/> with paths relative to <paramref name="storeDirectory"/>
    /// (a store's next version staged in a folder of its own).</summary>
    public void Save(string storeDirectory, string folder)
    {
        ArgumentNullException.ThrowIfNull(storeDirectory);
        ArgumentNullException.ThrowIfNull(folder);
        Directory.CreateDirectory(folder);
        string store = Path.GetFullPath(storeDirectory);
        string Relative(string path) => Path.GetRelativePath(store, Path.GetFullPath(path));
        var written = this with
        {
            ModelDirectory = Relative(ModelDirectory),
            Data = IsDataPath(Data) ? Relative(Data) : Data,
            Appended = Appended?.Select(p => p with { Data = IsDataPath(p.Data) ? Relative(p.Data) : p.Data }).ToList(),
            PathsRelativeTo = StoreFolder,
        };
        JsonFile.Save(Path.Combine(folder, StoreFiles.Source), written);
    }

    private static bool IsDataPath(string data) => !DatasetLocator.IsName(data) && (Directory.Exists(data) || File.Exists(data));

    /// <summary>The training images of the store's rows, loaded again as the user named them (row i is image i).</summary>
    /// <param name="locator">Where named datasets are found; null for the default.</param>
    /// <exception cref="UserInputException">The dataset can no longer be loaded.</exception>
    public ImageDataset LoadData(DatasetLocator? locator = null)
    {
        var loader = locator ?? new DatasetLocator();
        var data = loader.Load(Data, Subset, ImageSize);
        foreach (var part in Appended ?? [])
        {
            data = data.Concat(loader.Load(part.Data, part.Subset, ImageSize));
        }
        return data;
    }

    /// <summary>Reads source.json, or null when the store has none; paths relative to the store folder come back as full paths.</summary>
    /// <exception cref="UserInputException">The file is not valid.</exception>
    public static StoreSource? TryLoad(string storeDirectory)
    {
        ArgumentNullException.ThrowIfNull(storeDirectory);
        StoreCommit.Recover(storeDirectory);
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
            string DataFromStore(string data) => DatasetLocator.IsName(data) ? data : FromStore(data);
            return source with
            {
                ModelDirectory = FromStore(source.ModelDirectory),
                Data = DataFromStore(source.Data),
                Appended = source.Appended?.Select(p => p with { Data = DataFromStore(p.Data) }).ToList(),
            };
        }
        catch (JsonException e)
        {
            throw new UserInputException($"{path}: not valid ({e.Message})", e);
        }
    }
}
