#!/usr/bin/env python3
"""Independent checks of ref_model.py and of the committed fixtures.

    python3 scripts/reference/check_ref.py [--original DIR]

1. the fixtures' stored values equal a float64 recomputation from the stored parameters;
2. autograd gradients (float64) equal central finite differences on chosen entries
   (NoPE temperature, router, experts, norms, embedding, projector);
3. the hand-written AdamW / clipping / schedule of ref_model equal torch.optim.AdamW,
   torch.nn.utils.clip_grad_norm_ and LambdaLR driven as the reference training loop does;
4. the load-balancing loss is exactly 1.0 under a uniform router;
5. the tiny ViT recomputed with plain tensor ops from the torchvision-named weights equals the
   torchvision modules, and the phase-2 loss written the reference's way (full-length labels,
   vision positions ignored, logits[:, :-1] against labels[:, 1:]) equals ref_model.phase2_loss;
6. with --original DIR (a checkout of the reference PyTorch project): its Llama gives the same
   logits, aux loss and gradients as ref_model.Decoder on the fixture.
Exits non-zero on the first failure.
"""

from __future__ import annotations

import argparse
import importlib.util
import math
import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors import safe_open
from safetensors.torch import load_file

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(Path(__file__).resolve().parent))
import ref_model as R  # noqa: E402

FIX = ROOT / "tests" / "fixtures"


def close(name, got, want, atol, rtol=0.0):
    got, want = torch.as_tensor(got, dtype=torch.float64), torch.as_tensor(want, dtype=torch.float64)
    err = (got - want).abs().max().item() if got.numel() else 0.0
    tol = atol + rtol * want.abs().max().item()
    status = "ok " if err <= tol else "FAIL"
    print(f"  [{status}] {name}: max abs err {err:.3e} (tol {tol:.1e})")
    if err > tol:
        sys.exit(1)


def load_decoder(params: dict, dtype=torch.float32) -> R.Decoder:
    cfg = R.ModelConfig.from_toml(FIX / "model" / "tiny_config.toml")
    model = R.Decoder(cfg)
    model.load_state_dict(params)
    return model.to(dtype)


def check_step_fixture():
    print("1. tiny_step recomputed in float64")
    params = load_file(FIX / "model" / "tiny_params.safetensors")
    step = load_file(FIX / "model" / "tiny_step.safetensors")
    model = load_decoder(params, torch.float64)
    ids, tg = step["input_ids"].long(), step["targets"].long()
    logits, aux = model(ids)
    loss, ce = R.phase1_loss(logits, tg, aux, 0.01)
    loss.backward()
    close("logits", logits.detach(), step["logits"], 2e-5)
    close("ce", ce.detach(), step["ce"], 2e-6)
    close("aux", aux.detach(), step["aux"], 2e-6)
    close("loss", loss.detach(), step["loss"], 2e-6)
    close("loss = ce + 0.01 aux", step["ce"] + 0.01 * step["aux"], step["loss"], 1e-6)
    ce_ign = F.cross_entropy(logits.detach().reshape(-1, logits.shape[-1]), step["targets_ignore"].long().reshape(-1))
    close("ce_ignore", ce_ign, step["ce_ignore"], 2e-6)
    worst = max(((p.grad - step[f"grad.{n}"].double()).abs().max().item(), n)
                for n, p in model.named_parameters() if p.grad is not None)
    close(f"all gradients (worst: {worst[1]})", worst[0], 0.0, 2e-6)
    moe_layers = [i for i in range(model.cfg.n_layers) if model.cfg.is_moe_layer(i)]
    for i in moe_layers:
        r = model.decoder_layers[i].ffn.moe_ffn_block.last_routing
        assert torch.equal(r.top_idx, step[f"moe.{i}.top_idx"].long()), f"routing of layer {i}"
        close(f"moe.{i}.probs", r.probs.detach(), step[f"moe.{i}.probs"], 2e-6)
        close(f"moe.{i}.top_w", r.top_w.detach(), step[f"moe.{i}.top_w"], 2e-6)
    close("aux = sum of moe.{i}.aux", sum(step[f"moe.{i}.aux"] for i in moe_layers), step["aux"], 1e-6)
    h = step["hidden.emb"].double()
    for i, layer in enumerate(model.decoder_layers):
        h_next, _ = layer(h)
        close(f"hidden.{i} from stored hidden.{i - 1 if i else 'emb'}", h_next.detach(), step[f"hidden.{i}"], 1e-5)
        h = step[f"hidden.{i}"].double()
    names = {k[5:] for k in step if k.startswith("grad.")}
    assert names == set(R.used_parameter_names(model)), "gradient key set"
    return model, params, step


def check_finite_differences(params, step):
    print("2. autograd vs central finite differences (float64, h = 1e-6)")
    model = load_decoder(params, torch.float64)
    ids, tg = step["input_ids"].long(), step["targets"].long()

    def loss_fn():
        logits, aux = model(ids)
        return R.phase1_loss(logits, tg, aux, 0.01)[0]

    loss_fn().backward()
    named = dict(model.named_parameters())
    probes = [
        ("decoder_layers.3.mha.temp_scale", ()),
        ("decoder_layers.1.ffn.moe_ffn_block.gate.w_router.weight", (2, 5)),
        ("decoder_layers.3.ffn.moe_ffn_block.gate.w_router.weight", (0, 31)),
        ("decoder_layers.3.ffn.moe_ffn_block.experts.2.w_up.weight", (7, 3)),
        ("decoder_layers.1.ffn.moe_ffn_block.shared_expert.w_down.weight", (4, 11)),
        ("decoder_layers.0.mha.q_norm.gamma", (5,)),
        ("decoder_layers.2.mha.k_norm.gamma", (1,)),
        ("decoder_layers.0.mha.w_k.weight", (9, 17)),
        ("decoder_layers.2.ffn.dense_ffn_block.w_gate.weight", (39, 0)),
        ("decoder_layers.3.rms_norm2.gamma", (12,)),
        ("rms_norm.gamma", (3,)),
        ("emb.emb.weight", (int(ids[0, 4]), 6)),
        ("proj_vocab.weight", (int(tg[1, 2]), 20)),
    ]
    h = 1e-6
    with torch.no_grad():
        for name, idx in probes:
            p = named[name]
            orig = p[idx].item()
            p[idx] = orig + h
            up = loss_fn().item()
            p[idx] = orig - h
            down = loss_fn().item()
            p[idx] = orig
            fd = (up - down) / (2 * h)
            close(f"d loss / d {name}{list(idx)} = {fd:+.6f}", p.grad[idx], fd, 1e-7, 1e-6)


def check_training():
    print("3. 10 steps: ref_model AdamW/clip/schedule vs torch.optim + LambdaLR (reference loop)")
    params = load_file(FIX / "model" / "tiny_params.safetensors")
    train = load_file(FIX / "model" / "tiny_train.safetensors")
    with safe_open(FIX / "model" / "tiny_train.safetensors", "pt") as f:
        meta = f.metadata()
    peak, warm, total = float(meta["peak_lr"]), int(meta["warmup_steps"]), int(meta["total_steps"])
    wd, max_norm, alpha = float(meta["weight_decay"]), float(meta["max_grad_norm"]), float(meta["aux_loss_alpha"])
    steps = int(meta["steps"])

    # The stored batches are windows of the stored stream.
    stream, s = train["stream"].long(), train["input_ids"].shape[-1]
    b = train["input_ids"].shape[1]
    for w in range(steps * b):
        assert torch.equal(train["input_ids"][w // b, w % b].long(), stream[w * s: w * s + s])
        assert torch.equal(train["targets"][w // b, w % b].long(), stream[w * s + 1: w * s + s + 1])
    print("  [ok ] batches are windows of length S+1, stride S, of `stream`")

    model = load_decoder(params)
    opt = torch.optim.AdamW(model.parameters(), lr=peak, weight_decay=wd, betas=(0.9, 0.95))

    def lam(step):
        if step < warm:
            return step / warm
        return 0.1 + 0.9 * (1 + math.cos(math.pi * (step - warm) / (total - warm))) / 2

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lam)
    losses, norms, lrs = [], [], []
    for k in range(steps):
        opt.zero_grad()
        logits, aux = model(train["input_ids"][k].long())
        ce = F.cross_entropy(logits.view(-1, logits.shape[-1]), train["targets"][k].long().view(-1))
        loss = ce + alpha * aux
        loss.backward()
        norms.append(torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm).item())
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
        losses.append(loss.item())
    close("lr per step (LambdaLR vs stored)", torch.tensor(lrs, dtype=torch.float64), train["lr"], 1e-15)
    close("lr per step (ref_model.lr_at vs stored)",
          torch.tensor([R.lr_at(k, peak, warm, total) for k in range(steps)], dtype=torch.float64), train["lr"], 1e-15)
    close("losses", torch.tensor(losses), train["loss"], 2e-5)
    close("pre-clip grad norms", torch.tensor(norms), train["grad_norm"], 2e-5)
    named = dict(model.named_parameters())
    worst = max((named[k[6:]].detach() - v).abs().max().item() for k, v in train.items() if k.startswith("param."))
    close("final parameters (all used)", worst, 0.0, 2e-5)
    print(f"  clipped steps: {[k for k, n in enumerate(norms) if n > max_norm]}")

    # The same run in float64 with the hand-written optimizer: how far fp32 rounding carries.
    model = load_decoder(params, torch.float64)
    opt = R.AdamW(model.parameters(), weight_decay=wd)
    res = [R.phase1_train_step(model, opt, train["input_ids"][k].long(), train["targets"][k].long(),
                               train["lr"][k].item(), alpha, max_norm) for k in range(steps)]
    close("float64 run: losses", torch.tensor([r.loss for r in res]), train["loss"], 5e-6)
    close("float64 run: grad norms", torch.tensor([r.grad_norm for r in res]), train["grad_norm"], 5e-6)
    named = dict(model.named_parameters())
    worst = max((named[k[6:]].detach() - v.double()).abs().max().item()
                for k, v in train.items() if k.startswith("param."))
    close("float64 run: final parameters", worst, 0.0, 5e-6)


def check_aux():
    print("4. load-balancing loss")
    cfg = R.ModelConfig.from_toml(FIX / "model" / "tiny_config.toml")
    moe = R.MoE(cfg)
    with torch.no_grad():
        moe.gate.w_router.weight.zero_()
    _, aux = moe(torch.randn(2, 13, cfg.d_model))
    close("uniform router -> aux == 1", aux, 1.0, 1e-6)
    # Perfectly balanced assignment with uniform mean probabilities also gives exactly 1.
    r = R.Routing(torch.full((4, 4), 0.25), torch.tensor([[0, 1], [2, 3], [1, 0], [3, 2]]), torch.full((4, 2), 0.5))
    close("balanced routing -> aux == 1", moe.load_balancing_loss(r), 1.0, 1e-6)


def manual_vit(sd: dict, pixels: torch.Tensor, heads: int, patch: int) -> torch.Tensor:
    """Plain-ops ViT from torchvision names: conv, + pos[1:], pre-norm blocks, final LN."""
    x = F.conv2d(pixels, sd["conv_proj.weight"], sd["conv_proj.bias"], stride=patch)
    x = x.flatten(2).transpose(1, 2) + sd["encoder.pos_embedding"][:, 1:, :]
    d = x.shape[-1]
    i = 0
    while f"encoder.layers.encoder_layer_{i}.ln_1.weight" in sd:
        p = f"encoder.layers.encoder_layer_{i}."
        y = F.layer_norm(x, (d,), sd[p + "ln_1.weight"], sd[p + "ln_1.bias"], eps=1e-6)
        qkv = y @ sd[p + "self_attention.in_proj_weight"].T + sd[p + "self_attention.in_proj_bias"]
        q, k, v = (t.unflatten(-1, (heads, d // heads)).transpose(1, 2) for t in qkv.split(d, dim=-1))
        att = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(d // heads), dim=-1)
        y = (att @ v).transpose(1, 2).flatten(2)
        x = x + y @ sd[p + "self_attention.out_proj.weight"].T + sd[p + "self_attention.out_proj.bias"]
        y = F.layer_norm(x, (d,), sd[p + "ln_2.weight"], sd[p + "ln_2.bias"], eps=1e-6)
        y = F.gelu(y @ sd[p + "mlp.0.weight"].T + sd[p + "mlp.0.bias"])
        x = x + y @ sd[p + "mlp.3.weight"].T + sd[p + "mlp.3.bias"]
        i += 1
    return F.layer_norm(x, (d,), sd["encoder.ln.weight"], sd["encoder.ln.bias"], eps=1e-6)


def check_vlm():
    print("5. tiny VLM")
    d = FIX / "vlm"
    vit = {k: v.double() for k, v in load_file(d / "vit_torchvision.safetensors").items()}
    vlm_sd = load_file(d / "vlm_params.safetensors")
    step = load_file(d / "vlm_step.safetensors")
    pixels = step["pixels"].double()
    feats = manual_vit(vit, pixels, heads=2, patch=16)
    close("features (plain ops from torchvision names)", feats, step["features"], 2e-5)

    mapping = {"patch_embed.weight": "conv_proj.weight", "patch_embed.bias": "conv_proj.bias",
               "pos_embed": "encoder.pos_embedding", "norm.weight": "encoder.ln.weight", "norm.bias": "encoder.ln.bias"}
    for k, v in vlm_sd.items():
        if k.startswith("vision_encoder.") and not k.startswith("vision_encoder.proj."):
            short = k[len("vision_encoder."):]
            tv = mapping.get(short, "encoder.layers." + short[len("encoder."):])
            assert torch.equal(v.double(), vit[tv]), k
    print("  [ok ] vision_encoder.* equals the torchvision tensors under the documented mapping")

    p = {k: v.double().requires_grad_(k.startswith("vision_encoder.proj.") or k.startswith("llm."))
         for k, v in vlm_sd.items()}
    tokens = F.gelu(feats @ p["vision_encoder.proj.0.weight"].T + p["vision_encoder.proj.0.bias"])
    tokens = tokens @ p["vision_encoder.proj.2.weight"].T + p["vision_encoder.proj.2.bias"]
    close("vision_tokens", tokens.detach(), step["vision_tokens"], 2e-5)

    cfg = R.ModelConfig.from_toml(FIX / "model" / "tiny_config.toml")
    cfg.vocab_size += 1
    llm = R.Decoder(cfg).double()
    llm.load_state_dict({k[4:]: v.detach() for k, v in p.items() if k.startswith("llm.")})
    ids = step["input_ids"].long()
    emb = llm.emb(ids)
    logits, _ = llm.forward_embeddings(torch.cat([tokens, emb[:, 1:]], dim=1))
    close("logits", logits.detach(), step["logits"], 2e-5)
    R.phase2_loss(logits, ids, tokens.shape[1]).backward()
    grads = {k: v.grad for k, v in p.items() if k.startswith("vision_encoder.proj.")}
    grads.update({f"llm.{n}": q.grad for n, q in llm.named_parameters() if q.grad is not None})
    assert set(grads) == {k[5:] for k in step if k.startswith("grad.")}, "vlm gradient key set"
    worst = max(((g - step[f"grad.{n}"].double()).abs().max().item(), n) for n, g in grads.items())
    close(f"all gradients, float64 recomputation (worst: {worst[1]})", worst[0], 0.0, 2e-6)

    # The reference's phase-2 loss: labels over the whole sequence, vision positions ignored,
    # pad ignored, logits[:, :-1] against labels[:, 1:].
    nv = tokens.shape[1]
    labels = torch.full(logits.shape[:2], -100, dtype=torch.long)
    labels[:, nv:] = ids[:, 1:]
    labels[labels == R.PAD_ID] = -100
    ref_loss = F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), labels[:, 1:].reshape(-1))
    close("phase-2 loss, reference formulation", ref_loss.detach(), step["loss"], 2e-6)
    close("phase-2 loss, ref_model.phase2_loss", R.phase2_loss(logits, ids, nv).detach(), step["loss"], 2e-6)
    lab = step["labels"].long()
    assert torch.equal(lab[:, 1:], labels[:, nv:]) and (lab[:, 0] == -100).all()
    print("  [ok ] stored labels = ids with <pad> (and position 0) -> -100")


def check_original(orig_dir: Path, params, step):
    print("6. reference project's own model code")
    spec = importlib.util.spec_from_file_location("orig_llama", orig_dir / "text_pretraining" / "model.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    cfg = R.ModelConfig.from_toml(FIX / "model" / "tiny_config.toml")
    orig = mod.Llama(vocab_size=cfg.vocab_size, n_layers=cfg.n_layers, d_model=cfg.d_model, d_head=cfg.d_head,
                     n_heads=cfg.n_heads, n_kv_heads=cfg.n_kv_heads, kv_d_head=cfg.d_model // cfg.n_kv_heads,
                     d_ff_standard=cfg.d_ff_standard, num_experts=cfg.num_experts,
                     num_experts_per_tok=cfg.num_experts_per_tok, d_expert=cfg.d_expert,
                     rope_layers_ratio=cfg.rope_layers_ratio, chunk_size=cfg.chunk_size, rope_theta=cfg.rope_theta)
    orig.load_state_dict(params)
    ids, tg = step["input_ids"].long(), step["targets"].long()
    logits = orig(ids)
    loss = F.cross_entropy(logits.view(-1, cfg.vocab_size), tg.view(-1)) + 0.01 * orig.aux_loss
    loss.backward()
    close("logits", logits.detach(), step["logits"], 1e-6)
    close("aux", orig.aux_loss.detach(), step["aux"], 1e-6)
    got = {n: p.grad for n, p in orig.named_parameters() if p.grad is not None}
    assert set(got) == {k[5:] for k in step if k.startswith("grad.")}, "gradient key set"
    worst = max((got[n] - step[f"grad.{n}"]).abs().max().item() for n in got)
    close("all gradients", worst, 0.0, 1e-6)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--original", type=Path, help="checkout of the reference PyTorch project")
    args = ap.parse_args()
    torch.set_num_threads(1)
    _, params, step = check_step_fixture()
    check_finite_differences(params, step)
    check_training()
    check_aux()
    check_vlm()
    if args.original:
        check_original(args.original, params, step)
    print("all checks passed")


if __name__ == "__main__":
    main()
