namespace OnnxAttribution.Server;

/// <summary>
/// The auditor's page at <c>/ui</c>: static HTML, CSS and JavaScript embedded in the server's assembly (no CDN, no
/// wwwroot: it works offline). It calls the JSON and PNG endpoints with the API key typed into it.
/// </summary>
internal static class UiEndpoints
{
    private static readonly (string Path, string Resource, string ContentType)[] Files =
    [
        ("/ui", "ui/index.html", "text/html; charset=utf-8"),
        ("/ui/app.js", "ui/app.js", "text/javascript; charset=utf-8"),
        ("/ui/app.css", "ui/app.css", "text/css; charset=utf-8"),
    ];

    /// <summary>True for the page's own files, which need no API key (they hold no data).</summary>
    public static bool IsPage(PathString path) => Files.Any(f => path.Equals(f.Path, StringComparison.Ordinal));

    public static void Map(WebApplication app)
    {
        foreach (var (path, resource, type) in Files)
        {
            byte[] content = Read(resource);
            app.MapGet(path, () => Results.Bytes(content, type));
        }
    }

    private static byte[] Read(string resource)
    {
        using var stream = typeof(UiEndpoints).Assembly.GetManifestResourceStream(resource)
            ?? throw new InvalidOperationException($"the server's assembly lacks its embedded resource '{resource}' (a build problem)");
        using var copy = new MemoryStream();
        stream.CopyTo(copy);
        return copy.ToArray();
    }
}
