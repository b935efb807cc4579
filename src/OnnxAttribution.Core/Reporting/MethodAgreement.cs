namespace OnnxAttribution.Core.Reporting;

/// <summary>
/// Another store's answer to the report's query, beside the report's own: its top rows and how many of them are among the
/// report's top rows. Methods that agree on a row make it more credible; a row only one method ranks high is weaker evidence.
/// </summary>
/// <param name="Store">The other store's name.</param>
/// <param name="Method">Its method.</param>
/// <param name="Top">Its top rows, best first (as many as the report lists).</param>
/// <param name="Overlap">How many of <paramref name="Top"/> are among the report's top rows.</param>
public sealed record MethodAgreement(string Store, string Method, IReadOnlyList<long> Top, int Overlap)
{
    /// <summary>The agreement of <paramref name="ranking"/> (the other store's answer) with the report's top rows.</summary>
    public static MethodAgreement Of(string store, string method, QueryRanking ranking, IReadOnlyList<ReportRow> reportTop)
    {
        ArgumentNullException.ThrowIfNull(ranking);
        ArgumentNullException.ThrowIfNull(reportTop);
        var ours = reportTop.Select(r => r.Index).ToHashSet();
        var theirs = ranking.Top.Take(reportTop.Count).Select(r => r.Index).ToList();
        return new MethodAgreement(store, method, theirs, theirs.Count(ours.Contains));
    }
}
