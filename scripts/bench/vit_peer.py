#!/usr/bin/env python3
"""Peer benchmark for `tinyvlm bench vit`: images/s of the vision tower's forward in PyTorch.

    python3 scripts/bench/vit_peer.py [--batch 8] [--threads N] [--min-time 3]

The computation the phase-2 model runs on torchvision's vit_b_16 (random weights, eval mode,
inference_mode, fp32): conv_proj, + encoder.pos_embedding[:, 1:], the 12 encoder layers,
encoder.ln; no class token, no head. After one untimed forward, whole forwards of --batch
images run for at least --min-time seconds.
"""
from __future__ import annotations

import argparse
import os
import time

import torch
from torchvision.models import vit_b_16


def flops_per_image(p=196, d=768, f=3072, layers=12, patch=16):
    layer = 2 * p * d * 3 * d + 2 * 2 * p * p * d + 2 * p * d * d + 2 * 2 * p * d * f
    return 2 * p * d * 3 * patch * patch + layers * layer


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--batch", "-b", type=int, default=8)
    ap.add_argument("--threads", "-t", type=int, default=os.cpu_count())
    ap.add_argument("--min-time", type=float, default=3.0)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    vit = vit_b_16(weights=None).eval()
    patch, pos, layers, norm = vit.conv_proj, vit.encoder.pos_embedding, vit.encoder.layers, vit.encoder.ln

    def tower(x):
        x = patch(x).flatten(2).transpose(1, 2)
        x = x + pos[:, 1:, :]
        for layer in layers:
            x = layer(x)
        return norm(x)

    x = torch.randn(a.batch, 3, 224, 224)
    with torch.inference_mode():
        tower(x)
        images = calls = 0
        t0, c0 = time.perf_counter(), time.process_time()
        while True:
            tower(x)
            images += a.batch
            calls += 1
            t = time.perf_counter() - t0
            if t >= a.min_time:
                break
        cpu = time.process_time() - c0
    ips = images / t
    print(f"vit (PyTorch {torch.__version__}, torchvision vit_b_16): ViT 224/16, 12 layers, 12 heads, 768 hidden, "
          f"mlp 3072, batch {a.batch}, {torch.get_num_threads()} threads, fp32")
    print(f"  forward    : {ips:8.2f} images/s  ({1e3 / ips:.1f} ms/image, {ips * flops_per_image() / 1e9:.1f} GFLOP/s; "
          f"{calls} calls in {t:.1f} s, {1e3 * cpu / images:.1f} ms CPU/image)")


if __name__ == "__main__":
    main()
