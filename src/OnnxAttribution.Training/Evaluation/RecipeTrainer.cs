using OnnxAttribution.Core.Data;
using OnnxAttribution.Runtime.Models;

namespace OnnxAttribution.Training.Evaluation;

/// <summary>Trains a recipe on some rows and exports the result as a model folder, resuming wherever a killed run stopped.</summary>
public static class RecipeTrainer
{
    /// <summary>
    /// Trains (or resumes) in <paramref name="runDirectory"/> and exports the EMA weights to <paramref name="modelDirectory"/>
    /// (forward.onnx and model.json; with <paramref name="withVjp"/> also vjp.onnx). A model folder with model.json is
    /// complete (it is written to a temporary folder and renamed) and is returned as it is.
    /// </summary>
    /// <returns>True when the model was trained now, false when it already existed.</returns>
    public static bool TrainAndExport(TrainingRecipe recipe, ImageDataset data, IReadOnlyList<int>? indices, long seed, string subsetLabel,
        string runDirectory, string modelDirectory, bool withVjp, IProgress<TrainProgress>? progress = null, CancellationToken cancel = default)
    {
        ArgumentNullException.ThrowIfNull(recipe);
        ArgumentNullException.ThrowIfNull(data);
        if (File.Exists(Path.Combine(modelDirectory, ModelMetadata.FileName)))
        {
            return false;
        }
        var options = recipe.Options(data, indices, seed, runDirectory);
        using (var result = DdpmTrainer.Train(options, progress, cancel))
        {
            TrainingRunInfo.Of(options, result, data.Name, subsetLabel).Save(runDirectory);
        }
        // Exported to a temporary folder and renamed: a model folder with model.json is always complete.
        var temporary = modelDirectory.TrimEnd('/') + ".tmp";
        if (Directory.Exists(temporary))
        {
            Directory.Delete(temporary, recursive: true);
        }
        ModelExport.Export(runDirectory, temporary, Path.GetFileName(modelDirectory.TrimEnd('/')), withVjp);
        if (Directory.Exists(modelDirectory))
        {
            Directory.Delete(modelDirectory, recursive: true);
        }
        Directory.Move(temporary, modelDirectory);
        return true;
    }

    /// <summary>
    /// Exports the raw weights of every checkpoint kept at multiples of <see cref="TrainingRecipe.KeepCheckpointsEvery"/>
    /// (with their step and learning rate, for TracIn) to <c>checkpoints/step-NNNNNN</c> beside the model; existing ones are kept.
    /// </summary>
    /// <returns>The checkpoint model folders, in step order.</returns>
    public static IReadOnlyList<string> ExportKeptCheckpoints(TrainingRecipe recipe, string runDirectory, string modelDirectory)
    {
        ArgumentNullException.ThrowIfNull(recipe);
        var folders = new List<string>();
        if (recipe.KeepCheckpointsEvery <= 0)
        {
            return folders;
        }
        for (int step = recipe.KeepCheckpointsEvery; step <= recipe.Steps; step += recipe.KeepCheckpointsEvery)
        {
            var dir = Path.Combine(modelDirectory, "checkpoints", $"step-{step:D6}");
            if (!File.Exists(Path.Combine(dir, ModelMetadata.FileName)))
            {
                ModelExport.ExportStep(runDirectory, step, dir, $"step-{step}");
            }
            folders.Add(dir);
        }
        return folders;
    }
}
