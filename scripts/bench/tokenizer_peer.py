#!/usr/bin/env python3
"""Peer benchmark: HuggingFace `tokenizers` encode_batch throughput (all threads).

    python3 scripts/bench/tokenizer_peer.py --tokenizer T.json --input F... [--repeats 3]
    python3 scripts/bench/tokenizer_peer.py --make-corpus OUT.txt --bytes 32000000 [--style prose]

Documents are read as `tinyvlm bench tokenizer` reads them: every non-empty line of a text file
(without "\\n" / "\\r\\n"), or the "text" field of every JSONL record. One untimed warm-up run,
then the best of --repeats timed runs of Tokenizer.encode_batch over all documents. Prints one
RESULT line (MB/s, threads, bytes, tokens, and a checksum of the ids that tinyvlm prints too).
--make-corpus writes a synthetic multilingual corpus (the generator of
scripts/fixtures/tokenizer_fixtures.py, another seed) for the benchmark.
"""
import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures"))


def read_docs(paths):
    docs = []
    for p in paths:
        with open(p, "rb") as f:
            data = f.read().decode("utf-8")
        if p.endswith(".jsonl") or p.endswith(".json"):
            for line in data.split("\n"):
                if line.strip():
                    t = json.loads(line)["text"]
                    if t:
                        docs.append(t)
        else:
            for line in data.split("\n"):
                if line.endswith("\r"):
                    line = line[:-1]
                if line:
                    docs.append(line)
    return docs


def checksum(encodings):
    """sum(id * (i % 65521 + 1)) mod 2^64 over the concatenated ids (as tinyvlm prints it)."""
    import numpy as np
    ids = np.concatenate([np.asarray(e.ids, dtype=np.uint64) for e in encodings])
    w = (np.arange(len(ids), dtype=np.uint64) % np.uint64(65521)) + np.uint64(1)
    return int(np.sum(ids * w, dtype=np.uint64)), len(ids)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokenizer")
    ap.add_argument("--input", nargs="+")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--make-corpus")
    ap.add_argument("--bytes", type=int, default=32_000_000)
    ap.add_argument("--seed", type=int, default=99)
    ap.add_argument("--style", choices=["hostile", "prose"], default="hostile")
    a = ap.parse_args()

    if a.make_corpus:
        import tokenizer_fixtures
        text = tokenizer_fixtures.make_corpus(a.seed, a.bytes, a.style)
        with open(a.make_corpus, "w", encoding="utf-8", newline="") as f:
            f.write(text)
        print("wrote %s (%d bytes)" % (a.make_corpus, len(text.encode("utf-8"))))
        return 0

    from tokenizers import Tokenizer
    tok = Tokenizer.from_file(a.tokenizer)
    docs = read_docs(a.input)
    nbytes = sum(len(d.encode("utf-8")) for d in docs)
    tok.encode_batch(docs)  # warm-up (word caches, thread pool)
    best = float("inf")
    enc = None
    for _ in range(max(1, a.repeats)):
        t0 = time.perf_counter()
        enc = tok.encode_batch(docs)
        best = min(best, time.perf_counter() - t0)
    cs, ntok = checksum(enc)
    threads = os.environ.get("RAYON_NUM_THREADS") or str(os.cpu_count())
    print("huggingface tokenizers %s encode_batch: %.2f MB in %d documents, %d tokens, %.2f MB/s"
          % (__import__("tokenizers").__version__, nbytes / 1e6, len(docs), ntok, nbytes / 1e6 / best))
    print("RESULT hf_batch_mbps=%.3f threads=%s bytes=%d tokens=%d checksum=%d" % (nbytes / 1e6 / best, threads, nbytes, ntok, cs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
