"""PyTorch definitions of the diffusion architectures that users bring to `import`, written from the papers.

Each model is an epsilon-prediction network eps(x_t, t) with x_t [B, C, H, W] float and t [B] int64 (the 0-based step).
Widths are arguments so that the tests can export small versions of the same layouts; `full` gives the papers' sizes.

- ddpm_unet: Ho et al. 2020, the CIFAR-10 U-Net (ch 128, multipliers 1,2,2,2, two residual blocks per level,
  self-attention at 16x16, GroupNorm(32), swish, sinusoidal step embedding, dropout 0.1, asymmetric-pad downsampling,
  nearest upsampling + conv): 35.7M parameters at 3 channels, 32x32.
- diffusers_unet: the block layout of diffusers' UNet2DModel (ResnetBlock2D with time_emb_proj, Attention with group
  norm over [B, HW, C] and heads, Downsample2D with pad (0,1,0,1) + strided conv, Upsample2D with F.interpolate).
- diffusers_text: the same layout with a third input, encoder_hidden_states [B, L, D], read by a cross-attention in the
  middle block (UNet2DConditionModel's attn2: to_q/to_k/to_v without bias); its caption encoder (CaptionEncoder: token
  ids of the engine's Fashion-MNIST caption words → [B, L, D]) is exported as its own graph.
- dit: Peebles & Xie 2023, DiT with adaLN-Zero (patch embedding, fixed 2-D sin-cos position embedding, step MLP,
  label table with a null class, multi-head attention, tanh-GELU MLP, final adaLN layer, unpatchify by einsum);
  exported unconditional: the label is the null class, fixed inside the graph. DiT-S/4: hidden 384, 12 blocks, 6 heads.
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F


def timestep_embedding(t, dim):
    """Sinusoidal embedding of the step (the Transformer's position encoding, as DDPM uses it)."""
    half = dim // 2
    freq = torch.exp(-math.log(10000) * torch.arange(half, dtype=torch.float32) / (half - 1))
    args = t.float()[:, None] * freq[None, :]
    return torch.cat([torch.sin(args), torch.cos(args)], dim=1)


def norm(ch):
    return nn.GroupNorm(min(32, ch), ch, eps=1e-6)


# ---------------------------------------------------------------- DDPM U-Net (Ho et al. 2020)

class ResBlock(nn.Module):
    def __init__(self, cin, cout, temb, dropout):
        super().__init__()
        self.norm1 = norm(cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.temb_proj = nn.Linear(temb, cout)
        self.norm2 = norm(cout)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.nin_shortcut = nn.Conv2d(cin, cout, 1) if cin != cout else None

    def forward(self, x, temb):
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.temb_proj(F.silu(temb))[:, :, None, None]
        h = self.conv2(self.dropout(F.silu(self.norm2(h))))
        return (x if self.nin_shortcut is None else self.nin_shortcut(x)) + h


class AttnBlock(nn.Module):
    """Single-head self-attention over the H*W positions, as the DDPM code writes it with bmm."""

    def __init__(self, ch):
        super().__init__()
        self.norm = norm(ch)
        self.q = nn.Conv2d(ch, ch, 1)
        self.k = nn.Conv2d(ch, ch, 1)
        self.v = nn.Conv2d(ch, ch, 1)
        self.proj_out = nn.Conv2d(ch, ch, 1)

    def forward(self, x):
        h = self.norm(x)
        q, k, v = self.q(h), self.k(h), self.v(h)
        b, c, hh, ww = q.shape
        q = q.reshape(b, c, hh * ww).permute(0, 2, 1)
        k = k.reshape(b, c, hh * ww)
        w = torch.bmm(q, k) * (int(c) ** -0.5)
        w = torch.softmax(w, dim=2)
        v = v.reshape(b, c, hh * ww)
        h = torch.bmm(v, w.permute(0, 2, 1)).reshape(b, c, hh, ww)
        return x + self.proj_out(h)


class Downsample(nn.Module):
    def __init__(self, ch):
        super().__init__()
        self.conv = nn.Conv2d(ch, ch, 3, stride=2, padding=0)

    def forward(self, x):
        return self.conv(F.pad(x, (0, 1, 0, 1), mode="constant", value=0.0))


class Upsample(nn.Module):
    def __init__(self, ch):
        super().__init__()
        self.conv = nn.Conv2d(ch, ch, 3, padding=1)

    def forward(self, x):
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class DdpmUNet(nn.Module):
    def __init__(self, channels=3, size=32, ch=128, ch_mult=(1, 2, 2, 2), num_res_blocks=2, attn_resolutions=(16,), dropout=0.1):
        super().__init__()
        self.ch = ch
        temb = ch * 4
        self.temb_dense0 = nn.Linear(ch, temb)
        self.temb_dense1 = nn.Linear(temb, temb)
        self.conv_in = nn.Conv2d(channels, ch, 3, padding=1)
        self.down = nn.ModuleList()
        chans = [ch]
        cur, res = ch, size
        for level, mult in enumerate(ch_mult):
            for _ in range(num_res_blocks):
                self.down.append(ResBlock(cur, ch * mult, temb, dropout))
                cur = ch * mult
                if res in attn_resolutions:
                    self.down.append(AttnBlock(cur))
                chans.append(cur)
            if level != len(ch_mult) - 1:
                self.down.append(Downsample(cur))
                res //= 2
                chans.append(cur)
        self.mid = nn.ModuleList([ResBlock(cur, cur, temb, dropout), AttnBlock(cur), ResBlock(cur, cur, temb, dropout)])
        self.up = nn.ModuleList()
        for level, mult in reversed(list(enumerate(ch_mult))):
            for _ in range(num_res_blocks + 1):
                self.up.append(ResBlock(cur + chans.pop(), ch * mult, temb, dropout))
                cur = ch * mult
                if res in attn_resolutions:
                    self.up.append(AttnBlock(cur))
            if level != 0:
                self.up.append(Upsample(cur))
                res *= 2
        self.norm_out = norm(cur)
        self.conv_out = nn.Conv2d(cur, channels, 3, padding=1)

    def forward(self, x, t):
        temb = self.temb_dense1(F.silu(self.temb_dense0(timestep_embedding(t, self.ch))))
        hs = [self.conv_in(x)]
        h = hs[-1]
        for m in self.down:
            if isinstance(m, ResBlock):
                h = m(h, temb)
                hs.append(h)
            elif isinstance(m, AttnBlock):
                h = m(h)
                hs[-1] = h
            else:
                h = m(h)
                hs.append(h)
        for m in self.mid:
            h = m(h, temb) if isinstance(m, ResBlock) else m(h)
        for m in self.up:
            if isinstance(m, ResBlock):
                h = m(torch.cat([h, hs.pop()], dim=1), temb)
            else:
                h = m(h)
        return self.conv_out(F.silu(self.norm_out(h)))


# ---------------------------------------------------------------- diffusers' UNet2DModel block layout

class ResnetBlock2D(nn.Module):
    def __init__(self, cin, cout, temb):
        super().__init__()
        self.norm1 = norm(cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.time_emb_proj = nn.Linear(temb, cout)
        self.norm2 = norm(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.conv_shortcut = nn.Conv2d(cin, cout, 1) if cin != cout else None

    def forward(self, x, temb):
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.time_emb_proj(F.silu(temb))[:, :, None, None]
        h = self.conv2(F.silu(self.norm2(h)))
        if self.conv_shortcut is not None:
            x = self.conv_shortcut(x)
        return (x + h) / 1.0


def heads_attention(q, k, v, heads):
    """softmax(q kᵀ / √d) v over `heads` heads of d = C / heads channels: q [B, N, C], k and v [B, M, C] → [B, N, C]."""
    b, c = q.shape[0], q.shape[-1]
    d = c // heads
    q = q.view(b, -1, heads, d).transpose(1, 2)
    k = k.view(b, -1, heads, d).transpose(1, 2)
    v = v.view(b, -1, heads, d).transpose(1, 2)
    a = torch.softmax(torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(d), dim=-1)
    return torch.matmul(a, v).transpose(1, 2).reshape(b, -1, c)


class Attention(nn.Module):
    """Attention with group norm over the flattened positions, split into heads (diffusers' Attention processor)."""

    def __init__(self, ch, head_dim):
        super().__init__()
        self.heads = max(1, ch // head_dim)
        self.group_norm = norm(ch)
        self.to_q = nn.Linear(ch, ch)
        self.to_k = nn.Linear(ch, ch)
        self.to_v = nn.Linear(ch, ch)
        self.to_out = nn.Linear(ch, ch)

    def forward(self, x):
        b, c, h, w = x.shape
        s = self.group_norm(x).view(b, c, h * w).transpose(1, 2)
        o = heads_attention(self.to_q(s), self.to_k(s), self.to_v(s), self.heads)
        o = self.to_out(o).transpose(-1, -2).reshape(b, c, h, w)
        return o + x


# diffusers' Downsample2D (pad (0, 1, 0, 1), then a 3x3 conv with stride 2) and Upsample2D (nearest x2, then a 3x3 conv) are the
# DDPM blocks above under diffusers' names.
Downsample2D = Downsample
Upsample2D = Upsample


class DiffusersUNet(nn.Module):
    def __init__(self, channels=3, size=32, block_out=(64, 128, 128), layers_per_block=2, attn_levels=(1,), head_dim=32):
        super().__init__()
        self.block0 = block_out[0]
        temb = block_out[0] * 4
        self.time_linear_1 = nn.Linear(block_out[0], temb)
        self.time_linear_2 = nn.Linear(temb, temb)
        self.conv_in = nn.Conv2d(channels, block_out[0], 3, padding=1)
        self.down_blocks = nn.ModuleList()
        skips = [block_out[0]]
        cur = block_out[0]
        for level, out in enumerate(block_out):
            block = nn.ModuleDict({"resnets": nn.ModuleList(), "attentions": nn.ModuleList()})
            for _ in range(layers_per_block):
                block["resnets"].append(ResnetBlock2D(cur, out, temb))
                cur = out
                if level in attn_levels:
                    block["attentions"].append(Attention(cur, head_dim))
                skips.append(cur)
            if level != len(block_out) - 1:
                block["downsamplers"] = Downsample2D(cur)
                skips.append(cur)
            self.down_blocks.append(block)
        self.mid_resnet0 = ResnetBlock2D(cur, cur, temb)
        self.mid_attention = Attention(cur, head_dim)
        self.mid_resnet1 = ResnetBlock2D(cur, cur, temb)
        self.up_blocks = nn.ModuleList()
        for level, out in reversed(list(enumerate(block_out))):
            block = nn.ModuleDict({"resnets": nn.ModuleList(), "attentions": nn.ModuleList()})
            for _ in range(layers_per_block + 1):
                block["resnets"].append(ResnetBlock2D(cur + skips.pop(), out, temb))
                cur = out
                if level in attn_levels:
                    block["attentions"].append(Attention(cur, head_dim))
            if level != 0:
                block["upsamplers"] = Upsample2D(cur)
            self.up_blocks.append(block)
        self.conv_norm_out = norm(cur)
        self.conv_out = nn.Conv2d(cur, channels, 3, padding=1)

    def forward(self, x, t):
        return self.denoise(x, t, None)

    def middle(self, h, temb, context):
        return self.mid_resnet1(self.mid_attention(self.mid_resnet0(h, temb)), temb)

    def denoise(self, x, t, context):
        temb = self.time_linear_2(F.silu(self.time_linear_1(timestep_embedding(t, self.block0))))
        h = self.conv_in(x)
        skips = [h]
        for block in self.down_blocks:
            for i, r in enumerate(block["resnets"]):
                h = r(h, temb)
                if len(block["attentions"]) > 0:
                    h = block["attentions"][i](h)
                skips.append(h)
            if "downsamplers" in block:
                h = block["downsamplers"](h)
                skips.append(h)
        h = self.middle(h, temb, context)
        for block in self.up_blocks:
            for i, r in enumerate(block["resnets"]):
                h = r(torch.cat([h, skips.pop()], dim=1), temb)
                if len(block["attentions"]) > 0:
                    h = block["attentions"][i](h)
            if "upsamplers" in block:
                h = block["upsamplers"](h)
        return self.conv_out(F.silu(self.conv_norm_out(h)))


# ---------------------------------------------------------------- diffusers' UNet2DConditionModel: cross-attention to a caption

# The words of the engine's Fashion-MNIST captions ("a dark sneaker"), token ids 1 … 15 in this order (0 is the padding).
CAPTION_WORDS = ["a", "dark", "light", "t", "shirt", "top", "trouser", "pullover", "dress", "coat", "sandal", "sneaker", "bag", "ankle", "boot"]
CAPTION_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
CAPTION_LENGTH = 5


def caption_tokens(prompt):
    """A prompt's token ids [1, L], padded with 0."""
    ids = [CAPTION_WORDS.index(w) + 1 for w in prompt.lower().split()]
    return torch.tensor([ids + [0] * (CAPTION_LENGTH - len(ids))], dtype=torch.int64)


class CrossAttention(nn.Module):
    """diffusers' Attention with encoder_hidden_states: queries from the group-normed feature map, keys and values from the
    caption (to_q, to_k, to_v without bias, as UNet2DConditionModel's attn2), split into heads, to_out with bias."""

    def __init__(self, ch, context_dim, head_dim):
        super().__init__()
        self.heads = max(1, ch // head_dim)
        self.group_norm = norm(ch)
        self.to_q = nn.Linear(ch, ch, bias=False)
        self.to_k = nn.Linear(context_dim, ch, bias=False)
        self.to_v = nn.Linear(context_dim, ch, bias=False)
        self.to_out = nn.Linear(ch, ch)

    def forward(self, x, context):
        b, c, h, w = x.shape
        s = self.group_norm(x).view(b, c, h * w).transpose(1, 2)
        o = heads_attention(self.to_q(s), self.to_k(context), self.to_v(context), self.heads)
        return self.to_out(o).transpose(-1, -2).reshape(b, c, h, w) + x


class DiffusersTextUNet(DiffusersUNet):
    """The diffusers block layout with a third input, encoder_hidden_states [B, L, D] (a caption encoder's output), read by a
    cross-attention after the middle block's self-attention, as a text-conditioned UNet2DConditionModel takes its prompt."""
    takes_text = True

    def __init__(self, channels, size, block_out, head_dim, context_dim=32):
        super().__init__(channels, size, block_out=block_out, head_dim=head_dim)
        self.mid_cross_attention = CrossAttention(block_out[-1], context_dim, head_dim)

    def middle(self, h, temb, context):
        return self.mid_resnet1(self.mid_cross_attention(self.mid_attention(self.mid_resnet0(h, temb)), context), temb)

    def forward(self, x, t, encoder_hidden_states):
        return self.denoise(x, t, encoder_hidden_states)


class CaptionEncoder(nn.Module):
    """A small text encoder exported as its own graph: token ids [B, L] → [B, L, D] (token and position embeddings, a
    residual GELU MLP, LayerNorm), the shape of a CLIP text model's last_hidden_state."""

    def __init__(self, dim=32):
        super().__init__()
        self.token = nn.Embedding(len(CAPTION_WORDS) + 1, dim)
        self.position = nn.Parameter(0.02 * torch.randn(CAPTION_LENGTH, dim))
        self.fc1 = nn.Linear(dim, dim)
        self.fc2 = nn.Linear(dim, dim)
        self.final_layer_norm = nn.LayerNorm(dim)

    def forward(self, input_ids):
        e = self.token(input_ids) + self.position
        return self.final_layer_norm(e + self.fc2(F.gelu(self.fc1(e))))


# ---------------------------------------------------------------- DiT with adaLN-Zero (Peebles & Xie 2023)

def sincos_2d(dim, grid):
    """The fixed 2-D sin-cos position embedding: half the channels encode the row, half the column."""
    def one_d(d, pos):
        omega = 1.0 / 10000 ** (torch.arange(d // 2, dtype=torch.float64) / (d / 2.0))
        out = pos.reshape(-1)[:, None].double() * omega[None, :]
        return torch.cat([torch.sin(out), torch.cos(out)], dim=1)
    ys, xs = torch.meshgrid(torch.arange(grid), torch.arange(grid), indexing="ij")
    return torch.cat([one_d(dim // 2, ys), one_d(dim // 2, xs)], dim=1).float()


def modulate(x, shift, scale):
    return x * (1 + scale.unsqueeze(1)) + shift.unsqueeze(1)


class DiTAttention(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        b, n, c = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        a = torch.softmax((q @ k.transpose(-2, -1)) * (c // self.heads) ** -0.5, dim=-1)
        return self.proj((a @ v).transpose(1, 2).reshape(b, n, c))


class DiTBlock(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.attn = DiTAttention(dim, heads)
        self.norm2 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.mlp_fc1 = nn.Linear(dim, dim * 4)
        self.mlp_fc2 = nn.Linear(dim * 4, dim)
        self.adaLN_modulation = nn.Linear(dim, dim * 6)

    def forward(self, x, c):
        shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp = self.adaLN_modulation(F.silu(c)).chunk(6, dim=1)
        x = x + gate_msa.unsqueeze(1) * self.attn(modulate(self.norm1(x), shift_msa, scale_msa))
        h = self.mlp_fc2(F.gelu(self.mlp_fc1(modulate(self.norm2(x), shift_mlp, scale_mlp)), approximate="tanh"))
        return x + gate_mlp.unsqueeze(1) * h


class DiT(nn.Module):
    def __init__(self, channels=3, size=32, patch=4, hidden=384, depth=12, heads=6, classes=10, freq=256):
        super().__init__()
        self.channels, self.patch, self.freq = channels, patch, freq
        self.x_embedder = nn.Conv2d(channels, hidden, patch, stride=patch)
        grid = self.grid = size // patch
        self.pos_embed = nn.Parameter(sincos_2d(hidden, grid)[None], requires_grad=False)
        self.t_fc1 = nn.Linear(freq, hidden)
        self.t_fc2 = nn.Linear(hidden, hidden)
        self.y_embedding_table = nn.Embedding(classes + 1, hidden)  # the last row is the null class (guidance)
        self.register_buffer("null_label", torch.tensor([classes], dtype=torch.int64))
        self.blocks = nn.ModuleList([DiTBlock(hidden, heads) for _ in range(depth)])
        self.final_norm = nn.LayerNorm(hidden, elementwise_affine=False, eps=1e-6)
        self.final_adaLN = nn.Linear(hidden, hidden * 2)
        self.final_linear = nn.Linear(hidden, patch * patch * channels)
        # adaLN-Zero initialises the modulations and the output to zero; random weights are used here instead, so that
        # gradients reach every parameter in the checks (a trained model has none of these zeros either).

    def forward(self, x, t):
        return self.denoise(x, t, self.null_label)

    def denoise(self, x, t, y):
        h = self.x_embedder(x).flatten(2).transpose(1, 2) + self.pos_embed
        temb = self.t_fc2(F.silu(self.t_fc1(timestep_embedding(t, self.freq))))
        c = temb + self.y_embedding_table(y)
        for block in self.blocks:
            h = block(h, c)
        shift, scale = self.final_adaLN(F.silu(c)).chunk(2, dim=1)
        h = self.final_linear(modulate(self.final_norm(h), shift, scale))
        b, p, ch, g = h.shape[0], self.patch, self.channels, self.grid
        h = h.reshape(b, g, g, p, p, ch)
        h = torch.einsum("nhwpqc->nchpwq", h)
        return h.reshape(b, ch, g * p, g * p)


class DiTLabel(DiT):
    """The DiT with its class label as an input (int64 [B], 0 … classes − 1, or classes for the null class), as a
    class-conditional DiT is exported: the label's row of the embedding table is added to the time embedding."""
    takes_label = True

    def forward(self, x, t, y):
        return self.denoise(x, t, y)


# ---------------------------------------------------------------- the catalogue

def build(name, width, channels=3, size=32):
    """A model by name at width 'full' (the papers' size) or 'small' (the same layout, narrow: for the tests)."""
    full = width == "full"
    if name == "ddpm_unet":
        return DdpmUNet(channels, size, ch=128 if full else 32, attn_resolutions=(size // 2,))
    if name == "diffusers_unet":
        return DiffusersUNet(channels, size, block_out=(128, 256, 256, 256) if full else (32, 64, 64), head_dim=64 if full else 32)
    if name == "diffusers_text":
        return DiffusersTextUNet(channels, size, block_out=(128, 256, 256, 256) if full else (32, 64, 64), head_dim=64 if full else 32)
    if name in ("dit", "dit_label"):
        kind = DiTLabel if name == "dit_label" else DiT
        return kind(channels, size, patch=4, hidden=384 if full else 64, depth=12 if full else 2, heads=6 if full else 4)
    raise ValueError(f"unknown model '{name}' (ddpm_unet, diffusers_unet, diffusers_text, dit, dit_label)")


MODELS = ["ddpm_unet", "diffusers_unet", "diffusers_text", "dit", "dit_label"]
