namespace OnnxAttribution.Training;

/// <summary>The outcome of a training run: the trained and the EMA networks. Dispose it to free their native memory.</summary>
public sealed class TrainResult : IDisposable
{
    internal TrainResult(UNet model, UNet ema, int steps, double finalLoss, TimeSpan elapsed, IReadOnlyList<double> losses)
    {
        Model = model;
        Ema = ema;
        Steps = steps;
        FinalLoss = finalLoss;
        Elapsed = elapsed;
        Losses = losses;
    }

    /// <summary>The network with the last optimizer step's weights.</summary>
    public UNet Model { get; }

    /// <summary>The exponential moving average of the weights: the network to sample from and export.</summary>
    public UNet Ema { get; }

    /// <summary>Steps done in total (including those before a resume).</summary>
    public int Steps { get; }

    /// <summary>The mean batch loss of the last up to 100 steps of this process.</summary>
    public double FinalLoss { get; }

    /// <summary>Wall time spent in this process.</summary>
    public TimeSpan Elapsed { get; }

    /// <summary>The batch loss of every step this process ran, in order.</summary>
    public IReadOnlyList<double> Losses { get; }

    public void Dispose()
    {
        Model.Dispose();
        Ema.Dispose();
    }
}
