#!/usr/bin/env python3
"""Peer benchmark: phase-3 training speed of the PyTorch reference.

    python3 scripts/bench/instruct_peer.py [--steps 3] [--warmup 1] [--threads 2] [--batch 8] [--pad-to-max]

The model of `tinyvlm bench instruct`: the decoder of the phase-1 benchmark (d_model 256, 4 layers,
8 heads / 4 KV heads, 8 experts top-2, vocab 8192 + <image>, chunk 64) behind the projector
Linear(768, 3072) + GELU + Linear(3072, 256), fed 196 frozen ViT-B/16 feature tokens (random, as the
tower is frozen and its features come from a cache). Batches as tinyvlm builds them (same length and
label formula), padded to the longest conversation of the batch, or with --pad-to-max to 512 as the
original's dataset pads. Each step: zero_grad, forward, the original's compute_loss (mean CE over the
labelled tokens), backward, clip_grad_norm_(1.0), torch.optim.AdamW (betas 0.9/0.95, wd 0.01).
Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts" / "reference"))
import ref_model as R  # noqa: E402

BENCH_CONFIG = dict(vocab_size=8192, d_model=256, n_heads=8, n_kv_heads=4, n_layers=4, max_seq_len=1024,
                    num_experts=8, num_experts_per_tok=2, d_expert=256, d_ff_standard=512,
                    rope_layers_ratio=0.75, rope_theta=10000.0, chunk_size=64, batch_size=8)
P, HIDDEN, MAX_SEQ = 196, 768, 512


def bench_length(k: int) -> int:
    return 32 + (k * 7919) % 224


def bench_labelled(t: int, n: int) -> bool:
    return t == n - 1 or (t // 20) % 2 == 1


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--pad-to-max", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    cfg = R.ModelConfig.from_dict(BENCH_CONFIG)
    llm = R.Decoder(cfg)
    image_id = R.expand_vocab_for_image(llm)
    proj = nn.Sequential(nn.Linear(HIDDEN, 4 * HIDDEN), nn.GELU(), nn.Linear(4 * HIDDEN, cfg.d_model))
    params = list(proj.parameters()) + list(llm.parameters())
    opt = torch.optim.AdamW(params, lr=2e-5, weight_decay=0.01, betas=(0.9, 0.95))
    g = torch.Generator().manual_seed(1)
    B = args.batch
    t_total = labelled = real = 0.0
    for i in range(args.warmup + args.steps):
        lens = [bench_length(i * B + b) for b in range(B)]
        S = MAX_SEQ if args.pad_to_max else max(lens)
        ids = torch.full((B, S), R.PAD_ID, dtype=torch.long)
        labels = torch.full((B, S), R.IGNORE_INDEX, dtype=torch.long)
        for b, n in enumerate(lens):
            ids[b, 0] = image_id
            ids[b, 1:n] = torch.randint(4, cfg.vocab_size, (n - 1,), generator=g)
            for t in range(1, n):
                if bench_labelled(t, n):
                    labels[b, t] = ids[b, t]
        feats = torch.randn(B, P, HIDDEN, generator=g)
        t0 = time.perf_counter()
        opt.zero_grad()
        x = torch.cat([proj(feats), llm.emb(ids)[:, 1:, :]], dim=1)
        logits, _ = llm.forward_embeddings(x)
        loss = R.phase3_loss(logits, labels, P)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        dt = time.perf_counter() - t0
        if i >= args.warmup:
            t_total += dt
            labelled += float((labels != R.IGNORE_INDEX).sum())
            real += sum(P + n - 1 for n in lens)
    print(json.dumps({"impl": "pytorch-reference", "threads": args.threads,
                      "padding": "max" if args.pad_to_max else "batch", "steps": args.steps, "batch": B,
                      "step_ms": 1000 * t_total / args.steps, "labelled_tokens_per_s": labelled / t_total,
                      "tokens_per_s": real / t_total, "torch": torch.__version__}))


if __name__ == "__main__":
    main()
