using TorchSharp;

namespace OnnxAttribution.Training;

/// <summary>
/// Scalars that outlive the libtorch calls they are passed to. TorchSharp 0.107 hands a <see cref="Scalar"/> to libtorch by its
/// native handle and does not keep the managed object alive during the call, so an implicit one (the alpha of <c>a + b</c>, the
/// 0.9 of <c>m.mul_(0.9)</c>) can be finalized by a garbage collection while libtorch still reads it: a crash such as
/// "Expected false to be true" from <c>Scalar::toFloat</c> (UNetTests reproduces it by collecting on another thread). Our
/// TorchSharp code passes explicit scalars instead: this one, or locals disposed after their last use.
/// </summary>
internal static class KeptScalars
{
    /// <summary>1, the alpha of every tensor sum: <c>a.add(b, KeptScalars.One)</c> for <c>a + b</c>. Never disposed.</summary>
    public static readonly Scalar One = 1;
}
