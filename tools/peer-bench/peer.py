"""The peers' D-TRAK featurization recipe in PyTorch, side by side with the engine (issue 27, part 1).

The recipe as D-TRAK's public code (Zheng et al. 2023) runs it on top of TRAK (Park et al. 2023): for each timestep
t = 0, T/K, ..., per-example gradients of the output function f = mean(eps_hat(x_t, t)^2) by functorch's
vmap(grad(f)) over a batch of examples, averaged over the K timesteps, then TRAK's CPU projection: a +-1 matrix (times
1/sqrt(k)) generated in column blocks with torch's RNG (Bernoulli(1/2) -> 2b - 1, one generator state per block) and
multiplied block by block, regenerated for every batch as TRAK's BasicProjector does. Written for this project from the
papers' description; no code is taken from TRAK or D-TRAK.

The model is the engine's own: the shipped fm16 U-Net (src/OnnxAttribution.Training/UNet.cs) rebuilt as an nn.Module,
its weights read by name from forward.onnx's initializers; or, for the real-size timing, a network of
tools/torch-models/models.py with export.py's random weights (--torch-model ddpm_unet:full). The noise is the engine's:
its Philox4x32-10 counter RNG is ported below, so x_t is the engine's x_t bit for bit up to float32 rounding.

Usage (python3 is Debian's /usr/bin/python3 with torch 1.13):
    peer.py reference --model models/fm16 --t 100 --out DIR        # files for `check-gradients --reference DIR`
    peer.py reference --torch-model ddpm_unet:full --oracle out/real-size/torch/oracle --out DIR   # the same at real size
    peer.py featurize --model models/fm16 --subset 0:64 --timesteps 10 --dim 4096 --batch 64 --out feats.npy
    peer.py featurize --model models/fm16 --queries q0.png,q1.png ... --out qfeats.npy
    peer.py featurize --torch-model ddpm_unet:full --image-size 32 --subset 0:4 ... --out feats.npy
    peer.py score --train feats.npy --queries qfeats.npy --damping 0.1 --top 10 --out top.json
    peer.py collect --out top.json a0.json a1.json ...               # the engine's `attribute --json` rankings as one file
    peer.py overlap --a top_a.json --b top_b.json                    # mean top-k overlap of two rankings
featurize prints one line `peer: N examples x K timesteps in S s steady -> R example*timesteps/s` (the steady time
leaves out start-up: imports, model load, the first (warm-up) batch is included; see --warmup).
"""
import argparse
import gzip
import json
import math
import os
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))

# ---------------------------------------------------------------- the engine's noise (CounterRng over Philox4x32-10)

M0, M1 = np.uint64(0xD2511F53), np.uint64(0xCD9E8D57)
W0, W1 = 0x9E3779B9, 0xBB67AE85
MASK = np.uint64(0xFFFFFFFF)


def philox_blocks(blocks, stream, key):
    """Philox4x32-10 of counters (block, stream) under a 64-bit key, for an array of block indices: four uint32 words each."""
    blocks = np.asarray(blocks, dtype=np.uint64)
    stream &= (1 << 64) - 1
    key &= (1 << 64) - 1
    c0 = blocks & MASK
    c1 = blocks >> np.uint64(32)
    c2 = np.full_like(c0, stream & 0xFFFFFFFF)
    c3 = np.full_like(c0, stream >> 32)
    k0, k1 = key & 0xFFFFFFFF, key >> 32
    for r in range(10):
        if r > 0:
            k0 = (k0 + W0) & 0xFFFFFFFF
            k1 = (k1 + W1) & 0xFFFFFFFF
        p0 = M0 * c0
        p1 = M1 * c2
        hi0, lo0 = p0 >> np.uint64(32), p0 & MASK
        hi1, lo1 = p1 >> np.uint64(32), p1 & MASK
        c0, c1, c2, c3 = hi1 ^ c1 ^ np.uint64(k0), lo1, hi0 ^ c3 ^ np.uint64(k1), lo0
    return c0, c1, c2, c3


def counter_normal(seed, stream, count):
    """Standard normal elements 0..count-1 of CounterRng(seed, stream): Box-Muller in float64 per block, rounded to float32."""
    x0, x1, x2, x3 = philox_blocks(np.arange((count + 1) // 2), stream, seed)
    bits = lambda a, b: ((a >> np.uint64(5)) << np.uint64(26)) | (b >> np.uint64(6))  # noqa: E731
    u1 = 1.0 - bits(x0, x1).astype(np.float64) / 2.0 ** 53
    u2 = bits(x2, x3).astype(np.float64) / 2.0 ** 53
    r = np.sqrt(-2.0 * np.log(u1))
    z = np.stack([r * np.cos(2 * np.pi * u2), r * np.sin(2 * np.pi * u2)], axis=1).reshape(-1)
    return z[:count].astype(np.float32)


def plan_noise(seed, timestep_count, draws, per_example):
    """The engine's FeaturizationPlan.Noise: draw d at timestep index j is stream j*draws + d; the same for every example."""
    return np.stack([counter_normal(seed, j * draws, per_example) for j in range(timestep_count)])


def evenly(T, K):
    """FeaturizationPlan.Evenly: t = 0, T/K, 2T/K, ... (integer division)."""
    return [j * T // K for j in range(K)]


def alpha_bars(schedule):
    """NoiseSchedule for the linear schedule (float64 cumulative product)."""
    if schedule["kind"] != "linear":
        raise SystemExit(f"schedule {schedule['kind']}: only linear is ported")
    T = schedule["timesteps"]
    b0, b1 = schedule["betaStart"], schedule["betaEnd"]
    betas = [b0 + (b1 - b0) * t / (T - 1) for t in range(T)]
    out, prod = [], 1.0
    for b in betas:
        prod *= 1 - b
        out.append(prod)
    return np.array(out)


# ---------------------------------------------------------------- the fm16 U-Net (UNet.cs) in PyTorch

class GroupNormSilu(nn.Module):
    """GroupNorm with affine weight/bias (names as UNet.cs's GroupNorm)."""

    def __init__(self, groups, ch, eps):
        super().__init__()
        self.groups, self.eps = groups, eps
        self.weight = nn.Parameter(torch.ones(ch))
        self.bias = nn.Parameter(torch.zeros(ch))

    def forward(self, x):
        return F.group_norm(x, self.groups, self.weight, self.bias, self.eps)


class TimeEmbedding(nn.Module):
    def __init__(self, cfg, frequencies):
        super().__init__()
        self.register_buffer("frequencies", frequencies.reshape(1, -1))
        self.fc1 = nn.Linear(cfg["sinusoidDim"], cfg["timeEmbeddingDim"])
        self.fc2 = nn.Linear(cfg["timeEmbeddingDim"], cfg["timeEmbeddingDim"])

    def forward(self, t):
        arg = t.float().unsqueeze(1) * self.frequencies
        return self.fc2(F.silu(self.fc1(torch.cat([torch.sin(arg), torch.cos(arg)], 1))))


class ResBlock(nn.Module):
    def __init__(self, cin, cout, cfg):
        super().__init__()
        g, e = cfg["groups"], cfg["groupNormEpsilon"]
        self.norm1 = GroupNormSilu(g, cin, e)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.time_proj = nn.Linear(cfg["timeEmbeddingDim"], cout)
        self.norm2 = GroupNormSilu(g, cout, e)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else None

    def forward(self, x, temb_act):
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.time_proj(temb_act)[:, :, None, None]
        h = self.conv2(F.silu(self.norm2(h)))
        return (x if self.skip is None else self.skip(x)) + h


class EngineUNet(nn.Module):
    """UNet.cs: conv_in, one ResBlock per level down (stride-2 conv between), mid, then nearest x2 + conv, concat, ResBlock."""

    def __init__(self, cfg, frequencies):
        super().__init__()
        mult = cfg["channelMultipliers"]
        chans = [cfg["baseChannels"] * m for m in mult]
        self.levels = len(mult)
        self.time = TimeEmbedding(cfg, frequencies)
        self.conv_in = nn.Conv2d(cfg["channels"], chans[0], 3, padding=1)
        ch = chans[0]
        for i in range(self.levels):
            setattr(self, f"down{i}", ResBlock(ch, chans[i], cfg))
            ch = chans[i]
            if i < self.levels - 1:
                setattr(self, f"downsample{i}", nn.Conv2d(ch, ch, 3, stride=2, padding=1))
        self.mid = ResBlock(ch, ch, cfg)
        for i in range(self.levels - 2, -1, -1):
            setattr(self, f"upsample{i}", nn.Conv2d(ch, ch, 3, padding=1))
            setattr(self, f"up{i}", ResBlock(ch + chans[i], chans[i], cfg))
            ch = chans[i]
        self.norm_out = GroupNormSilu(cfg["groups"], ch, cfg["groupNormEpsilon"])
        self.conv_out = nn.Conv2d(ch, cfg["channels"], 3, padding=1)

    def forward(self, x, t):
        temb = F.silu(self.time(t))
        h = self.conv_in(x)
        skips = []
        for i in range(self.levels):
            h = getattr(self, f"down{i}")(h, temb)
            if i < self.levels - 1:
                skips.append(h)
                h = getattr(self, f"downsample{i}")(h)
        h = self.mid(h, temb)
        for i in range(self.levels - 2, -1, -1):
            h = getattr(self, f"upsample{i}")(F.interpolate(h, scale_factor=2.0, mode="nearest"))
            h = getattr(self, f"up{i}")(torch.cat([h, skips[i]], 1), temb)
        return self.conv_out(F.silu(self.norm_out(h)))


def load_engine_model(folder):
    """The model folder's U-Net with forward.onnx's initializers loaded by name; returns (module, model.json)."""
    import onnx
    from onnx import numpy_helper
    with open(os.path.join(folder, "model.json")) as f:
        meta = json.load(f)
    inits = {i.name: numpy_helper.to_array(i) for i in onnx.load(os.path.join(folder, meta["forward"])).graph.initializer}
    net = EngineUNet(meta["architecture"], torch.from_numpy(inits["time.frequencies"].astype(np.float32).copy()))
    names = [p["name"] for p in meta["parameters"]]
    own = dict(net.named_parameters())
    if sorted(names) != sorted(own):
        raise SystemExit(f"{folder}: parameters differ from the port: {sorted(set(names) ^ set(own))[:5]}")
    with torch.no_grad():
        for n in names:
            own[n].copy_(torch.from_numpy(inits[n].copy()).reshape(own[n].shape))
    return net.eval(), meta


def load_torch_model(spec, channels, size, seed=0):
    """A network of tools/torch-models/models.py with export.py's random weights (same seed, same norm perturbation)."""
    sys.path.insert(0, os.path.join(ROOT, "tools", "torch-models"))
    import models
    name, width = spec.split(":")
    torch.manual_seed(seed)
    net = models.build(name, width, channels, size).eval()
    with torch.no_grad():
        for n, p in net.named_parameters():
            if p.dim() == 1 and "norm" in n:
                p.add_(0.1 * torch.randn_like(p))
    meta = {"channels": channels, "imageSize": size,
            "schedule": {"kind": "linear", "timesteps": 1000, "betaStart": 0.0001, "betaEnd": 0.02}}
    return net, meta


# ---------------------------------------------------------------- data

def read_embedded(rows, size):
    """The embedded dataset (models/data/fashion-mnist-16) as the engine reads it: v / 127.5 - 1 in float64, rounded to float32.
    Other sizes are nearest-resized here (timing only: the real-size model takes 32x32)."""
    with gzip.open(os.path.join(ROOT, "models", "data", "fashion-mnist-16", "train-images-idx3-ubyte.gz")) as f:
        raw = f.read()
    n, h, w = (int.from_bytes(raw[i:i + 4], "big") for i in (4, 8, 12))
    v = np.frombuffer(raw, np.uint8, offset=16).reshape(n, h, w)[rows[0]:rows[1]]
    x = (v.astype(np.float64) / 127.5 - 1).astype(np.float32)
    if size != h:
        idx = (np.arange(size) * h) // size
        x = x[:, idx][:, :, idx]
    return x[:, None]


def read_pngs(paths, size):
    """Query PNGs (grayscale), mapped v / 127.5 - 1 as the engine's PngImage reader does for 8-bit files."""
    from PIL import Image
    out = []
    for p in paths:
        im = Image.open(p).convert("L")
        if im.size != (size, size):
            raise SystemExit(f"{p}: {im.size}, expected {size}x{size} (write queries with --scale 1)")
        out.append((np.asarray(im, np.float64) / 127.5 - 1).astype(np.float32))
    return np.stack(out)[:, None]


# ---------------------------------------------------------------- the recipe

def per_example_grads(net):
    """vmap(grad(f)) of f(params; x, t) = mean(eps_hat(x, t)^2) over a batch of examples (x [B,C,H,W], t [B])."""
    from functorch import grad, vmap
    from torch.nn.utils.stateless import functional_call

    def f(params, x, t):
        eps = functional_call(net, params, (x.unsqueeze(0), t.unsqueeze(0)))
        return (eps ** 2).mean()

    g = vmap(grad(f), in_dims=(None, 0, 0))
    return lambda params, x, t: g(params, x, t)


class ChunkedRademacher:
    """TRAK's CPU projection as its BasicProjector does it: P in {-1, +1}^{p x k} / sqrt(k), generated in column blocks of
    `block` columns from torch's CPU generator (one seed per block), G @ P_block per block, regenerated on every call.

    signs: "bernoulli" draws each block as TRAK does (bernoulli_(0.5), then 2b - 1; on this torch build a serial loop, ~25 ns
    an entry); "random" uses random_(0, 2) instead (~4 ns an entry), a kinder peer than the recipe. budget: when positive,
    a call stops generating blocks after that many seconds and its time is extrapolated to all blocks (every block is the
    same work); the features are then incomplete and only the timing is meaningful."""

    def __init__(self, p, k, seed, block, signs="bernoulli", budget=0.0):
        self.p, self.k, self.block = p, k, max(1, min(block, k))
        self.seed, self.signs, self.budget = seed, signs, budget
        self.buf = torch.empty(p, self.block)
        self.gen = torch.Generator()
        self.extrapolated = None  # (blocks done, blocks) of the last call that ran out of budget

    def project(self, g):
        out = torch.zeros(g.shape[0], self.k)
        starts = list(range(0, self.k, self.block))
        t0 = time.perf_counter()
        for j, start in enumerate(starts):
            if self.budget > 0 and time.perf_counter() - t0 > self.budget:
                self.extrapolated = (j, len(starts))
                return out, (time.perf_counter() - t0) * len(starts) / j
            end = min(start + self.block, self.k)
            self.gen.manual_seed(self.seed * 1_000_003 + j)
            m = self.buf[:, : end - start]
            if self.signs == "bernoulli":
                m.bernoulli_(0.5, generator=self.gen)
            else:
                m.random_(0, 2, generator=self.gen)
            m.mul_(2.0).sub_(1.0)
            torch.matmul(g, m, out=out[:, start:end])
        return out.mul_(1.0 / math.sqrt(self.k)), time.perf_counter() - t0


def featurize(a):
    torch.set_num_threads(a.threads)
    t0 = time.perf_counter()
    if a.torch_model:
        net, meta = load_torch_model(a.torch_model, a.channels, a.image_size)
    else:
        net, meta = load_engine_model(a.model)
    size, ch = meta["imageSize"], meta["channels"]
    if a.queries:
        x0 = read_pngs(a.queries.split(","), size)
    else:
        lo, hi = (int(v) for v in a.subset.split(":"))
        x0 = read_embedded((lo, hi), size)
    n, d = x0.shape[0], ch * size * size
    T = meta["schedule"]["timesteps"]
    ts = evenly(T, a.timesteps)
    ab = alpha_bars(meta["schedule"])
    noise = plan_noise(a.noise_seed, len(ts), 1, d).reshape(len(ts), ch, size, size)
    params = {k: v.detach() for k, v in net.named_parameters()}
    names = list(params)
    p = sum(v.numel() for v in params.values())
    grads_fn = per_example_grads(net)
    proj = ChunkedRademacher(p, a.dim, a.projection_seed, a.block, a.signs, a.projection_budget) if a.dim > 0 else None
    feats = np.zeros((n, a.dim if proj else p), np.float32)
    setup = time.perf_counter() - t0
    print(f"peer: {p:,} parameters, {n} examples x {len(ts)} timesteps, batch {a.batch}, k = {a.dim}, block {a.block}; "
          f"set-up {setup:.1f} s", file=sys.stderr)
    steady_start, warm_rows = None, 0
    grad_s = proj_s = extra = 0.0
    for b0 in range(0, n, a.batch):
        if b0 >= a.warmup * a.batch and steady_start is None:
            steady_start, warm_rows = time.perf_counter(), b0
        x = torch.from_numpy(x0[b0:b0 + a.batch])
        bsz = x.shape[0]
        acc = torch.zeros(bsz, p)
        tg = time.perf_counter()
        for j, t in enumerate(ts):
            sa, sn = np.float32(math.sqrt(ab[t])), np.float32(math.sqrt(1 - ab[t]))
            xt = sa * x + sn * torch.from_numpy(noise[j])
            g = grads_fn(params, xt, torch.full((bsz,), t, dtype=torch.int64))
            acc += torch.cat([g[k].reshape(bsz, -1) for k in names], 1)
            del g
        acc /= len(ts)
        tp = time.perf_counter()
        grad_s += tp - tg
        y, seconds = proj.project(acc) if proj else (acc, 0.0)
        feats[b0:b0 + bsz] = y.numpy()
        extra += seconds - (time.perf_counter() - tp)  # what an extrapolated projection did not spend
        proj_s += seconds
        del acc, y
        print(f"peer: {b0 + bsz}/{n} rows, gradients {grad_s:.1f} s, projection {proj_s:.1f} s", file=sys.stderr)
    end = time.perf_counter() + extra
    if steady_start is None:
        steady_start, warm_rows = t0 + setup, 0
    steady_rows = n - warm_rows
    rate = steady_rows * len(ts) / (end - steady_start)
    total = n * len(ts) / (end - t0)
    note = ""
    if proj and proj.extrapolated:
        note = f", extrapolated from {proj.extrapolated[0]} of {proj.extrapolated[1]} blocks: {extra:.0f} s not run"
    np.save(a.out, feats)
    print(f"peer: {steady_rows} examples x {len(ts)} timesteps in {end - steady_start:.2f} s steady -> {rate:.2f} example*timesteps/s "
          f"({total:.2f} with set-up; gradients {grad_s:.1f} s, projection {proj_s:.1f} s{note})")
    print(f"peer-extra-seconds: {extra:.1f}", flush=True)


# ---------------------------------------------------------------- the oracle for check-gradients --reference

def reference_torch(a):
    """--torch-model: export.py's oracle (its x_t, t and initializer <-> parameter map) with the gradients recomputed by the
    peer's vmap(grad) path (the example in a batch of two), so `check-gradients --reference` checks the peer at real size."""
    with open(os.path.join(a.oracle, "oracle.json")) as f:
        oracle = json.load(f)
    net, _ = load_torch_model(a.torch_model, oracle["channels"], oracle["size"], oracle["seed"])
    x = torch.from_numpy(np.load(os.path.join(a.oracle, "x_t.npy")).reshape(1, oracle["channels"], oracle["size"], oracle["size"]))
    params = {k: v.detach() for k, v in net.named_parameters()}
    g = per_example_grads(net)(params, torch.cat([x, torch.rand_like(x) * 2 - 1]), torch.tensor([oracle["t"], (oracle["t"] + 500) % 1000]))
    os.makedirs(a.out, exist_ok=True)
    save = lambda name, v: np.save(os.path.join(a.out, name + ".npy"), np.ascontiguousarray(v, np.float32).reshape(1, -1))  # noqa: E731
    with torch.no_grad():
        save("eps", net(x, torch.tensor([oracle["t"]])).numpy())
    save("x_t", x.numpy())
    for pr in oracle["pairs"]:
        name, row = pr["parameter"], None
        if name.endswith("]"):
            name, row = name[:-1].split("[")
        v = (g[name][0] * x.numel()).numpy()
        v = v[int(row)] if row is not None else v
        save("grad." + pr["initializer"], v.T if pr["transposed"] else v)
    oracle["path"] = "functorch vmap(grad), batch of 2"
    with open(os.path.join(a.out, "oracle.json"), "w") as f:
        json.dump(oracle, f, indent=1)
    print(f"reference: {len(oracle['pairs'])} tensors at t = {oracle['t']} -> {a.out}")


def reference(a):
    """x_t, eps and grad.<initializer> of f = sum(eps^2) (what ReferenceGradientCheck compares), one example at step t."""
    torch.set_num_threads(a.threads)
    if a.torch_model:
        return reference_torch(a)
    net, meta = load_engine_model(a.model)
    ch, size = meta["channels"], meta["imageSize"]
    os.makedirs(a.out, exist_ok=True)
    g = torch.Generator().manual_seed(a.seed)
    x = torch.randn(1, ch, size, size, generator=g)
    t = torch.tensor([a.t], dtype=torch.int64)
    # The peer's own path: vmap(grad(mean(eps^2))) over a batch of two (the example beside another image at another step),
    # times D so that f = sum(eps^2) as the check expects.
    other = torch.rand(1, ch, size, size, generator=g) * 2 - 1
    params = {k: v.detach() for k, v in net.named_parameters()}
    grads = per_example_grads(net)(params, torch.cat([x, other]), torch.tensor([a.t, (a.t + 500) % 1000], dtype=torch.int64))
    with torch.no_grad():
        eps = net(x, t)
    d = x.numel()
    save = lambda name, v: np.save(os.path.join(a.out, name + ".npy"), np.ascontiguousarray(v, np.float32).reshape(1, -1))  # noqa: E731
    save("x_t", x.numpy())
    save("eps", eps.numpy())
    pairs = []
    for n, p in params.items():
        save("grad." + n, (grads[n][0] * d).numpy())
        pairs.append({"initializer": n, "parameter": n, "transposed": False, "elements": p.numel()})
    with open(os.path.join(a.out, "oracle.json"), "w") as f:
        json.dump({"model": a.model, "t": a.t, "seed": a.seed, "torch": torch.__version__, "output_function": "sum(eps^2)", "path": "functorch vmap(grad), batch of 2",
                   "parameters": sum(p.numel() for p in net.parameters()), "pairs": pairs, "unmatched_parameters": []}, f, indent=1)
    print(f"reference: {len(pairs)} tensors at t = {a.t} -> {a.out}")


# ---------------------------------------------------------------- TRAK scores and rankings

def score(a):
    """tau = phi_q (Phi^T Phi + lambda * mean(diag Phi^T Phi) I)^-1 Phi^T, in float64; writes each query's top rows."""
    phi = np.load(a.train).astype(np.float64)
    q = np.load(a.queries).astype(np.float64)
    k = phi.T @ phi
    lam = a.damping * np.mean(np.diag(k))
    tau = q @ np.linalg.solve(k + lam * np.eye(k.shape[0]), phi.T)
    top = [[int(r) for r in np.argsort(-row, kind="stable")[: a.top]] for row in tau]
    with open(a.out, "w") as f:
        json.dump({"top": top, "damping": a.damping, "lambda": lam}, f)
    print(f"score: {q.shape[0]} queries x {phi.shape[0]} rows, k = {phi.shape[1]}, lambda = {lam:.4g} -> {a.out}")


def read_top(path, top):
    """Top rows per query from peer.py score's JSON or from a list of the engine's `attribute --json` outputs."""
    with open(path) as f:
        data = json.load(f)
    return [r[:top] for r in data["top"]]


def collect(a):
    """The engine's `attribute --json` outputs (one file per query, in query order) as {"top": [[row, ...], ...]}."""
    top = []
    for path in a.inputs:
        with open(path) as f:
            data = json.load(f)
        for r in data["rankings"]:
            top.append([int(x["index"]) for x in r["top"]])
    with open(a.out, "w") as f:
        json.dump({"top": top}, f)


def engine_rate(a):
    """The engine's steady rate from featurize's progress lines ("featurize: d/n (..) rows, .. [12.3s]" or [1m02s]): from the end of
    the first batch to the last line, as featurize reports it, but with more digits; with one batch, from the 0/n line (set-up done)."""
    import re
    with open(a.log, encoding="utf-8", errors="replace") as f:
        text = f.read().replace("\r", "\n")
    points = []
    for m in re.finditer(r"featurize: (\d+)/(\d+) .*?\[(?:(\d+)h)?(?:(\d+)m)?(?:([\d.]+)s)?[,\]]", text):
        h, mi, sec = (float(v) if v else 0.0 for v in m.group(3, 4, 5))
        points.append((int(m.group(1)), 3600 * h + 60 * mi + sec))
    if len(points) < 2:
        raise SystemExit(f"{a.log}: no progress lines")
    done = [p for p in points if p[0] > 0]
    first = done[0] if done[-1][0] > done[0][0] else [p for p in points if p[0] == 0][-1]
    last = done[-1]
    print(f"{(last[0] - first[0]) * a.timesteps / (last[1] - first[1]):.3f}")


def overlap(a):
    ta, tb = read_top(a.a, a.top), read_top(a.b, a.top)
    ov = [len(set(x) & set(y)) / a.top for x, y in zip(ta, tb)]
    top1 = np.mean([x[0] == y[0] for x, y in zip(ta, tb)])
    print(f"{a.label}: mean top-{a.top} overlap {np.mean(ov):.3f} (min {min(ov):.1f}, {len(ov)} queries); top-1 equal {top1:.3f}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="verb", required=True)
    r = sub.add_parser("reference")
    r.add_argument("--model", help="engine model folder (fm16)")
    r.add_argument("--torch-model", help="name:width of models.py, with --oracle: export.py's oracle folder")
    r.add_argument("--oracle")
    r.add_argument("--t", type=int, default=100)
    r.add_argument("--seed", type=int, default=1)
    r.add_argument("--threads", type=int, default=2)
    r.add_argument("--out", required=True)
    f = sub.add_parser("featurize")
    f.add_argument("--model")
    f.add_argument("--torch-model", help="name:width of tools/torch-models/models.py (random weights as export.py draws them)")
    f.add_argument("--channels", type=int, default=1)
    f.add_argument("--image-size", type=int, default=32)
    f.add_argument("--subset", default="0:64")
    f.add_argument("--queries", help="comma-separated PNGs instead of dataset rows")
    f.add_argument("--timesteps", type=int, default=10)
    f.add_argument("--noise-seed", type=int, default=0)
    f.add_argument("--dim", type=int, default=4096, help="k; 0 writes the unprojected averaged gradients")
    f.add_argument("--projection-seed", type=int, default=0)
    f.add_argument("--block", type=int, default=100, help="columns of P generated at once (TRAK's BasicProjector default: 100)")
    f.add_argument("--signs", default="bernoulli", choices=["bernoulli", "random"], help="bernoulli_ as TRAK; random_(0, 2): faster")
    f.add_argument("--projection-budget", type=float, default=0, help="seconds per call before the projection is extrapolated (0: none)")
    f.add_argument("--batch", type=int, default=64)
    f.add_argument("--warmup", type=int, default=0, help="batches left out of the steady rate")
    f.add_argument("--threads", type=int, default=2)
    f.add_argument("--out", required=True)
    s = sub.add_parser("score")
    s.add_argument("--train", required=True)
    s.add_argument("--queries", required=True)
    s.add_argument("--damping", type=float, default=0.1)
    s.add_argument("--top", type=int, default=10)
    s.add_argument("--out", required=True)
    o = sub.add_parser("overlap")
    o.add_argument("--a", required=True)
    o.add_argument("--b", required=True)
    o.add_argument("--top", type=int, default=10)
    o.add_argument("--label", default="overlap")
    c = sub.add_parser("collect")
    c.add_argument("--out", required=True)
    c.add_argument("inputs", nargs="+")
    e = sub.add_parser("engine-rate")
    e.add_argument("log")
    e.add_argument("timesteps", type=int)
    a = ap.parse_args()
    if a.verb == "featurize" and (a.model is None) == (a.torch_model is None):
        ap.error("featurize: give --model or --torch-model")
    {"reference": reference, "featurize": featurize, "score": score, "overlap": overlap, "collect": collect, "engine-rate": engine_rate}[a.verb](a)


if __name__ == "__main__":
    main()
