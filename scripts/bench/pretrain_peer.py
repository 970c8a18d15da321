#!/usr/bin/env python3
"""Peer benchmark: phase-1 training and no-cache generation speed of the PyTorch reference.

    python3 scripts/bench/pretrain_peer.py [--steps 5] [--threads 2]

Model (scripts/reference/ref_model.py, reference layout with both FFN blocks per layer):
d_model 256, 4 layers, 8 heads / 4 KV heads, 8 experts top-2, d_expert 256, d_ff 512,
vocab 8192, chunk 64; batch 8 x 256 tokens, fp32 on the CPU.

Training: each step is zero_grad, forward, CE + 0.01 * aux, backward, global-norm clipping
(1.0) and torch.optim.AdamW (betas 0.9/0.95, wd 0.1), as the reference loop does. After
--warmup untimed steps, --steps steps are timed. Generation: greedy, batch 1, a 16-token
prompt and 64 new tokens, re-running the whole sequence for every token (no KV cache).
Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts" / "reference"))
import ref_model as R  # noqa: E402

BENCH_CONFIG = dict(vocab_size=8192, d_model=256, n_heads=8, n_kv_heads=4, n_layers=4, max_seq_len=256,
                    num_experts=8, num_experts_per_tok=2, d_expert=256, d_ff_standard=512,
                    rope_layers_ratio=0.75, rope_theta=10000.0, chunk_size=64, batch_size=8)


def bench_train(model: R.Decoder, batch: int, seq: int, warmup: int, steps: int) -> dict:
    g = torch.Generator().manual_seed(0)
    vocab = model.cfg.vocab_size
    data = torch.randint(vocab, (warmup + steps, batch, seq + 1), generator=g)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-4, weight_decay=0.1, betas=(0.9, 0.95))
    model.train()
    losses = []

    def step(k: int):
        opt.zero_grad()
        logits, aux = model(data[k, :, :-1])
        loss, _ = R.phase1_loss(logits, data[k, :, 1:], aux, 0.01)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        losses.append(loss.item())

    for k in range(warmup):
        step(k)
    t0 = time.perf_counter()
    for k in range(warmup, warmup + steps):
        step(k)
    elapsed = time.perf_counter() - t0
    return {"tokens_per_s": steps * batch * seq / elapsed, "step_ms": 1000 * elapsed / steps,
            "timed_steps": steps, "warmup_steps": warmup, "batch": batch, "seq_len": seq,
            "first_loss": losses[0], "last_loss": losses[-1]}


def bench_generate(model: R.Decoder, prompt_len: int, new_tokens: int) -> dict:
    g = torch.Generator().manual_seed(1)
    prompt = torch.randint(4, model.cfg.vocab_size, (1, prompt_len), generator=g)
    model.eval()
    R.greedy_generate(model, prompt, 4, eos_id=None)  # warm-up
    t0 = time.perf_counter()
    out = R.greedy_generate(model, prompt, new_tokens, eos_id=None)
    elapsed = time.perf_counter() - t0
    made = out.shape[1] - prompt_len
    return {"gen_tokens_per_s": made / elapsed, "gen_ms_per_token": 1000 * elapsed / made,
            "gen_prompt_len": prompt_len, "gen_new_tokens": made, "gen_batch": 1, "gen_kv_cache": False}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=5, help="timed training steps")
    ap.add_argument("--warmup", type=int, default=2, help="untimed training steps first")
    ap.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seq", type=int, default=256)
    ap.add_argument("--prompt-len", type=int, default=16)
    ap.add_argument("--new-tokens", type=int, default=64)
    ap.add_argument("--no-generate", action="store_true", help="skip the generation benchmark")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    cfg = R.ModelConfig.from_dict(BENCH_CONFIG)
    model = R.Decoder(cfg)
    used = set(R.used_parameter_names(model))
    result = {"implementation": "pytorch-reference", "device": "cpu", "threads": args.threads,
              "torch": torch.__version__, "python": platform.python_version(),
              "params_total": sum(p.numel() for p in model.parameters()),
              "params_used": sum(p.numel() for n, p in model.named_parameters() if n in used),
              "config": BENCH_CONFIG}
    result.update(bench_train(model, args.batch, args.seq, args.warmup, args.steps))
    if not args.no_generate:
        result.update(bench_generate(model, args.prompt_len, args.new_tokens))
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
