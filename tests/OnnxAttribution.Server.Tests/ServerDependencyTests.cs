using System.Reflection;
using System.Text.Json;

namespace OnnxAttribution.Server.Tests;

/// <summary>
/// What the server ships with: its deps.json (the whole closure it is published with, as the SDK wrote it for the server's
/// own build) and the assemblies its assembly references, transitively, as loaded here. No TorchSharp or training code, and of
/// Orleans the client alone: the silo runtime (Microsoft.Orleans.Server, Orleans.Runtime) stays with the cluster's silos.
/// </summary>
[TestFixture]
public sealed class ServerDependencyTests
{
    private static readonly string[] SiloPackages =
        ["Microsoft.Orleans.Server", "Microsoft.Orleans.Runtime", "Microsoft.Orleans.Clustering.Redis", "OnnxAttribution.Cluster.Silo"];

    [Test]
    public void ServerAssembly_Dependencies_NeitherTrainingNorTorchSharp()
    {
        var referenced = typeof(ServerApp).Assembly.GetReferencedAssemblies().Select(a => a.Name!).ToList();
        Assert.That(referenced, Does.Contain("OnnxAttribution.Core"));
        // The whole dependency closure the server ships with (also what Core pulls in), not only its direct references.
        string deps = File.ReadAllText(DepsFile);
        Assert.That(deps, Does.Contain("OnnxAttribution.Core"));
        Assert.That(deps, Does.Not.Contain("TorchSharp").And.Not.Contain("OnnxAttribution.Training"));
    }

    [Test]
    public void ServerDeps_OrleansClientWithoutTheSiloRuntime()
    {
        var (libraries, files) = ReadDeps();
        Assert.That(libraries, Does.Contain("Microsoft.Orleans.Core").And.Contain("OnnxAttribution.Cluster"), "the cluster's client is there");
        Assert.That(libraries.Intersect(SiloPackages), Is.Empty);
        Assert.That(files.Where(f => Path.GetFileName(f) is "Orleans.Runtime.dll" or "Orleans.Clustering.Redis.dll" or "OnnxAttribution.Cluster.Silo.dll"), Is.Empty);
    }

    [Test]
    public void ServerAssembly_ReferenceClosure_HasNoOrleansSiloAssembly()
    {
        var closure = ReferenceClosure(typeof(ServerApp).Assembly);
        Assert.That(closure, Does.Contain("Orleans.Core").And.Contain("OnnxAttribution.Cluster"), "the walk reached the cluster's client");
        Assert.That(closure, Has.None.EqualTo("Orleans.Runtime").And.None.EqualTo("Orleans.Clustering.Redis").And.None.EqualTo("OnnxAttribution.Cluster.Silo"));
    }

    private static string DepsFile => Path.Combine(AppContext.BaseDirectory, "onnx-attribution-server.deps.json");

    /// <summary>The libraries (packages and projects, without versions) and runtime files the server's deps.json lists.</summary>
    private static (HashSet<string> Libraries, List<string> Files) ReadDeps()
    {
        using var deps = JsonDocument.Parse(File.ReadAllText(DepsFile));
        var libraries = new HashSet<string>(StringComparer.Ordinal);
        var files = new List<string>();
        foreach (var target in deps.RootElement.GetProperty("targets").EnumerateObject())
        {
            foreach (var library in target.Value.EnumerateObject())
            {
                libraries.Add(library.Name.Split('/')[0]);
                if (library.Value.TryGetProperty("runtime", out var runtime))
                {
                    files.AddRange(runtime.EnumerateObject().Select(f => f.Name));
                }
            }
        }
        Assert.That(libraries, Does.Contain("onnx-attribution-server"), $"{DepsFile} is the server's");
        return (libraries, files);
    }

    /// <summary>The names of every assembly <paramref name="root"/> references, and those reference, loaded by name.</summary>
    private static HashSet<string> ReferenceClosure(Assembly root)
    {
        var seen = new HashSet<string>(StringComparer.Ordinal) { root.GetName().Name! };
        var pending = new Queue<Assembly>([root]);
        while (pending.TryDequeue(out var assembly))
        {
            foreach (var name in assembly.GetReferencedAssemblies().Where(n => seen.Add(n.Name!)))
            {
                pending.Enqueue(Assembly.Load(name));
            }
        }
        return seen;
    }
}
