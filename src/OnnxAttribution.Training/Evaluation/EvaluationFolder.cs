using OnnxAttribution.Primitives;
using OnnxAttribution.Runtime;
using OnnxAttribution.Store;

namespace OnnxAttribution.Training.Evaluation;

/// <summary>
/// What the evaluation runs (<see cref="LdsRun"/>, <see cref="CounterfactualRun"/>) share about their output folder: its
/// settings.json, matrices of measurements saved once and read back on a rerun, and the report (Markdown and JSON) they
/// end with. Every run resumes after a kill: each trained model, measurement and score file is saved once.
/// </summary>
internal static class EvaluationFolder
{
    /// <summary>
    /// Every setting a result depends on; a rerun with other settings into the same folder is refused, except for the
    /// fields in <paramref name="mayChange"/> (a larger M reuses every model already trained: subset j depends on the seed
    /// and j only), which are updated.
    /// </summary>
    internal static void CheckSettings(string outDirectory, object settings, params string[] mayChange)
    {
        Directory.CreateDirectory(outDirectory);
        var path = Path.Combine(outDirectory, "settings.json");
        var json = System.Text.Json.JsonSerializer.Serialize(settings, Runtime.Models.ModelMetadata.JsonOptions);
        if (File.Exists(path))
        {
            var old = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(path))!.AsObject();
            var now = System.Text.Json.Nodes.JsonNode.Parse(json)!.AsObject();
            bool changed = false;
            foreach (var (key, value) in now)
            {
                if (!System.Text.Json.Nodes.JsonNode.DeepEquals(old[key], value))
                {
                    if (!mayChange.Contains(key))
                    {
                        throw new UserInputException($"{path}: field '{key}' was {old[key]?.ToJsonString() ?? "absent"} when this evaluation started; " +
                            $"now {value?.ToJsonString()}. Use another folder or the same settings.");
                    }
                    changed = true;
                }
            }
            if (!changed)
            {
                return;
            }
        }
        JsonFile.Save(path, settings);
    }

    /// <summary>
    /// A models × <paramref name="perModel"/> matrix of measurements saved at <paramref name="path"/>, computing only the
    /// rows of models not measured before (M may grow between runs; the rows already there are the same models).
    /// </summary>
    internal static float[] MeasureModels(IEvaluationObserver observer, string path, int models, int perModel, string label, Func<int, float[]> measure, CancellationToken cancel)
    {
        var cached = TryReadMatrix(path);
        int have = cached is { } c && c.Header.Columns == perModel ? (int)Math.Min(c.Header.Rows, models) : 0;
        var result = new float[(long)models * perModel];
        if (have > 0)
        {
            cached!.Value.Values.AsSpan(0, have * perModel).CopyTo(result);
        }
        if (have == models)
        {
            return result;
        }
        var watch = System.Diagnostics.Stopwatch.StartNew();
        for (int j = have; j < models; j++)
        {
            cancel.ThrowIfCancellationRequested();
            measure(j).CopyTo(result.AsSpan(j * perModel, perModel));
            observer.Progress(label, j + 1 - have, models - have, "models");
        }
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
        NpyFormat.WriteMatrix(path, result, models, perModel);
        JsonFile.Save(Path.ChangeExtension(path, ".json"), new MeasureRecord(watch.Elapsed.TotalSeconds / (models - have)));
        return result;
    }

    /// <summary>
    /// Trains models one after another with one progress line over all their steps. Models trained by an earlier run
    /// report nothing, so the line (and its estimate of the time left) counts from the first model trained in this run.
    /// </summary>
    internal sealed class TrainingProgress(IEvaluationObserver observer, string label, int models, int stepsPerModel)
    {
        private long _first = -1;

        public IProgress<TrainProgress> For(int model) => new SyncProgress<TrainProgress>(p =>
        {
            long start = (long)model * stepsPerModel;
            if (_first < 0)
            {
                _first = start;
            }
            observer.Progress(label, start + p.Step - _first, ((long)models * stepsPerModel) - _first, $"model {model + 1}/{models}, loss {p.Loss:F4}, {p.MillisecondsPerStep:F0} ms/step");
        });
    }

    /// <summary>Writes the Markdown table beside the JSON results and returns what the run reports.</summary>
    internal static EvaluationReport Report(string markdownPath, string table, object result, string summary)
    {
        File.WriteAllText(markdownPath, table);
        return new EvaluationReport(markdownPath, table, result, summary);
    }

    /// <summary>A saved score or loss matrix, or null when it was not written yet.</summary>
    internal static (NpyHeader Header, float[] Values)? TryReadMatrix(string path) => File.Exists(path) ? NpyFormat.ReadMatrix(path) : null;

    /// <summary>The evaluations' queries: images generated from seeds 0 … count − 1.</summary>
    internal static long[] QuerySeeds(int count) => Enumerable.Range(0, count).Select(q => (long)q).ToArray();
}
