using BenchmarkDotNet.Columns;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Reports;
using BenchmarkDotNet.Running;

namespace OnnxAttribution.Benchmarks;

internal static class BenchmarkConfig
{
    public static IConfig Create() => DefaultConfig.Instance.AddColumn(new GflopsColumn());
}

/// <summary>A benchmark that knows how many floating-point operations one invocation does.</summary>
internal interface IFlopCount
{
    /// <summary>FLOPs (or FLOP-equivalents) of one invocation for the current parameters.</summary>
    double Flops { get; }
}

/// <summary>GFLOP/s from the mean time and <see cref="IFlopCount.Flops"/> (the benchmark object, rebuilt with the case's parameters).</summary>
internal sealed class GflopsColumn : IColumn
{
    public string Id => nameof(GflopsColumn);
    public string ColumnName => "GFLOP/s";
    public bool AlwaysShow => true;
    public ColumnCategory Category => ColumnCategory.Custom;
    public int PriorityInCategory => 0;
    public bool IsNumeric => true;
    public UnitType UnitType => UnitType.Dimensionless;
    public string Legend => "FLOP-equivalents per second: 2·p·k·B for a dense projection, the factored projector's multiply-adds ×2";
    public bool IsDefault(Summary summary, BenchmarkCase benchmarkCase) => false;
    public bool IsAvailable(Summary summary) => true;
    public string GetValue(Summary summary, BenchmarkCase benchmarkCase) => GetValue(summary, benchmarkCase, SummaryStyle.Default);

    public string GetValue(Summary summary, BenchmarkCase benchmarkCase, SummaryStyle style)
    {
        var report = summary[benchmarkCase];
        if (report?.ResultStatistics is null || Activator.CreateInstance(benchmarkCase.Descriptor.Type) is not IFlopCount counter)
        {
            return "-";
        }
        foreach (var parameter in benchmarkCase.Parameters.Items)
        {
            benchmarkCase.Descriptor.Type.GetProperty(parameter.Name)?.SetValue(counter, parameter.Value);
            benchmarkCase.Descriptor.Type.GetField(parameter.Name)?.SetValue(counter, parameter.Value);
        }
        double seconds = report.ResultStatistics.Mean * 1e-9;
        return (counter.Flops / seconds / 1e9).ToString("F1", System.Globalization.CultureInfo.InvariantCulture);
    }
}
