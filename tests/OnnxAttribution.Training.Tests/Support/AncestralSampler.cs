using OnnxAttribution.Core.Models;
using TorchSharp;

namespace OnnxAttribution.Training.Tests.Support;

/// <summary>
/// DDPM ancestral sampling with TorchSharp (Ho et al. 2020, Algorithm 2, σ_t² = β̃_t), for looking at a trained
/// network's samples in tests and in the shipped-model run. The engine's sampler runs the ONNX graph; this one is a check.
/// </summary>
internal static class AncestralSampler
{
    public static float[] Sample(UNet net, ScheduleSettings settings, int count, long seed)
    {
        var schedule = new NoiseSchedule(settings);
        var c = net.Config;
        using var scope = torch.NewDisposeScope();
        using var noGrad = torch.no_grad();
        using var gen = new torch.Generator((ulong)seed);
        net.eval();
        var x = torch.randn([count, c.Channels, c.ImageSize, c.ImageSize], generator: gen);
        for (int t = schedule.Timesteps - 1; t >= 0; t--)
        {
            using var step = torch.NewDisposeScope();
            double beta = schedule.Betas[t];
            double alphaBar = schedule.AlphaBars[t];
            double alphaBarPrev = t > 0 ? schedule.AlphaBars[t - 1] : 1.0;
            var eps = net.forward(x, torch.full([count], t, torch.int64));
            var mean = (x - eps * (beta / Math.Sqrt(1 - alphaBar))) / Math.Sqrt(1 - beta);
            if (t > 0)
            {
                double sigma = Math.Sqrt(beta * (1 - alphaBarPrev) / (1 - alphaBar));
                mean = mean + torch.randn(mean.shape, generator: gen) * sigma;
            }
            x.Dispose();
            x = mean.clamp(-1, 1).MoveToOuterDisposeScope();
        }
        return x.data<float>().ToArray();
    }
}
