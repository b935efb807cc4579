using System.Text.Json;
using OnnxAttribution.Core.Data;
using OnnxAttribution.Core.Models;

namespace OnnxAttribution.Core.Attribution;

/// <summary>
/// Where a store's rows came from, as typed by the user (<c>source.json</c>): the model folder and the dataset, so
/// <c>attribute</c> can find the model and draw the training images without asking again. Not part of the rows'
/// identity (meta.json holds the fingerprints that are checked).
/// </summary>
public sealed record StoreSource(string ModelDirectory, string Data, string Subset, int ImageSize)
{
    public const string FileName = "source.json";

    /// <summary>Writes source.json into <paramref name="storeDirectory"/> (created if missing).</summary>
    public void Save(string storeDirectory)
    {
        Directory.CreateDirectory(storeDirectory);
        var path = Path.Combine(storeDirectory, FileName);
        JsonFile.Save(path, this);
    }

    /// <summary>The training images of the store's rows, loaded again as the user named them (row i is image i).</summary>
    /// <param name="locator">Where named datasets are found; null for the default.</param>
    /// <exception cref="UserInputException">The dataset can no longer be loaded.</exception>
    public ImageDataset LoadData(DatasetLocator? locator = null) => (locator ?? new DatasetLocator()).Load(Data, Subset, ImageSize);

    /// <summary>Reads source.json, or null when the store has none.</summary>
    public static StoreSource? TryLoad(string storeDirectory)
    {
        var path = Path.Combine(storeDirectory, FileName);
        if (!File.Exists(path))
        {
            return null;
        }
        try
        {
            return JsonSerializer.Deserialize<StoreSource>(File.ReadAllText(path), ModelMetadata.JsonOptions);
        }
        catch (JsonException e)
        {
            throw new UserInputException($"{path}: not valid ({e.Message})", e);
        }
    }
}
