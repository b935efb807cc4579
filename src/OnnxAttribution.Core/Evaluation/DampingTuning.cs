using OnnxAttribution.Primitives;

namespace OnnxAttribution.Core.Evaluation;

/// <summary>
/// Chooses a method's damping on validation queries and only then evaluates the test queries, once, at the chosen value:
/// the test queries never influence a setting.
/// </summary>
public static class DampingTuning
{
    /// <summary>The grid of decades 1e-6 … 1e-1.</summary>
    public static IReadOnlyList<double> Decades { get; } = [1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1];

    /// <summary>
    /// Evaluates <paramref name="validationLds"/> at every λ of <paramref name="grid"/> (in order), chooses the λ with the
    /// highest finite validation LDS (the first of equals), then calls <paramref name="test"/> once with it.
    /// </summary>
    /// <exception cref="AttributionException">No λ of the grid gave a finite validation LDS.</exception>
    public static TunedResult<T> Tune<T>(IReadOnlyList<double> grid, Func<double, double> validationLds, Func<double, T> test)
    {
        ArgumentNullException.ThrowIfNull(grid);
        ArgumentNullException.ThrowIfNull(validationLds);
        ArgumentNullException.ThrowIfNull(test);
        if (grid.Count == 0)
        {
            throw new ArgumentException("the damping grid is empty", nameof(grid));
        }
        var sweep = grid.Select(l => new DampingPoint(l, validationLds(l))).ToList();
        double chosen = Choose(sweep);
        return new TunedResult<T>(chosen, sweep, test(chosen));
    }

    /// <summary>The λ with the highest finite validation LDS (the first of equals).</summary>
    /// <exception cref="AttributionException">No finite validation LDS.</exception>
    public static double Choose(IReadOnlyList<DampingPoint> sweep)
    {
        ArgumentNullException.ThrowIfNull(sweep);
        DampingPoint? best = null;
        foreach (var p in sweep.Where(p => double.IsFinite(p.ValidationLds)))
        {
            if (best is null || p.ValidationLds > best.Value.ValidationLds)
            {
                best = p;
            }
        }
        return best?.Damping ?? throw new AttributionException(
            $"no damping of {string.Join(", ", sweep.Select(p => p.Damping))} gave a finite LDS on the validation queries (constant scores or measured outputs?)");
    }
}
