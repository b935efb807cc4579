"""Exports a model of models.py with PyTorch's own exporter and writes the gradient oracle beside it.

    python3 tools/torch-models/export.py --model ddpm_unet --width small --opset 17 --out DIR [--channels 3 --size 32 --seed 0 --t 100]

Writes DIR/model.onnx (torch.onnx.export, dynamic batch axis on x, t and eps; a model that takes a class label, dit_label,
has a third input y, int64 [batch]; a text-conditioned one, diffusers_text, a third input encoder_hidden_states, float
[batch, L, D], and DIR/text-encoder.onnx, vocabulary.txt and class-names.txt beside it) and DIR/oracle/:
  x_t.npy and eps.npy (one example and the forward output, float32, flattened to 1 x C*H*W; its step is oracle.json's t),
  grad.<initializer>.npy: PyTorch autograd's gradient of D-TRAK's output f = ||eps(x_t, t)||^2 for each ONNX initializer
  that holds a trainable PyTorch parameter, in the initializer's own layout (the exporter stores some Linear weights
  transposed, under names such as onnx::MatMul_123, flattened to 1 x elements), and oracle.json: the initializer <-> parameter map, the parameters
  no initializer holds, the parameter count, and for a labelled model the oracle example's label ("label"), for a
  text-conditioned one its prompt ("prompt", run through the caption encoder; the encoder is not differentiated).
Random weights from --seed; the model is in eval mode (dropout off), as it is when generating and attributing.
"""
import argparse
import json
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import models  # noqa: E402


def save(folder, name, array):
    """One array as a 1 x n float32 .npy (the engine's reader takes 2-D matrices); oracle.json keeps the shapes that matter."""
    np.save(os.path.join(folder, name + ".npy"), np.ascontiguousarray(array, dtype=np.float32).reshape(1, -1))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, choices=models.MODELS)
    ap.add_argument("--width", default="small", choices=["small", "full"])
    ap.add_argument("--opset", type=int, default=17)
    ap.add_argument("--channels", type=int, default=3)
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--t", type=int, default=100, help="the step of the oracle's example")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--dynamic-size", action="store_true", help="leave height and width open too (import then needs --image-size)")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    if a.threads > 0:
        torch.set_num_threads(a.threads)

    torch.manual_seed(a.seed)
    model = models.build(a.model, a.width, a.channels, a.size).eval()
    # Random weights with the scale of a trained network's: default init, then the GroupNorm/LayerNorm affine terms
    # moved off 1 and 0 so that a transposed or misplaced scale would show in the gradients.
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() == 1 and ("norm" in name):
                p.add_(0.1 * torch.randn_like(p))
    os.makedirs(os.path.join(a.out, "oracle"), exist_ok=True)

    x = torch.randn(2, a.channels, a.size, a.size)
    t = torch.tensor([a.t, 999 - a.t], dtype=torch.int64)
    path = os.path.join(a.out, "model.onnx")
    labelled = getattr(model, "takes_label", False)
    text = getattr(model, "takes_text", False)
    encoder = models.CaptionEncoder().eval() if text else None
    inputs, names = ((x, t), ["x", "t"])
    if labelled:
        inputs, names = (x, t, torch.tensor([3, 7], dtype=torch.int64)), ["x", "t", "y"]
    if text:
        with torch.no_grad():
            context = encoder(torch.cat([models.caption_tokens("a dark sneaker"), models.caption_tokens("a light bag")]))
        inputs, names = (x, t, context), ["x", "t", "encoder_hidden_states"]
    axes = {"x": {0: "batch", 2: "height", 3: "width"} if a.dynamic_size else {0: "batch"}, "t": {0: "batch"},
            "eps": {0: "batch", 2: "height", 3: "width"} if a.dynamic_size else {0: "batch"}}
    if labelled:
        axes["y"] = {0: "batch"}
    if text:
        axes["encoder_hidden_states"] = {0: "batch"}
        # The caption encoder, its own graph at the same opset, and the words its token ids stand for (1 … V-1, 0 the padding).
        torch.onnx.export(encoder, (models.caption_tokens("a dark sneaker"),), os.path.join(a.out, "text-encoder.onnx"), opset_version=a.opset,
                          input_names=["input_ids"], output_names=["last_hidden_state"],
                          dynamic_axes={"input_ids": {0: "batch"}, "last_hidden_state": {0: "batch"}}, do_constant_folding=True)
        with open(os.path.join(a.out, "vocabulary.txt"), "w") as f:
            f.write("\n".join(models.CAPTION_WORDS) + "\n")
        with open(os.path.join(a.out, "class-names.txt"), "w") as f:
            f.write("\n".join(models.CAPTION_CLASSES) + "\n")
    torch.onnx.export(model, inputs, path, opset_version=a.opset, input_names=names, output_names=["eps"], dynamic_axes=axes,
                      do_constant_folding=True)

    # The oracle: one example, D-TRAK's output function, autograd.
    g = torch.Generator().manual_seed(a.seed + 1)
    x1 = torch.randn(1, a.channels, a.size, a.size, generator=g)
    t1 = torch.tensor([a.t], dtype=torch.int64)
    label, prompt = 3, "a dark sneaker"
    model.zero_grad()
    if text:
        with torch.no_grad():
            context1 = encoder(models.caption_tokens(prompt))
        eps = model(x1, t1, context1)
    else:
        eps = model(x1, t1, torch.tensor([label], dtype=torch.int64)) if labelled else model(x1, t1)
    (eps ** 2).sum().backward()
    ora = os.path.join(a.out, "oracle")
    save(ora, "x_t", x1.numpy())
    save(ora, "eps", eps.detach().numpy())

    import onnx
    from onnx import numpy_helper
    inits = {i.name: numpy_helper.to_array(i) for i in onnx.load(path).graph.initializer}
    params = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    pairs, used = [], set()
    for oname, value in inits.items():
        if value.dtype != np.float32:
            continue
        match = None
        for pname, p in params:  # the same name first, then the same values (the exporter renames and transposes)
            if pname == oname and tuple(p.shape) == value.shape:
                match = (pname, False)
                break
        if match is None:
            candidates = []
            for pname, p in params:
                if pname in used:
                    continue
                pv = p.detach().numpy()
                if pv.shape == value.shape and np.array_equal(pv, value):
                    candidates.append((pname, False))
                elif pv.ndim == 2 and pv.T.shape == value.shape and np.array_equal(pv.T, value):
                    candidates.append((pname, True))
                elif pv.size == value.size and pv.size > 1 and np.array_equal(pv.reshape(-1), value.reshape(-1)):
                    candidates.append((pname, False))  # the same values in another shape (a norm's scale as [C, 1, 1])
            # Several parameters with the same values (zeros, ones) cannot be told apart: such an initializer stays unpaired.
            if len(candidates) == 1:
                match = candidates[0]
        row = None
        if match is None and value.size > 1:
            # A row of a table that the exporter folded into a constant (an embedding looked up at a fixed index).
            for pname, p in params:
                pv = p.detach().numpy()
                if pv.ndim == 2 and pv.shape[1] == value.size:
                    hits = [r for r in range(pv.shape[0]) if np.array_equal(pv[r], value.reshape(-1))]
                    if len(hits) == 1:
                        match, row = (pname, False), hits[0]
                        break
        if match is None:
            continue
        pname, transposed = match
        used.add(pname)
        grad = dict(params)[pname].grad
        grad = np.zeros(dict(params)[pname].shape, np.float32) if grad is None else grad.numpy()
        if row is not None:
            grad = grad[row]
        save(ora, f"grad.{oname}", np.ascontiguousarray(grad.T if transposed else grad).reshape(value.shape))
        pairs.append({"initializer": oname, "parameter": pname if row is None else f"{pname}[{row}]", "transposed": transposed,
                      "elements": int(value.size)})
    info = {
        "model": a.model, "width": a.width, "opset": a.opset, "channels": a.channels, "size": a.size, "seed": a.seed, "t": a.t,
        "torch": torch.__version__, "output_function": "sum(eps^2)", **({"label": label} if labelled else {}), **({"prompt": prompt} if text else {}),
        "parameters": sum(p.numel() for _, p in params),
        "pairs": pairs,
        "unmatched_parameters": [n for n, _ in params if n not in used and not any(q["parameter"].startswith(n + "[") for q in pairs)],
        "frozen": [n for n, p in model.named_parameters() if not p.requires_grad] + [n for n, _ in model.named_buffers()],
    }
    with open(os.path.join(ora, "oracle.json"), "w") as f:
        json.dump(info, f, indent=1)
    print(f"{a.model} ({a.width}, opset {a.opset}): {info['parameters']:,} parameters, {len(pairs)} initializers matched, "
          f"{len(info['unmatched_parameters'])} parameters without an initializer -> {path}")


if __name__ == "__main__":
    main()
