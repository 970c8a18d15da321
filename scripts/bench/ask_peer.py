#!/usr/bin/env python3
"""Peer benchmark for `tinyvlm ask`: the latency of answering one question about one image in PyTorch,
the original's way (the whole sequence recomputed for every new token, greedy, stop at EOS).

    python3 scripts/bench/ask_peer.py --make DIR          # write DIR/{instruct.pt, config.toml, tokenizer.json}
    python3 scripts/bench/ask_peer.py --run DIR [--threads N] [--max-tokens 32]

--make builds a random model of the benchmark shape (decoder: d_model 256, 4 layers, 8/4 heads, 8
experts top-2, vocab 8192, as `tinyvlm bench train`; tower: ViT 224/16 with 6 layers, 3 heads, 192
hidden, mlp 768, so 196 vision tokens) with the reference of scripts/reference/ref_model.py and saves it
as the original's phase 3 saves best_instruct.pt (model_state_dict under vlm.), with a config.toml in
the original's keys, and a byte-level BPE tokenizer of 8192 tokens with <image> at 8192. The image is
tests/fixtures/torch/ask_image.png (resized to 256, cropped to 224 as in training).

--run prints one JSON line (with --plain: the fields separated by spaces): first_token_ms (image
preprocessing, tower, projector, prefill and the first argmax), tokens_per_s after the first token, the
same two in process CPU time (first_token_cpu_ms, tokens_per_cpu_s: a busy machine inflates them far
less than wall time), the answer's token ids.
"""
from __future__ import annotations

import argparse
import collections
import json
import os
import sys
import time
import tomllib
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts" / "reference"))
import ref_model as R  # noqa: E402

FIX = ROOT / "tests" / "fixtures" / "torch"
CONFIG = """# benchmark model for scripts/bench/ask.sh (the original's keys, plus tinyvlm's vision_num_*)
vocab_size = 8192
d_model = 256
n_heads = 8
n_kv_heads = 4
n_layers = 4
max_seq_len = 256
num_experts = 8
num_experts_per_tok = 2
moe_layer_freq = 2
d_expert = 256
d_ff_standard = 512
rope_layers_ratio = 0.75
rope_theta = 10000
chunk_size = 64
vision_hidden_size = 192
patch_size = 16
image_size = 224
vision_num_layers = 6
vision_num_heads = 3
vision_mlp_dim = 768
"""


def vcfg():
    return R.VisionConfig(image_size=224, patch_size=16, num_layers=6, num_heads=3, hidden_dim=192, mlp_dim=768)


def build(cfg_text: str):
    cfg = R.ModelConfig.from_dict(tomllib.loads(cfg_text))
    torch.manual_seed(0)
    vit = R.make_torchvision_vit(vcfg())
    tower = R.VisionTower(vit, cfg.d_model)
    llm = R.Decoder(cfg)
    with torch.no_grad():
        llm.proj_vocab.weight.mul_(4.0)  # clearer greedy choices than a fresh init's
    image_id = R.expand_vocab_for_image(llm, torch.Generator().manual_seed(1))
    return R.VisionLanguageModel(tower, llm).eval(), image_id


def make_tokenizer(path: Path, vocab_size: int):
    """A byte-level BPE laid out as the original's (<unk> <s> </s> <pad>, the 256 byte symbols, merges of
    symbol pairs up to vocab_size tokens) with <image> appended at id vocab_size."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs, n = bs[:], 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    symbols = [chr(c) for _, c in sorted(zip(bs, cs))]
    vocab = {t: i for i, t in enumerate(["<unk>", "<s>", "</s>", "<pad>"] + symbols)}
    letters = [symbols[b] for b in b" abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ?.,!'"]
    letters[0] = symbols[ord(" ")]
    merges = []
    for a in letters:
        for b in letters:
            if len(vocab) < vocab_size and a + b not in vocab:
                merges.append((a, b))
                vocab[a + b] = len(vocab)
    for a in list(vocab)[260:]:
        for b in letters:
            if len(vocab) >= vocab_size:
                break
            if a + b not in vocab:
                merges.append((a, b))
                vocab[a + b] = len(vocab)
    assert len(vocab) == vocab_size
    tk = Tokenizer(models.BPE(vocab=vocab, merges=merges))
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tk.decoder = decoders.ByteLevel()
    tk.add_special_tokens(["<unk>", "<s>", "</s>", "<pad>", "<image>"])
    assert tk.token_to_id("<image>") == vocab_size
    tk.save(str(path))


def make(d: Path):
    d.mkdir(parents=True, exist_ok=True)
    (d / "config.toml").write_text(CONFIG)
    vlm, _ = build(CONFIG)
    sd = collections.OrderedDict(("vlm." + k, v) for k, v in vlm.state_dict().items())
    torch.save({"model_state_dict": sd, "epoch": 0, "val_loss": 0.0}, d / "instruct.pt")
    make_tokenizer(d / "tokenizer.json", 8192)
    print(f"wrote {d / 'instruct.pt'}, {d / 'config.toml'} and {d / 'tokenizer.json'}", file=sys.stderr)


def run(d: Path, threads: int, max_tokens: int, question: str, plain: bool):
    from PIL import Image
    from tokenizers import Tokenizer
    import torchvision.transforms as T

    torch.set_num_threads(threads)
    cfg_text = (d / "config.toml").read_text()
    vlm, image_id = build(cfg_text)
    ck = torch.load(d / "instruct.pt", map_location="cpu", weights_only=True)["model_state_dict"]
    vlm.load_state_dict({k[4:]: v for k, v in ck.items()}, strict=True)
    tk = Tokenizer.from_file(str(d / "tokenizer.json"))
    prompt = tk.encode(" USER: " + question + " ASSISTANT:").ids
    tf = T.Compose([T.Resize(256), T.CenterCrop(224), T.ToTensor(),
                    T.Normalize(mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))])
    with torch.inference_mode():
        t0, c0 = time.perf_counter(), time.process_time()
        pixels = tf(Image.open(FIX / "ask_image.png").convert("RGB"))[None]
        ids = [image_id] + prompt
        new = []
        t_first = None
        for _ in range(max_tokens):
            nxt = int(vlm(pixels, torch.tensor([ids]))[0, -1].argmax())
            if t_first is None:
                t_first, c_first = time.perf_counter(), time.process_time()
            if nxt == R.EOS_ID:
                break
            ids.append(nxt)
            new.append(nxt)
        t_end, c_end = time.perf_counter(), time.process_time()
    rest, rest_cpu = t_end - t_first, c_end - c_first
    j = {"impl": "pytorch", "threads": threads, "first_token_ms": 1e3 * (t_first - t0),
         "first_token_cpu_ms": 1e3 * (c_first - c0), "new_tokens": len(new),
         "tokens_per_s": (len(new) - 1) / rest if len(new) > 1 and rest > 0 else 0,
         "tokens_per_cpu_s": (len(new) - 1) / rest_cpu if len(new) > 1 and rest_cpu > 0 else 0, "ids": new}
    if plain:
        print(f"{j['first_token_ms']:.1f} {j['tokens_per_s']:.1f} {j['first_token_cpu_ms']:.1f} "
              f"{j['tokens_per_cpu_s']:.1f} " + " ".join(map(str, new)))
    else:
        print(json.dumps(j))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--make", type=Path)
    ap.add_argument("--run", type=Path)
    ap.add_argument("--threads", "-t", type=int, default=os.cpu_count())
    ap.add_argument("--max-tokens", type=int, default=32)
    ap.add_argument("--question", default="What colour is the shape?")
    ap.add_argument("--plain", action="store_true", help="print 'first_token_ms tokens_per_s ids...' instead of JSON")
    a = ap.parse_args()
    if a.make:
        make(a.make)
    if a.run:
        run(a.run, a.threads, a.max_tokens, a.question, a.plain)


if __name__ == "__main__":
    main()
