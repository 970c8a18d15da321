#!/usr/bin/env python3
"""Writes fuzz/corpus/<name>/: small seed inputs for each harness (copied from the test fixtures or built
here), plus the regression inputs of defects the fuzzers found (files named regress-*). Re-run after
changing a file format; the output is committed."""
import base64
import json
import os
import shutil
import struct

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIX = os.path.join(ROOT, "tests", "fixtures")
OUT = os.path.join(ROOT, "fuzz", "corpus")


def put(name, file, data):
    d = os.path.join(OUT, name)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, file), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


def copy(name, src, file=None):
    d = os.path.join(OUT, name)
    os.makedirs(d, exist_ok=True)
    shutil.copy(src, os.path.join(d, file or os.path.basename(src)))


def safetensors(tensors, meta=None):
    header, blobs, off = {}, b"", 0
    if meta:
        header["__metadata__"] = meta
    for name, (dtype, shape, raw) in tensors.items():
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [off, off + len(raw)]}
        blobs += raw
        off += len(raw)
    h = json.dumps(header).encode()
    return struct.pack("<Q", len(h)) + h + blobs


def shard(tokens, width=2, vocab=300, eos=2, num_tokens=None, num_docs=1):
    n = len(tokens) if num_tokens is None else num_tokens
    h = b"TVTOKENS" + struct.pack("<IIQQII", 1, width, n, num_docs, vocab, eos) + b"\0" * 24
    return h + b"".join(struct.pack("<H" if width == 2 else "<I", t) for t in tokens)


def main():
    shutil.rmtree(OUT, ignore_errors=True)

    # tokenizer.json
    for f in ["hf_seen_tokenizer.json", "hf_variant_tokenizer.json"]:
        copy("tokenizer_json", os.path.join(FIX, "tokenizer", f))
    put("tokenizer_json", "minimal.json", json.dumps({
        "version": "1.0", "truncation": None, "padding": None, "added_tokens": [
            {"id": 0, "content": "<unk>", "single_word": False, "lstrip": False, "rstrip": False,
             "normalized": False, "special": True}],
        "normalizer": None,
        "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True},
        "post_processor": None, "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True,
                                            "use_regex": True},
        "model": {"type": "BPE", "dropout": None, "unk_token": "<unk>", "continuing_subword_prefix": None,
                  "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False, "ignore_merges": False,
                  "vocab": {"<unk>": 0, "a": 1, "b": 2, "ab": 3}, "merges": [["a", "b"]]}}))
    # A number too large for a double escaped as a raw JSON-library message naming no file.
    put("tokenizer_json", "regress-number-overflow.json", '{"version": "1.0", "model": {"dropout": 1e999}}')
    put("tokenizer_json", "regress-id-overflow.json",
        '{"version":"1.0","model":{"type":"BPE","vocab":{"a":99999999999999999999999}}}')

    # safetensors
    copy("safetensors", os.path.join(FIX, "torch", "tensors_expected.safetensors"))
    put("safetensors", "small.safetensors", safetensors(
        {"w": ("F32", [2, 3], struct.pack("<6f", *range(6))), "b": ("BF16", [2], b"\x80\x3f\x00\x40")},
        {"format": "tinyvlm", "step": "3"}))
    put("safetensors", "regress-negative-dim.safetensors", safetensors({"w": ("F32", [-1, 4], b"")}))

    # torch.save zip + pickle
    for f in ["broadcast.pt", "odd_dtypes.pt", "tensors.pt"]:
        copy("torch_file", os.path.join(FIX, "torch", f))

    # images
    for f in ["small.jpg", "gray.jpg", "gray1.png", "palette2.png", "gray_alpha.png", "palette_trns.png",
              "truncated.jpg", "not_an_image.jpg", "cmyk.jpg", "interlaced.png"]:
        src = os.path.join(FIX, "images", f)
        if os.path.exists(src) and os.path.getsize(src) < 20000:
            copy("image", src)

    # A 146-byte CMYK JPEG declaring 2384 x 63808 pixels: decoding it under ASan outran libFuzzer's
    # timeout (the fuzz build bounds images at 4 Mpixel; normal builds keep PIL's bound).
    put("image", "regress-huge-declared-size.jpg", base64.b64decode(
        "/9j/7gAOQWRvYmUAZAAAAAAA/9sAQwADAgIDAgIDA2ADA/UEAwMEBQgFBQQBAAAAAAAAYXAABM/Q8/T09PT09PT09PT09PT09PT09AML"
        "C/T09PT09PQLFRT/wAAUCPlACVAEQxEATREAWREASxEAAAAAAAAAAQIDBAUGBwgJCgv/2gAOBEMATQBZAEsAANk//9k="))

    # captions: the first byte picks the name the reader sees (odd: .jsonl, even: .json)
    put("captions", "coco.json", b"\x00" + json.dumps({
        "images": [{"id": 1, "file_name": "a.jpg"}, {"id": 2, "file_name": "b.jpg"}],
        "annotations": [{"image_id": 1, "caption": "a cat"}, {"image_id": 2, "caption": "a dog"},
                        {"image_id": 1, "caption": "a small cat"}]}).encode())
    put("captions", "lines.jsonl", b"\x01" + b'{"image": "a.jpg", "caption": "a cat"}\n'
        b'{"image": "b.jpg", "caption": ["a dog", "two dogs"]}\n\n')

    # TOML configs
    copy("config", os.path.join(FIX, "model", "tiny_config.toml"))
    copy("config", os.path.join(FIX, "vlm", "tiny_vlm_config.toml"))
    put("config", "tables.toml", 'lr = 1e-3\nname = "x"\n[train]\nsteps = 3\nflag = true\n')
    # Floats that do not fit int64 where an integer is read (undefined behaviour), d_model = inf, and
    # stored keys holding '"' or '\' that did not read back.
    put("config", "regress-huge-float.toml", "d_model = 9.3e18\n")
    put("config", "regress-inf.toml", "d_model = inf\nn_heads = -inf\n")
    put("config", "regress-quoted-key.toml", '"a\\"b" = 1\n"c\\\\d" = 2\n')

    # token shards
    put("shards", "small.bin", shard([5, 6, 2, 7, 2]))
    put("shards", "wide.bin", shard([70000, 2], width=4, vocab=70001))
    # A token count whose product with the width wraps around 2^64 passed the size check.
    put("shards", "regress-count-wraps.bin", shard([5, 6], num_tokens=(1 << 63) + 2))
    put("shards", "regress-count-huge.bin", shard([5, 6], width=4, num_tokens=(1 << 62) + 2))

    # metrics.jsonl as the report reads it: the head of the report fixtures (a phase-1-like run with a
    # null value and a skipped batch, a DPO-like run) and values at the ends of the double range.
    for run, n in (("run_b", 12), ("dpo", 8)):
        with open(os.path.join(FIX, "report", run, "metrics.jsonl")) as f:
            put("metrics", run + ".jsonl", "".join(f.readlines()[:n]))
    put("metrics", "extremes.jsonl", '{"step":1,"loss":1e308,"lr":-1e308}\n{"step":2,"loss":5e-324,"lr":null}\n'
        '{"step":9223372036854775807,"loss":0}\n{"step":3,"split":"val","<b>":1}\n{"step":4,"lo\n')


if __name__ == "__main__":
    main()
