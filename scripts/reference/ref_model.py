"""PyTorch reference of the tinyvlm model and of its phase-1 / phase-2 training maths.

This module is the ground truth the C++ engine is tested against (see
tests/fixtures/model/README.md and tests/fixtures/vlm/README.md). It follows the
reference behaviour described in docs/spec.md:

* parameter names are the interchange state_dict names (section 3), including the
  reference layout in which *every* decoder layer owns both a dense SwiGLU block and
  an MoE block, of which it uses one (layer i is MoE when i % 2 == 1);
* the numerics follow the reference order of operations (RMSNorm as
  x / sqrt(sum(x^2)/n + 1e-6) * gamma, scores divided by sqrt(Dh) then by the NoPE
  temperature before masking, MoE output = routed sum + shared expert, ...);
* AdamW, clipping and the learning-rate schedule are written out by hand so that the
  formulas are explicit; scripts/reference/check_ref.py checks them against
  torch.optim.AdamW, torch.nn.utils.clip_grad_norm_ and LambdaLR.

Only torch (and torchvision for the vision tower) are needed.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass, fields
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

IGNORE_INDEX = -100
PAD_ID = 3
EOS_ID = 2


# --------------------------------------------------------------------------- config


@dataclass
class ModelConfig:
    vocab_size: int = 32000
    d_model: int = 768
    n_heads: int = 12
    n_kv_heads: int = 4
    n_layers: int = 12
    max_seq_len: int = 1024
    num_experts: int = 8
    num_experts_per_tok: int = 2
    moe_layer_freq: int = 2  # read but, as in the reference, MoE placement is fixed to odd layers
    d_expert: int = 1024
    d_ff_standard: int = 2048
    rope_layers_ratio: float = 0.75
    rope_theta: float = 10000.0
    chunk_size: int = 512
    batch_size: int = 7

    @property
    def d_head(self) -> int:
        return self.d_model // self.n_heads

    @property
    def rope_period(self) -> int:
        # int() truncation of a double, exactly as the reference computes it.
        return int(1 / (1 - self.rope_layers_ratio))

    def is_moe_layer(self, i: int) -> bool:
        return i % 2 == 1

    def is_nope_layer(self, i: int) -> bool:
        return (i + 1) % self.rope_period == 0

    @classmethod
    def from_dict(cls, d: dict) -> "ModelConfig":
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})

    @classmethod
    def from_toml(cls, path: str | Path) -> "ModelConfig":
        with open(path, "rb") as f:
            return cls.from_dict(tomllib.load(f))


# --------------------------------------------------------------------------- blocks


class RMSNorm(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean_sq = (x * x).sum(dim=-1, keepdim=True) / x.shape[-1]
        return x / torch.sqrt(mean_sq + 1e-6) * self.gamma


class TokenEmbedding(nn.Module):
    """Holds the table as `emb.weight` (state_dict name `emb.emb.weight`)."""

    def __init__(self, vocab_size: int, d_model: int):
        super().__init__()
        self.emb = nn.Embedding(vocab_size, d_model)
        nn.init.normal_(self.emb.weight, mean=0.0, std=d_model**-0.5)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.emb(ids)


def rope_rotate(x: torch.Tensor, theta: float) -> torch.Tensor:
    """Rotate interleaved pairs (2j, 2j+1) of x [B, S, heads, Dh] by angle m * theta^(-2j/Dh).

    The angle is formed in float32 (float32(m) * float32(theta^(-2j/Dh))) whatever x's dtype,
    as the reference does.
    """
    seq, dh = x.shape[1], x.shape[-1]
    exponent = -torch.arange(0, dh, 2, device=x.device).to(torch.float32) / dh
    inv_freq = torch.pow(torch.tensor(float(theta), dtype=torch.float32), exponent)  # [Dh/2]
    pos = torch.arange(seq, device=x.device).to(torch.float32)
    angle = pos[:, None] * inv_freq[None, :]  # [S, Dh/2]
    cos = torch.cos(angle)[None, :, None, :].to(x.dtype)
    sin = torch.sin(angle)[None, :, None, :].to(x.dtype)
    even, odd = x[..., 0::2], x[..., 1::2]
    out = torch.empty_like(x)
    out[..., 0::2] = even * cos - odd * sin
    out[..., 1::2] = even * sin + odd * cos
    return out


def attention_mask(seq: int, chunk_size: int | None, device=None) -> torch.Tensor:
    """Boolean [S, S], True where key n is visible to query m.

    chunk_size None: plain causal (NoPE layers). Otherwise causal and same chunk (RoPE layers).
    """
    m = torch.arange(seq, device=device)[:, None]
    n = torch.arange(seq, device=device)[None, :]
    visible = n <= m
    if chunk_size is not None:
        visible = visible & (m // chunk_size == n // chunk_size)
    return visible


class Attention(nn.Module):
    def __init__(self, cfg: ModelConfig, layer: int):
        super().__init__()
        self.n_heads, self.n_kv_heads, self.d_head = cfg.n_heads, cfg.n_kv_heads, cfg.d_head
        self.nope = cfg.is_nope_layer(layer)
        self.rope_theta, self.chunk_size = cfg.rope_theta, cfg.chunk_size
        d, dh = cfg.d_model, cfg.d_head
        # Creation order matches the reference so that a given seed gives the same init.
        self.q_norm = RMSNorm(dh)
        self.k_norm = RMSNorm(dh)
        self.w_q = nn.Linear(d, cfg.n_heads * dh, bias=False)
        self.w_k = nn.Linear(d, cfg.n_kv_heads * dh, bias=False)
        self.w_v = nn.Linear(d, cfg.n_kv_heads * dh, bias=False)
        self.temp_scale = nn.Parameter(torch.tensor(1.0))  # used by NoPE layers only
        self.proj_out = nn.Linear(d, d, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, s, d = x.shape
        q = self.q_norm(self.w_q(x).view(b, s, self.n_heads, self.d_head))
        k = self.k_norm(self.w_k(x).view(b, s, self.n_kv_heads, self.d_head))
        v = self.w_v(x).view(b, s, self.n_kv_heads, self.d_head)
        if not self.nope:
            q = rope_rotate(q, self.rope_theta)
            k = rope_rotate(k, self.rope_theta)
        # Query head h reads key/value head h // (H / Hkv).
        group = self.n_heads // self.n_kv_heads
        k = k.repeat_interleave(group, dim=2)
        v = v.repeat_interleave(group, dim=2)

        scores = torch.einsum("bqhd,bkhd->bhqk", q, k) / math.sqrt(self.d_head)
        if self.nope:
            scores = scores / (F.softplus(self.temp_scale) + 0.5)
        visible = attention_mask(s, None if self.nope else self.chunk_size, x.device)
        scores = scores.masked_fill(~visible, float("-inf"))
        probs = torch.softmax(scores, dim=-1)
        out = torch.einsum("bhqk,bkhd->bqhd", probs, v).reshape(b, s, d)
        return self.proj_out(out)


class SwiGLU(nn.Module):
    """w_down(silu(w_gate x) * w_up x); used for the dense FFN, the experts and the shared expert."""

    def __init__(self, d_model: int, hidden: int):
        super().__init__()
        self.w_gate = nn.Linear(d_model, hidden, bias=False)
        self.w_up = nn.Linear(d_model, hidden, bias=False)
        self.w_down = nn.Linear(hidden, d_model, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.w_down(F.silu(self.w_gate(x)) * self.w_up(x))


class Router(nn.Module):
    def __init__(self, d_model: int, num_experts: int):
        super().__init__()
        self.w_router = nn.Linear(d_model, num_experts, bias=False)


@dataclass
class Routing:
    probs: torch.Tensor  # [T, E] softmax of the router logits
    top_idx: torch.Tensor  # [T, k] chosen experts, highest probability first
    top_w: torch.Tensor  # [T, k] chosen probabilities renormalised to sum to 1


class MoE(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.num_experts, self.top_k = cfg.num_experts, cfg.num_experts_per_tok
        self.gate = Router(cfg.d_model, cfg.num_experts)
        self.shared_expert = SwiGLU(cfg.d_model, cfg.d_expert)
        self.experts = nn.ModuleList(SwiGLU(cfg.d_model, cfg.d_expert) for _ in range(cfg.num_experts))
        self.last_routing: Routing | None = None  # kept for inspection by the fixture scripts

    def route(self, x: torch.Tensor) -> Routing:
        probs = torch.softmax(self.gate.w_router(x), dim=-1)
        top_p, top_idx = torch.topk(probs, self.top_k, dim=-1)
        return Routing(probs, top_idx, top_p / top_p.sum(dim=-1, keepdim=True))

    def load_balancing_loss(self, r: Routing) -> torch.Tensor:
        """E * sum_e f_e * P_e; f_e (share of (token, slot) assignments) carries no gradient."""
        counts = torch.bincount(r.top_idx.reshape(-1), minlength=self.num_experts).to(r.probs.dtype)
        f = counts / r.top_idx.numel()
        p_mean = r.probs.mean(dim=0)
        return self.num_experts * (f * p_mean).sum()

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        b, s, d = x.shape
        flat = x.reshape(-1, d)
        r = self.route(flat)
        self.last_routing = r
        routed = torch.zeros_like(flat)
        for e, expert in enumerate(self.experts):
            tok, slot = (r.top_idx == e).nonzero(as_tuple=True)
            if tok.numel() == 0:
                continue  # the expert takes no part in this batch (its grads stay None)
            weight = r.top_w[tok, slot].unsqueeze(-1)
            routed = routed.index_add(0, tok, weight * expert(flat[tok]))
        out = routed + self.shared_expert(flat)
        return out.view(b, s, d), self.load_balancing_loss(r)


class FeedForward(nn.Module):
    """Both blocks exist in every layer (reference layout); `is_moe` selects the one in use."""

    def __init__(self, cfg: ModelConfig, layer: int, build_unused: bool = True):
        super().__init__()
        self.is_moe = cfg.is_moe_layer(layer)
        if build_unused or not self.is_moe:
            self.dense_ffn_block = SwiGLU(cfg.d_model, cfg.d_ff_standard)
        if build_unused or self.is_moe:
            self.moe_ffn_block = MoE(cfg)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        if self.is_moe:
            return self.moe_ffn_block(x)
        return self.dense_ffn_block(x), None


class DecoderLayer(nn.Module):
    def __init__(self, cfg: ModelConfig, layer: int, build_unused: bool = True):
        super().__init__()
        self.mha = Attention(cfg, layer)
        self.ffn = FeedForward(cfg, layer, build_unused)
        self.rms_norm1 = RMSNorm(cfg.d_model)
        self.rms_norm2 = RMSNorm(cfg.d_model)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        h = x + self.mha(self.rms_norm1(x))
        f, aux = self.ffn(self.rms_norm2(h))
        return h + f, aux


class Decoder(nn.Module):
    """The text model ("LLM"). forward(ids) -> (logits [B,S,V], aux = sum of MoE balancing losses)."""

    def __init__(self, cfg: ModelConfig, build_unused: bool = True):
        super().__init__()
        self.cfg = cfg
        self.emb = TokenEmbedding(cfg.vocab_size, cfg.d_model)
        self.decoder_layers = nn.ModuleList(DecoderLayer(cfg, i, build_unused) for i in range(cfg.n_layers))
        self.rms_norm = RMSNorm(cfg.d_model)
        self.proj_vocab = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)

    def forward_embeddings(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        aux = h.new_zeros(())
        for layer in self.decoder_layers:
            h, layer_aux = layer(h)
            if layer_aux is not None:
                aux = aux + layer_aux
        return self.proj_vocab(self.rms_norm(h)), aux

    def forward(self, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.forward_embeddings(self.emb(ids))


def used_parameter_names(model: Decoder, prefix: str = "") -> list[str]:
    """Names of the parameters that take part in the computation (state_dict order).

    Excluded: the FFN block a layer does not use and temp_scale of RoPE layers. Experts are
    always listed, although one that receives no token in a batch gets no gradient.
    """
    names = []
    for name, _ in model.named_parameters():
        parts = name.split(".")
        if parts[0] == "decoder_layers":
            i = int(parts[1])
            if parts[2] == "ffn":
                block = parts[3]
                if block == "dense_ffn_block" and model.cfg.is_moe_layer(i):
                    continue
                if block == "moe_ffn_block" and not model.cfg.is_moe_layer(i):
                    continue
            if parts[2:] == ["mha", "temp_scale"] and not model.cfg.is_nope_layer(i):
                continue
        names.append(prefix + name)
    return names


# --------------------------------------------------------------------------- phase-1 loss


def phase1_loss(logits: torch.Tensor, targets: torch.Tensor, aux: torch.Tensor, alpha: float = 0.01):
    """Returns (loss, ce): ce = mean cross-entropy over all B*S positions (targets equal to -100
    are left out of both sum and count, as torch's default does), loss = ce + alpha * aux."""
    ce = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=IGNORE_INDEX)
    return ce + alpha * aux, ce


# --------------------------------------------------------------------------- optimisation


def lr_at(step: int, peak_lr: float, warmup_steps: int, total_steps: int) -> float:
    """Learning rate used by the optimizer update number `step` (0-based).

    step < warmup:  peak * step / warmup           (so the very first update has lr 0)
    otherwise:      peak * (0.1 + 0.9 * (1 + cos(pi * (step - warmup) / (total - warmup))) / 2)
    """
    if step < warmup_steps:
        return peak_lr * (step / warmup_steps)
    progress = (step - warmup_steps) / (total_steps - warmup_steps)
    return peak_lr * (0.1 + 0.9 * (1 + math.cos(math.pi * progress)) / 2)


def schedule_steps(phase: int, epochs: int, batches_per_epoch: int, warmup_steps: int = 0,
                   loader_batches: int = 0) -> tuple[int, int]:
    """(warmup_steps, total_steps) as the reference's training scripts derive them.

    phase 1: total = epochs * batches_per_epoch, warmup = min(2000, total // 10)
    phase 2: total = epochs * (batches_per_epoch if > 0 else 12000), warmup = min(1000, total // 100)
             (the config's vlm_warmup_steps is not read)
    phase 3: total = epochs * (batches_per_epoch if > 0 else 15000), warmup = instruct_warmup_steps
    phase 4: total = epochs * (batches_per_epoch if > 0 else batches in the loader), warmup = dpo_warmup_steps
    """
    if phase == 1:
        total = epochs * batches_per_epoch
        return min(2000, total // 10), total
    if phase == 2:
        total = epochs * (batches_per_epoch if batches_per_epoch > 0 else 12000)
        return min(1000, total // 100), total
    if phase == 3:
        return warmup_steps, epochs * (batches_per_epoch if batches_per_epoch > 0 else 15000)
    if phase == 4:
        return warmup_steps, epochs * (batches_per_epoch if batches_per_epoch > 0 else loader_batches)
    raise ValueError(f"phase must be 1..4, got {phase}")


def clip_grad_norm(params, max_norm: float) -> torch.Tensor:
    """Global L2 norm over all existing gradients; every gradient is then multiplied by
    min(1, max_norm / (norm + 1e-6)). Returns the norm before clipping."""
    grads = [p.grad for p in params if p.grad is not None]
    total = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))
    scale = torch.clamp(max_norm / (total + 1e-6), max=1.0)
    for g in grads:
        g.mul_(scale)
    return total


class AdamW:
    """Decoupled-weight-decay Adam, per parameter:

        step += 1
        p     = p * (1 - lr * wd)
        m     = beta1 * m + (1 - beta1) * g
        v     = beta2 * v + (1 - beta2) * g^2
        p     = p - (lr / (1 - beta1^step)) * m / (sqrt(v) / sqrt(1 - beta2^step) + eps)

    A parameter whose gradient is None (never reached by the loss in this step) is skipped
    entirely: no decay, no moment update, its own step counter does not advance.
    """

    def __init__(self, params, weight_decay: float = 0.1, betas=(0.9, 0.95), eps: float = 1e-8):
        self.params = list(params)
        self.wd, self.beta1, self.beta2, self.eps = weight_decay, betas[0], betas[1], eps
        self.state: dict[int, dict] = {}

    def zero_grad(self):
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self, lr: float):
        for p in self.params:
            if p.grad is None:
                continue
            st = self.state.setdefault(id(p), {"step": 0, "m": torch.zeros_like(p), "v": torch.zeros_like(p)})
            st["step"] += 1
            t, g = st["step"], p.grad
            p.mul_(1 - lr * self.wd)
            st["m"].lerp_(g, 1 - self.beta1)  # = beta1 * m + (1 - beta1) * g
            st["v"].mul_(self.beta2).addcmul_(g, g, value=1 - self.beta2)
            denom = st["v"].sqrt() / math.sqrt(1 - self.beta2**t) + self.eps
            p.addcdiv_(st["m"], denom, value=-(lr / (1 - self.beta1**t)))


@dataclass
class StepResult:
    loss: float
    ce: float
    aux: float
    grad_norm: float  # before clipping
    lr: float


def phase1_train_step(model: Decoder, opt: AdamW, input_ids, targets, lr: float,
                      alpha: float = 0.01, max_norm: float = 1.0) -> StepResult | None:
    """One phase-1 update. Returns None (and changes nothing) when the loss is NaN or infinite;
    the reference then also leaves its learning-rate schedule where it was."""
    opt.zero_grad()
    logits, aux = model(input_ids)
    loss, ce = phase1_loss(logits, targets, aux, alpha)
    if not torch.isfinite(loss):
        opt.zero_grad()
        return None
    loss.backward()
    norm = clip_grad_norm(opt.params, max_norm)
    opt.step(lr)
    return StepResult(loss.item(), ce.item(), aux.item(), norm.item(), lr)


# --------------------------------------------------------------------------- generation


@torch.no_grad()
def greedy_generate(model: Decoder, prompt: torch.Tensor, max_new_tokens: int, eos_id: int | None = EOS_ID):
    """Greedy decoding that re-runs the whole sequence for every new token (no KV cache)."""
    ids = prompt
    for _ in range(max_new_tokens):
        logits, _ = model(ids)
        nxt = logits[:, -1, :].argmax(dim=-1, keepdim=True)
        ids = torch.cat([ids, nxt], dim=1)
        if eos_id is not None and ids.shape[0] == 1 and nxt.item() == eos_id:
            break
    return ids


@torch.no_grad()
def vlm_generate(vlm: "VisionLanguageModel", pixels: torch.Tensor, ids: list[int], max_new_tokens: int,
                 eos_id: int | None = EOS_ID, repetition_penalty: float = 1.0):
    """Greedy answer of a vision-language model the original's way: the whole sequence (tower included)
    recomputed for every new token. ids = [<image>] + prompt ids; the repetition penalty follows
    HuggingFace (positive logits divided, negative multiplied) over the text ids so far (ids[1:]).
    Returns (new ids, the smallest gap between the two best logits over the steps, first-step logits)."""
    ids = list(ids)
    new, gaps, first = [], [], None
    for _ in range(max_new_tokens):
        logits = vlm(pixels, torch.tensor([ids]))[0, -1].double()
        if first is None:
            first = logits.clone()
        if repetition_penalty != 1.0:
            for t in set(ids[1:]):
                logits[t] = logits[t] / repetition_penalty if logits[t] > 0 else logits[t] * repetition_penalty
        top = torch.topk(logits, 2).values
        gaps.append(float(top[0] - top[1]))
        nxt = int(logits.argmax())
        if eos_id is not None and nxt == eos_id:
            break
        ids.append(nxt)
        new.append(nxt)
    return new, min(gaps), first


# --------------------------------------------------------------------------- vision (phase 2)


@dataclass
class VisionConfig:
    image_size: int = 224
    patch_size: int = 16
    num_layers: int = 12
    num_heads: int = 12
    hidden_dim: int = 768
    mlp_dim: int = 3072

    @property
    def num_patches(self) -> int:
        return (self.image_size // self.patch_size) ** 2


def make_torchvision_vit(vcfg: VisionConfig):
    from torchvision.models import VisionTransformer

    return VisionTransformer(image_size=vcfg.image_size, patch_size=vcfg.patch_size, num_layers=vcfg.num_layers,
                             num_heads=vcfg.num_heads, hidden_dim=vcfg.hidden_dim, mlp_dim=vcfg.mlp_dim)


class VisionTower(nn.Module):
    """Frozen ViT pieces taken from a torchvision VisionTransformer plus the trainable projector.

    State_dict names: patch_embed.*, pos_embed, encoder.encoder_layer_{i}.*, norm.*, proj.{0,2}.*
    The class token and its position embedding row are not used.
    """

    def __init__(self, vit, d_model: int):
        super().__init__()
        hidden = vit.hidden_dim
        self.patch_embed = vit.conv_proj
        self.pos_embed = vit.encoder.pos_embedding
        self.encoder = vit.encoder.layers
        self.norm = vit.encoder.ln
        for p in self.parameters():
            p.requires_grad_(False)
        self.proj = nn.Sequential(nn.Linear(hidden, 4 * hidden), nn.GELU(), nn.Linear(4 * hidden, d_model))

    def features(self, pixels: torch.Tensor) -> torch.Tensor:
        """[B,3,H,W] -> [B, num_patches, hidden] (after the final LayerNorm, before the projector)."""
        x = self.patch_embed(pixels).flatten(2).transpose(1, 2)
        x = x + self.pos_embed[:, 1:, :]
        for layer in self.encoder:
            x = layer(x)
        return self.norm(x)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.proj(self.features(pixels))


def expand_vocab_for_image(decoder: Decoder, generator: torch.Generator | None = None) -> int:
    """Append the `<image>` row (id = old vocab size) to the embedding (normal(0, D^-0.5)) and to
    the output projection (normal(0, 0.02)). Returns the `<image>` id."""
    v, d = decoder.cfg.vocab_size, decoder.cfg.d_model
    with torch.no_grad():
        emb_row = torch.randn(d, generator=generator) * d**-0.5
        out_row = torch.randn(d, generator=generator) * 0.02
        new_emb = nn.Embedding(v + 1, d)
        new_emb.weight.copy_(torch.cat([decoder.emb.emb.weight, emb_row[None]], dim=0))
        new_out = nn.Linear(d, v + 1, bias=False)
        new_out.weight.copy_(torch.cat([decoder.proj_vocab.weight, out_row[None]], dim=0))
    decoder.emb.emb = new_emb
    decoder.proj_vocab = new_out
    return v


class VisionLanguageModel(nn.Module):
    """Phase-2 assembly: decoder input = [projected vision tokens] ++ embed(ids[:, 1:]).

    ids[:, 0] is always `<image>` and is dropped; positions count from the first vision token.
    The logit at position (num_patches - 1 + t) predicts ids[:, t + 1].
    """

    def __init__(self, vision_encoder: VisionTower, llm: Decoder):
        super().__init__()
        self.vision_encoder = vision_encoder
        self.llm = llm

    @property
    def num_vision_tokens(self) -> int:
        return self.vision_encoder.pos_embed.shape[1] - 1

    def forward(self, pixels: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        vis = self.vision_encoder(pixels)
        txt = self.llm.emb(ids)[:, 1:, :]
        logits, _ = self.llm.forward_embeddings(torch.cat([vis, txt], dim=1))
        return logits  # no aux loss in phases 2-4


def caption_ids(caption_tokens: list[int], image_id: int, max_seq_len: int) -> list[int]:
    """Phase-2 sample: [<image>] + caption tokens, cut to max_seq_len - 1, + EOS, right-padded
    with <pad> to max_seq_len. (The real pipeline tokenizes "<image> " + caption.)"""
    ids = ([image_id] + list(caption_tokens))[: max_seq_len - 1] + [EOS_ID]
    return ids + [PAD_ID] * (max_seq_len - len(ids))


def phase2_loss(logits: torch.Tensor, ids: torch.Tensor, num_vision_tokens: int) -> torch.Tensor:
    """Mean CE of logits[:, nv-1+t] against ids[:, t+1], t = 0..S-2, `<pad>` targets ignored."""
    s = ids.shape[1]
    pred = logits[:, num_vision_tokens - 1: num_vision_tokens - 1 + s - 1, :]
    target = ids[:, 1:].masked_fill(ids[:, 1:] == PAD_ID, IGNORE_INDEX)
    return F.cross_entropy(pred.reshape(-1, pred.shape[-1]), target.reshape(-1), ignore_index=IGNORE_INDEX)


# --------------------------------------------------------------------------- instruction tuning (phase 3)


def instruct_sample(turns: list[tuple[bool, list[int]]], image_id: int, max_seq_len: int,
                    pad_id: int = PAD_ID) -> tuple[list[int], list[int], int]:
    """The original's VisionInstructionDataset._process_sample on already tokenized turns
    (is_user, tokens of f" {USER|ASSISTANT}: {message}"): [<image>] + turns + [EOS]; labels are the
    assistant tokens and the EOS, everything else IGNORE_INDEX; cut to max_seq_len, right-padded
    with pad_id (labels IGNORE_INDEX). Returns (input_ids, labels, unpadded length)."""
    ids, labels = [image_id], [IGNORE_INDEX]
    for is_user, toks in turns:
        ids.extend(toks)
        labels.extend([IGNORE_INDEX] * len(toks) if is_user else toks)
    ids.append(EOS_ID)
    labels.append(EOS_ID)
    ids, labels = ids[:max_seq_len], labels[:max_seq_len]
    n = len(ids)
    return ids + [pad_id] * (max_seq_len - n), labels + [IGNORE_INDEX] * (max_seq_len - n), n


def phase3_loss(logits: torch.Tensor, labels: torch.Tensor, num_vision_tokens: int) -> torch.Tensor:
    """The original's compute_loss (visual_instruction_tuning/run.py) with 196 vision tokens generalised:
    mean CE of logits[:, nv-1+t] against labels[:, t+1] over the labels that are not IGNORE_INDEX."""
    s = labels.shape[1]
    pred = logits[:, num_vision_tokens - 1: num_vision_tokens - 1 + s - 1, :]
    target = labels[:, 1:]
    return F.cross_entropy(pred.reshape(-1, pred.shape[-1]), target.reshape(-1), ignore_index=IGNORE_INDEX)


# --------------------------------------------------------------------------- preference tuning (phase 4)


def dpo_sample(prompt_tokens: list[int], response_tokens: list[int], image_id: int, max_seq_len: int,
               pad_id: int = PAD_ID) -> tuple[list[int], list[int], int]:
    """The original's DPODataset._process_sample (preference_tuning/dataset.py) on already tokenized text
    (prompt = encode(" USER: " + q + " ASSISTANT:"), response = encode(" " + answer)): [<image>] + prompt +
    response, labels IGNORE_INDEX over <image> and the prompt; both cut to max_seq_len - 1, then EOS appended
    (labelled); right-padded with pad_id (labels IGNORE_INDEX). Returns (ids, labels, unpadded length)."""
    ids = [image_id] + list(prompt_tokens) + list(response_tokens)
    prompt_len = 1 + len(prompt_tokens)
    labels = [IGNORE_INDEX] * prompt_len + ids[prompt_len:]
    ids, labels = ids[: max_seq_len - 1] + [EOS_ID], labels[: max_seq_len - 1] + [EOS_ID]
    n = len(ids)
    return ids + [pad_id] * (max_seq_len - n), labels + [IGNORE_INDEX] * (max_seq_len - n), n


def sequence_logps(logits: torch.Tensor, labels: torch.Tensor, num_vision_tokens: int) -> torch.Tensor:
    """The original's compute_log_probs (preference_tuning/run.py) with its 195 = 196 - 1 generalised:
    logits[:, nv-1+t] predicts labels[:, t+1]; the log-probabilities of the labelled targets, summed per row."""
    s = labels.shape[1]
    shift_logits = logits[:, num_vision_tokens - 1: num_vision_tokens - 1 + s - 1, :]
    shift_labels = labels[:, 1:]
    log_softmax = F.log_softmax(shift_logits, dim=-1)
    mask = shift_labels != IGNORE_INDEX
    safe = shift_labels.masked_fill(~mask, 0)
    token_logps = log_softmax.gather(-1, safe.unsqueeze(-1)).squeeze(-1) * mask.to(log_softmax.dtype)
    return token_logps.sum(-1)


def dpo_loss(pc: torch.Tensor, pr: torch.Tensor, rc: torch.Tensor, rr: torch.Tensor, beta: float,
             kind: str = "sigmoid") -> tuple[torch.Tensor, dict]:
    """Mean over the pairs. h = (pc - rc) - (pr - rr). sigmoid: the original's -logsigmoid(beta * h);
    ipo: (h - 1 / (2 beta))^2 (on summed log-probs); hinge: relu(1 - beta * h). Metrics as the original:
    accuracy (beta * h > 0), chosen / rejected rewards (beta * log-ratio, means) and their margin."""
    h = (pc - rc) - (pr - rr)
    if kind == "sigmoid":
        losses = -F.logsigmoid(beta * h)
    elif kind == "ipo":
        losses = (h - 1 / (2 * beta)) ** 2
    elif kind == "hinge":
        losses = torch.relu(1 - beta * h)
    else:
        raise ValueError(kind)
    chosen_reward = beta * (pc - rc).detach().mean()
    rejected_reward = beta * (pr - rr).detach().mean()
    metrics = {"accuracy": (beta * h > 0).float().mean().item(), "chosen_reward": chosen_reward.item(),
               "rejected_reward": rejected_reward.item(), "margin": (chosen_reward - rejected_reward).item()}
    return losses.mean(), metrics
