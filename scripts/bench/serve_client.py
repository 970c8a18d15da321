#!/usr/bin/env python3
"""Load for `tinyvlm serve`: C concurrent clients each send R streaming chat requests with the image;
prints one line: clients, requests, completion tokens, wall seconds, aggregate tokens/s, mean and
median time to first token (ms). Standard library only; loopback only.
  serve_client.py PORT CLIENTS REQUESTS_PER_CLIENT MAX_TOKENS IMAGE"""
import base64
import json
import statistics
import sys
import threading
import time
import urllib.request

port, clients, per_client, max_tokens, image = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
url = "data:image/png;base64," + base64.b64encode(open(image, "rb").read()).decode()
body = json.dumps({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}},
                                                             {"type": "text", "text": "What colour is the shape?"}]}],
                   "max_tokens": max_tokens, "temperature": 0, "stream": True}).encode()
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
ttfts, tokens, errors = [], [], []
lock = threading.Lock()


def client():
    for _ in range(per_client):
        t0 = time.perf_counter()
        first = None
        n = 0
        req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/chat/completions", data=body,
                                     headers={"Content-Type": "application/json"})
        try:
            with opener.open(req, timeout=600) as r:
                for line in r:
                    if not line.startswith(b"data: {"):
                        continue
                    c = json.loads(line[6:])
                    if c.get("usage"):
                        n = c["usage"]["completion_tokens"]
                    if first is None and any(ch.get("delta", {}).get("content") for ch in c.get("choices", [])):
                        first = time.perf_counter() - t0
        except Exception as e:  # counted, reported
            with lock:
                errors.append(str(e))
            continue
        with lock:
            ttfts.append(1e3 * (first if first is not None else time.perf_counter() - t0))
            tokens.append(n)


t0 = time.perf_counter()
threads = [threading.Thread(target=client) for _ in range(clients)]
for t in threads:
    t.start()
for t in threads:
    t.join()
wall = time.perf_counter() - t0
total = sum(tokens)
for e in errors[:3]: print("error:", e, file=sys.stderr)
print(f"{clients} {len(tokens)} {total} {wall:.3f} {total / wall:.1f} "
      f"{statistics.mean(ttfts) if ttfts else 0:.1f} {statistics.median(ttfts) if ttfts else 0:.1f} {len(errors)}")
