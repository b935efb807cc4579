using CommandLine;
using OnnxAttribution.Core.Attribution;
using OnnxAttribution.Primitives;
using OnnxAttribution.Store;
using OnnxAttribution.Onnx;

namespace OnnxAttribution.Cli.Verbs;

[Verb("inspect", HelpText = "Describe a feature store (--store: settings, completeness, sizes, whether it is finalized) or a model folder "
    + "(--model: parameters, and the operation count of one forward pass and of one run of the gradient graph per example×timestep, "
    + "dense and factored, against which featurization's share of the machine's FMA peak is measured).")]
internal sealed class InspectVerb : IVerbOptions
{
    [Option("store", HelpText = "A feature store folder.")]
    public string? Store { get; set; }

    [Option("model", HelpText = "A model folder (model.json, forward.onnx, vjp.onnx).")]
    public string? Model { get; set; }

    [Option("history", HelpText = "With --store: list the store's versions (what changed, when, by whom, why, rows added or removed), oldest first.")]
    public bool History { get; set; }

    [Option("json")]
    public bool Json { get; set; }

    /// <inheritdoc/>
    public void Validate()
    {
        if ((Store is null) == (Model is null))
        {
            throw new UserInputException("inspect takes one of --store or --model");
        }
        OptionChecks.Given(Store ?? Model!, Store is not null ? "--store" : "--model");
        if (History && Store is null)
        {
            throw new UserInputException("--history lists a store's versions: give --store");
        }
    }
}

internal static class InspectCommand
{
    public static int Run(InspectVerb o) => o.Model is not null ? RunModel(o.Model, o.Json) : o.History ? RunHistory(o.Store!, o.Json) : RunStore(o);

    private static int RunHistory(string store, bool json)
    {
        if (!Directory.Exists(store))
        {
            throw new UserInputException($"--store {store}: folder not found");
        }
        // A change a kill interrupted after it was decided is finished first, so the history read is the store's.
        StoreCommit.Recover(store);
        var history = StoreHistory.TryLoad(store);
        if (json)
        {
            Output.WriteJson(new { store, versions = history?.Versions ?? [] });
        }
        else if (history is null)
        {
            Console.WriteLine($"{store}: no history.json: the store was made before versions were recorded");
        }
        else
        {
            StoreVersionOutput.WriteHistory(history);
        }
        return CliApp.Ok;
    }

    private static int RunModel(string folder, bool json)
    {
        var dir = Runtime.ModelDirectory.Open(folder);
        var forward = GraphCost.Count(Load(dir.ForwardPath));
        var vjpModel = Load(dir.RequireVjp());
        var outputs = vjpModel.Graph.Output.Select(v => v.Name).ToList();
        var eps = outputs.Where(n => n == Runtime.Gradients.VjpSession.OutputEps).ToList();
        var grads = outputs.Where(n => n.StartsWith("grad.", StringComparison.Ordinal)).ToList();
        var factors = outputs.Where(n => n.StartsWith("a.", StringComparison.Ordinal) || n.StartsWith("g.", StringComparison.Ordinal)).ToList();
        var dense = GraphCost.Count(vjpModel, 1, [.. eps, .. grads]);
        var factored = factors.Count > 0 ? GraphCost.Count(vjpModel, 1, [.. eps, .. factors]) : null;
        long parameters = dir.Metadata.Parameters.Sum(p => p.Shape.Aggregate(1L, (a, b) => a * b));
        if (json)
        {
            Output.WriteJson(new { model = folder, parameters, forward, vjpDense = dense, vjpFactored = factored, condition = dir.Metadata.Condition });
            return CliApp.Ok;
        }
        string G(GraphCostReport r) => string.Create(System.Globalization.CultureInfo.InvariantCulture,
            $"{r.MultiplyAddFlops / 1e9:F3} GFLOP in multiply-adds (+ ≥ {r.OtherFlops / 1e9:F3} element-wise)")
            + (r.Uncounted.Count > 0 ? $"; {r.Uncounted.Count} nodes without static shapes not counted" : "");
        var m = dir.Metadata;
        Console.WriteLine($"model          {folder}: {m.Channels}×{m.ImageSize}×{m.ImageSize}, {m.Parameters.Count} parameter tensors, {parameters:N0} parameters");
        Console.WriteLine($"forward        {G(forward)} per image");
        Console.WriteLine($"vjp, dense     {G(dense)} per example×timestep (ε̂ and every per-example gradient)");
        Console.WriteLine(factored is null ? "vjp, factored  no Kronecker factors" : $"vjp, factored  {G(factored)} per example×timestep (ε̂ and the factors)");
        Console.WriteLine(m.Condition switch
        {
            null => "condition      none (unconditional)",
            { Kind: Runtime.Models.ConditionKind.Text } c => $"condition      a prompt of at most {c.Length} words (--prompt), caption encoder {c.Encoder}; " +
                $"words: {string.Join(" ", c.Vocabulary!.Skip(1))}",
            var c => $"condition      a class label (--label): {string.Join(", ", Enumerable.Range(0, c.Classes).Select(i => $"{i} {c.NameOf(i)}"))}",
        });
        return CliApp.Ok;
    }

    private static Onnx.Proto.ModelProto Load(string path)
    {
        try
        {
            return OnnxModelFile.Load(path);
        }
        catch (OnnxGraphException e)
        {
            throw new ModelFileException($"{path}: {e.Message}", e);
        }
    }

    private static int RunStore(InspectVerb o)
    {
        using var store = FeatureStore.Open(o.Store!);
        var features = new FileInfo(Path.Combine(o.Store!, StoreFiles.Features)).Length;
        var pre = Path.Combine(o.Store!, StoreFiles.Preconditioner);
        var info = new
        {
            store = o.Store,
            meta = store.Meta,
            rows = store.Rows,
            k = store.Dim,
            dtype = store.DType,
            featuresBytes = features,
            bytesPerExample = (double)features / Math.Max(1, store.Rows),
            finalized = File.Exists(pre),
            preconditionerBytes = File.Exists(pre) ? new FileInfo(pre).Length : 0,
            kernel = Preconditioner.ReadForm(pre) switch { KernelForm.Primal => "primal", KernelForm.Dual => "dual", _ => null },
            source = StoreSource.TryLoad(o.Store!),
            version = StoreHistory.TryLoad(o.Store!)?.Head,
        };
        if (o.Json)
        {
            Output.WriteJson(info);
        }
        else
        {
            var m = store.Meta;
            Console.WriteLine($"store      {o.Store}");
            Console.WriteLine($"method     {m.Method} ({m.Measurement}), " +
                $"{m.Timesteps.Count} timesteps [{string.Join(",", m.Timesteps.Take(10))}{(m.Timesteps.Count > 10 ? ",…" : "")}] × {m.NoiseDraws} draws " +
                $"(seed {m.NoiseSeed})");
            Console.WriteLine($"projector  {m.Projector.Kind}, k = {m.Projector.Dim}, seed {m.Projector.Seed}, {string.Join(", ", m.Projector.Settings.Select(kv => $"{kv.Key}={kv.Value}"))}");
            Console.WriteLine($"rows       {store.Rows} complete, {store.DType}; features.npy {features / 1048576.0:F1} MiB ({info.bytesPerExample:F0} bytes per example)");
            Console.WriteLine($"model      vjp.onnx SHA-256 {m.ModelFingerprint[..16]}…; data {m.DatasetFingerprint[..16]}… subset {m.Subset}; shard {m.Shard.Index}/{m.Shard.Count}");
            if (store.RemovedRows.Count > 0)
            {
                string list = string.Join(",", store.RemovedRows.Take(20)) + (store.RemovedRows.Count > 20 ? ",…" : "");
                Console.WriteLine($"removed    {store.RemovedRows.Count} rows ({store.Meta.LiveRows} answered): {list}");
            }
            Console.WriteLine(info.version is { } v ? $"version    {v.Number} ({v.Change}, {v.Time:yyyy-MM-dd HH:mm}Z) {v.Id}" : "version    none recorded (made before versions)");
            Console.WriteLine($"finalized  {(info.finalized ? $"yes ({info.kernel} kernel, {info.preconditionerBytes / 1048576.0:F1} MiB preconditioner)" : "no: run 'finalize'")}");
        }
        return CliApp.Ok;
    }
}
