#!/usr/bin/env python3
"""Peer benchmark: phase-4 (DPO) training speed and peak memory of the PyTorch reference.

    python3 scripts/bench/dpo_peer.py [--steps 3] [--warmup 1] [--threads 2] [--batch 4] [--precomputed]

The model of `tinyvlm bench dpo`: the decoder of the phase-1 benchmark (d_model 256, 4 layers, 8 heads / 4 KV
heads, 8 experts top-2, vocab 8192 + <image>, chunk 64) behind the projector Linear(768, 3072) + GELU +
Linear(3072, 256) with a ViT-B/16 tower held (frozen, not run: 196 random feature tokens stand in for its
cached output), as policy and, unless --precomputed, as a frozen reference copy. Pairs from the same length
formula as tinyvlm's; each sequence is <image> + prompt + response + EOS, padded to the longest of the batch.
Each step as the original's train_epoch (preference_tuning/run.py): zero_grad, policy forward on the chosen
and on the rejected batch, reference forwards under no_grad (or precomputed log-probs), the original's
compute_log_probs and DPO loss (beta 0.1), backward, clip_grad_norm_(1.0), torch.optim.AdamW (betas
0.9/0.95, wd 0.01). Prints one JSON object; peak_rss_mib is the process's maximum resident set size.
"""

from __future__ import annotations

import argparse
import copy
import json
import resource
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
P, HIDDEN = 196, 768


def prompt_len(k: int) -> int:
    return 12 + (k * 31) % 40


def response_len(k: int, which: int) -> int:
    return 8 + (k * 7919 + which * 104729) % 150


class Policy(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        vcfg = R.VisionConfig()  # ViT-B/16
        self.tower = R.make_torchvision_vit(vcfg)
        for p in self.tower.parameters():
            p.requires_grad_(False)
        self.llm = R.Decoder(cfg)
        self.image_id = R.expand_vocab_for_image(self.llm)
        self.proj = nn.Sequential(nn.Linear(HIDDEN, 4 * HIDDEN), nn.GELU(), nn.Linear(4 * HIDDEN, cfg.d_model))

    def forward(self, feats, ids):
        x = torch.cat([self.proj(feats), self.llm.emb(ids)[:, 1:, :]], dim=1)
        return self.llm.forward_embeddings(x)[0]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--precomputed", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    cfg = R.ModelConfig.from_dict(BENCH_CONFIG)
    policy = Policy(cfg)
    ref = None
    if not args.precomputed:
        ref = copy.deepcopy(policy)
        for p in ref.parameters():
            p.requires_grad_(False)
    params = [p for p in policy.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=5e-6, weight_decay=0.01, betas=(0.9, 0.95))
    g = torch.Generator().manual_seed(1)
    B = args.batch
    t_total = pairs = tokens = 0.0
    for i in range(args.warmup + args.steps):
        S = max(1 + prompt_len(i * B + b) + response_len(i * B + b, w) + 1 for b in range(B) for w in (0, 1))
        ids = torch.full((2, B, S), R.PAD_ID, dtype=torch.long)
        labels = torch.full((2, B, S), R.IGNORE_INDEX, dtype=torch.long)
        tok = 0
        for w in (0, 1):
            for b in range(B):
                k = i * B + b
                lp = 1 + prompt_len(k)
                n = lp + response_len(k, w) + 1
                ids[w, b, 0] = policy.image_id
                ids[w, b, 1:n - 1] = torch.randint(4, cfg.vocab_size, (n - 2,), generator=g)
                ids[w, b, n - 1] = R.EOS_ID
                labels[w, b, lp:n] = ids[w, b, lp:n]
                tok += P + n - 1
        feats = torch.randn(B, P, HIDDEN, generator=g)
        t0 = time.perf_counter()
        opt.zero_grad()
        pc = R.sequence_logps(policy(feats, ids[0]), labels[0], P)
        pr = R.sequence_logps(policy(feats, ids[1]), labels[1], P)
        if ref is not None:
            with torch.no_grad():
                rc = R.sequence_logps(ref(feats, ids[0]), labels[0], P)
                rr = R.sequence_logps(ref(feats, ids[1]), labels[1], P)
        else:
            rc = torch.tensor([-3.0 * response_len(i * B + b, 0) for b in range(B)])
            rr = torch.tensor([-3.0 * response_len(i * B + b, 1) for b in range(B)])
        loss, _ = R.dpo_loss(pc, pr, rc, rr, 0.1)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        dt = time.perf_counter() - t0
        if i >= args.warmup:
            t_total += dt
            pairs += B
            tokens += tok
    print(json.dumps({"impl": "pytorch-reference", "threads": args.threads,
                      "reference": "precomputed" if args.precomputed else "live", "steps": args.steps, "batch": B,
                      "step_ms": 1000 * t_total / args.steps, "pairs_per_s": pairs / t_total,
                      "tokens_per_s": tokens / t_total,
                      "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
                      "torch": torch.__version__}))


if __name__ == "__main__":
    main()
