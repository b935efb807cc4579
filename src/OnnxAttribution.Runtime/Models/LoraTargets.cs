namespace OnnxAttribution.Runtime.Models;

/// <summary>Which layers of a network get low-rank adapters (<see cref="LoraSettings.Targets"/>).</summary>
public enum LoraTargets
{
    /// <summary>The 3×3 convolutions inside the residual blocks (the layers that carry the image content).</summary>
    Conv,

    /// <summary>The linear layers: the time embedding's two layers and every block's projection of it.</summary>
    Linear,

    /// <summary>Every convolution and linear layer: <see cref="Conv"/>, <see cref="Linear"/>, the input and output
    /// convolutions, the down- and upsampling convolutions and the blocks' 1×1 skip convolutions.</summary>
    All,
}
