using OnnxAttribution.Core.Attribution.Methods;
using OnnxAttribution.Core.Data;
using OnnxAttribution.Imaging;
using OnnxAttribution.Runtime;

namespace OnnxAttribution.Cli.Verbs;

/// <summary>
/// The stepwise part of <c>attribute</c> for methods that score each step of the trajectory (Journey-TRAK, Georgiev et
/// al. 2023): a picture per query and the per-step rankings for <c>--json</c>.
/// </summary>
internal static class AttributeJourney
{
    private const int MaxRows = 8;
    private const int Lines = 5;

    /// <summary>One step's ranking in the JSON output.</summary>
    internal sealed record StepRanking(long Timestep, IReadOnlyList<RankedRow> Top);

    /// <summary>A training row in a ranking.</summary>
    internal sealed record RankedRow(int Rank, long Index, float Score);

    /// <summary>One query's journey in the JSON output.</summary>
    internal sealed record Journey(string Query, string Png, IReadOnlyList<StepRanking> Steps);

    /// <summary>
    /// Writes <c>&lt;out&gt;-journey.png</c> (further queries: <c>-journey-2.png</c>, …): the predicted x̂₀ at each step on
    /// top, beneath each step its top-k training images (at most 8 rows), and below a plot of how the step scores of the
    /// query's overall top 5 rows change over the steps. <paramref name="allStepScores"/> are the scorer's step scores of
    /// <paramref name="queries"/> (queries × steps × rows), computed once by the caller.
    /// </summary>
    public static List<Journey> Write(IStepwiseScorer scorer, float[] allStepScores, IReadOnlyList<AttributionQuery> queries, IReadOnlyList<QueryRanking> overall,
        ImageDataset? data, ModelDirectory model, SessionSettings session, string outPath, int top, int scale)
    {
        var schedule = model.CreateSchedule();
        using var denoiser = model.OpenDenoiser(session);
        int c = model.Metadata.Channels, s = model.Metadata.ImageSize, d = c * s * s;
        int steps = scorer.Steps.Count, rows = checked((int)scorer.Rows), shown = Math.Min(top, MaxRows);
        var stepLabels = scorer.Steps.Select(t => $"t={t}").ToList();
        var journeys = new List<Journey>();
        for (int q = 0; q < queries.Count; q++)
        {
            var stepScores = allStepScores.AsSpan(q * steps * rows, steps * rows).ToArray();
            var ranked = Enumerable.Range(0, steps).Select(j => TopKSelection.Select(stepScores.AsSpan(j * rows, rows), top)).ToList();
            var tiles = new float[(1 + shown) * steps * d];
            JourneyTrakMethod.PredictedImages(denoiser, schedule, queries[q], scorer.Steps).CopyTo(tiles, 0);
            var captions = stepLabels.Select(l => (string?)l).ToList();
            for (int r = 0; r < shown; r++)
            {
                for (int j = 0; j < steps; j++)
                {
                    bool has = r < ranked[j].Count;
                    if (has && data is not null)
                    {
                        data.Image(checked((int)ranked[j].Indices[r])).CopyTo(tiles.AsSpan(((1 + r) * steps + j) * d, d));
                    }
                    captions.Add(has ? $"#{ranked[j].Indices[r]} {ranked[j].Scores[r]:0.###}" : null);
                }
            }
            var series = overall[q].Top.Select(row => row.Index).Take(Lines)
                .Select(row => new PlotSeries($"#{row}", Enumerable.Range(0, steps).Select(j => (double)stepScores[j * rows + row]).ToList()))
                .ToList();
            var chart = new LineChart(stepLabels, series, "sampling step (timestep t)", $"score per step (overall top {series.Count})");
            var png = Path.ChangeExtension(outPath, null) + (q == 0 ? "-journey.png" : $"-journey-{q + 1}.png");
            var result = ImageGrid.Write(png, tiles, (1 + shown) * steps, c, s, s, new GridLayout(steps, scale), captions, chart);
            if (result.Note is not null && q == 0)
            {
                Output.Note(result.Note);
            }
            journeys.Add(new Journey(queries[q].Label, png, Enumerable.Range(0, steps).Select(j => new StepRanking(scorer.Steps[j],
                ranked[j].Indices.Select((row, r) => new RankedRow(r + 1, row, ranked[j].Scores[r])).ToList())).ToList()));
        }
        return journeys;
    }
}
