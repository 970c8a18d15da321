#!/usr/bin/env python3
"""Integration test of `tinyvlm serve` (docs/server.md) with the official openai client and curl.

Starts the server on a free loopback port with the tiny phase-3 fixture (tests/fixtures/torch), then:
a chat completion with an image gives the tokens and text of `tinyvlm ask` with the same settings
(greedy and with repetition penalty 1.2); streaming gives the same text; the completions endpoint refuses
a vision-language model; bad requests get their status and the server stays up; 16 concurrent clients
all get the complete answer; a bounded loop of random, mangled requests never takes the server down.

Usage: test_server.py TINYVLM_BIN FIXTURE_DIR. Exits 77 (skipped) when the openai module is missing.
"""
import base64
import concurrent.futures
import http.client as httpclient
import json
import os
import random
import struct
import tempfile
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request

try:
    import openai
except ImportError:
    print("SKIPPED: the Python module 'openai' is not installed (pip install openai)")
    sys.exit(77)

BIN, FIX = sys.argv[1], sys.argv[2]
TORCH = os.path.join(FIX, "torch")
MODEL = os.path.join(TORCH, "tiny_instruct.pt")
CONFIG = os.path.join(TORCH, "ask_config.toml")
TOKENIZER = os.path.join(TORCH, "ask_tokenizer.json")
IMAGE = os.path.join(TORCH, "ask_image.png")
QUESTION = "What colour is the shape?"
KEY = "test-key-123"
os.environ["NO_PROXY"] = os.environ["no_proxy"] = "127.0.0.1"
for v in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY", "all_proxy"):
    os.environ.pop(v, None)

failures = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what, flush=True)
    if not cond:
        failures.append(what)


def ask(extra=()):
    """tinyvlm ask's answer: (ids, text)."""
    base = [BIN, "ask", "--model", MODEL, "--config", CONFIG, "--tokenizer", TOKENIZER, "--image", IMAGE,
            "--prompt", QUESTION, "--max-tokens", "24", "--threads", "1", *extra]
    ids = subprocess.run(base + ["--print-ids"], capture_output=True, text=True, check=True, timeout=120).stdout
    text = subprocess.run(base, capture_output=True, check=True, timeout=120).stdout.decode("utf-8")
    return [int(t) for t in ids.split()], text[:-1]  # ask ends the answer with a newline


def start_server(*extra, model=MODEL):
    proc = subprocess.Popen([BIN, "serve", "--model", model, "--config", CONFIG, "--tokenizer", TOKENIZER,
                             "--port", "0", "--threads", "1", *extra],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline:
        line = proc.stderr.readline()
        if not line:
            break
        sys.stdout.write("server: " + line)
        m = re.search(r"listening on http://127\.0\.0\.1:(\d+)", line)
        if m:
            return proc, int(m.group(1))
    proc.kill()
    raise SystemExit("FAIL: the server did not start")


def http(port, method, path, body=None, headers=None, auth=True):
    """(status, headers, body bytes) of one request with urllib (no retries)."""
    h = {"Content-Type": "application/json"}
    if auth:
        h["Authorization"] = "Bearer " + KEY
    h.update(headers or {})
    data = body if isinstance(body, (bytes, type(None))) else body.encode()
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data, method=method, headers=h)
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def curl(port, *args):
    """(status, body) of one curl request."""
    out = subprocess.run(["curl", "-s", "--noproxy", "*", "-o", "-", "-w", "\n%{http_code}", "--max-time", "60",
                          *args, f"http://127.0.0.1:{port}/v1/chat/completions"],
                         capture_output=True, timeout=90)
    body, _, code = out.stdout.rpartition(b"\n")
    return int(code), body


def image_url():
    with open(IMAGE, "rb") as f:
        return "data:image/png;base64," + base64.b64encode(f.read()).decode()


def messages(question=QUESTION, url=None):
    return [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": url or image_url()}},
                                         {"type": "text", "text": question}]}]


def healthy(port):
    return http(port, "GET", "/health", auth=False)[0] == 200


def busy_and_gone():
    """Long answers (greedy 5900 tokens take about 5 s here): one past a 50 ms --timeout ends with 503.
    With one slot and one queue place: a request beyond the queue gets 503 with Retry-After; a streaming
    client that goes away frees its slot at the next step (counted as cancelled) and the queued request
    then runs."""
    long_body = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 5900, "temperature": 0}
    proc, port = start_server("--parallel", "1", "--ctx", "6000", "--timeout", "0.05")
    try:
        st, _, body = http(port, "POST", "/v1/chat/completions", json.dumps(long_body))
        check(st == 503 and b"timed out" in body, f"an answer past --timeout: 503 ({body[:100]!r})")
        check(healthy(port), "the server is up")
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    proc, port = start_server("--parallel", "1", "--queue", "1", "--ctx", "6000", "--allow-local-images", TORCH)
    try:
        # With --allow-local-images, a file in that folder is an image URL; nothing outside it is.
        def local(url):
            return http(port, "POST", "/v1/chat/completions", json.dumps(
                {"messages": messages(url=url), "max_tokens": 24, "temperature": 0, "return_token_ids": True}))
        st, _, body = local("ask_image.png")
        check(st == 200 and json.loads(body)["choices"][0]["token_ids"] == ask()[0],
              "an image file under --allow-local-images gives ask's tokens")
        st, _, body = local("file://" + os.path.abspath(IMAGE))
        check(st == 200, "... as a file:// URL too")
        for url in ("../model/tiny_config.toml", "/etc/passwd", os.path.join(os.path.abspath(TORCH), "..", "model", "tiny_config.toml")):
            st, _, body = local(url)
            check(st == 400 and b"outside" in body, f"{url}: outside the folder, 400 ({body[:90]!r})")
        def finished_tokens():
            m = re.search(rb"tinyvlm_completion_tokens_total (\d+)", http(port, "GET", "/metrics")[2])
            return int(m.group(1)) if m else -1
        before = finished_tokens()
        conn = httpclient.HTTPConnection("127.0.0.1", port, timeout=30)
        conn.request("POST", "/v1/chat/completions", json.dumps({**long_body, "stream": True}),
                     {"Content-Type": "application/json"})
        resp = conn.getresponse()
        first = b""
        while b"content" not in first or b'"content":""' in first:
            first = resp.fp.readline()
        with concurrent.futures.ThreadPoolExecutor(1) as ex:
            queued = ex.submit(http, port, "POST", "/v1/chat/completions",
                               json.dumps({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 5,
                                           "temperature": 0}))
            time.sleep(0.3)  # it waits in the queue's one place
            st, headers, body = http(port, "POST", "/v1/chat/completions", json.dumps(long_body))
            check(st == 503 and headers.get("Retry-After") == "1" and b"busy" in body,
                  f"beyond the queue: 503 with Retry-After ({st}, {body[:80]!r})")
            conn.sock.shutdown(2)
            conn.close()
            st, _, body = queued.result(timeout=60)
            check(st == 200, f"the queued request ran ({st}, {body[:80]!r})")
        st, _, body = http(port, "GET", "/metrics")
        m = re.search(rb"tinyvlm_cancelled_total (\d+)", body)
        check(m is not None and int(m.group(1)) == 1, "the client that went away was dropped at a step (cancelled)")
        check(finished_tokens() - before == 5, "only the queued request's tokens were counted as finished")
        check(healthy(port), "the server is up")
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def no_batch(greedy_ids):
    """--no-batch: the slots step one after another, with the same answers."""
    proc, port = start_server("--parallel", "4", "--no-batch")
    try:
        def one(_):
            c = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="none", max_retries=0, timeout=300)
            r = c.chat.completions.create(model="x", messages=messages(), max_tokens=24, temperature=0,
                                          extra_body={"return_token_ids": True})
            return r.choices[0].model_extra.get("token_ids")
        with concurrent.futures.ThreadPoolExecutor(4) as ex:
            results = list(ex.map(one, range(4)))
        check(all(r == greedy_ids for r in results), f"--no-batch: 4 concurrent clients get ask's tokens")
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def text_model():
    """A text model (the fixture's decoder alone, written as safetensors by `tinyvlm convert` and this
    script): /v1/completions gives `tinyvlm generate`'s tokens; images are refused."""
    import tempfile
    with tempfile.TemporaryDirectory() as d:
        full, text = os.path.join(d, "full.safetensors"), os.path.join(d, "text.safetensors")
        subprocess.run([BIN, "convert", MODEL, full, "--config", CONFIG], check=True, capture_output=True, timeout=120)
        b = open(full, "rb").read()
        n = struct.unpack("<Q", b[:8])[0]
        header, data = json.loads(b[8:8 + n]), b[8 + n:]
        out, chunks, off = {"__metadata__": header.pop("__metadata__")}, [], 0
        for k, v in header.items():
            if k.startswith("vlm.vision_encoder."):
                continue
            s, e = v["data_offsets"]
            chunks.append(data[s:e])
            out[k] = dict(v, data_offsets=[off, off + e - s])
            off += e - s
        hj = json.dumps(out).encode()
        hj += b" " * (-len(hj) % 8)
        open(text, "wb").write(struct.pack("<Q", len(hj)) + hj + b"".join(chunks))
        want = subprocess.run([BIN, "generate", "--model", text, "--tokenizer", TOKENIZER, "--prompt", "What colour",
                               "--max-tokens", "12", "--print-ids", "--threads", "1"],
                              capture_output=True, text=True, check=True, timeout=120).stdout.split()
        proc, port = start_server("--ctx", "64", model=text)
        try:
            client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="none", max_retries=0, timeout=60)
            r = client.completions.create(model="text", prompt="What colour", max_tokens=12, temperature=0,
                                          extra_body={"return_token_ids": True})
            got = r.choices[0].model_extra.get("token_ids")
            check(got == [int(t) for t in want], f"a text model's completion gives generate's tokens: {got} vs {want}")
            check(r.usage.completion_tokens == len(want), "usage of a completion")
            st, _, body = http(port, "POST", "/v1/chat/completions", json.dumps({"messages": messages()}), auth=False)
            check(st == 400 and b"text model" in body, "a text model refuses images")
            r = client.chat.completions.create(model="text", messages=[{"role": "user", "content": "hi"}], max_tokens=4)
            check(r.usage.completion_tokens >= 1, "a text model chats without an image")
        finally:
            proc.terminate()
            proc.wait(timeout=30)


def main():
    greedy_ids, greedy_text = ask()
    pen_ids, pen_text = ask(["--repetition-penalty", "1.2"])
    check(len(greedy_ids) > 0, f"tinyvlm ask answers ({len(greedy_ids)} tokens: {greedy_text!r})")

    proc, port = start_server("--parallel", "4", "--api-key", KEY, "--max-body-bytes", "65536")
    try:
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key=KEY, max_retries=0, timeout=120)
        models = client.models.list()
        check([m.id for m in models.data] == ["tiny_instruct"], "GET /v1/models lists the model")

        # The same tokens and text as ask, greedy and with the repetition penalty.
        for name, extra, ids, text in (("greedy", {}, greedy_ids, greedy_text),
                                       ("penalty 1.2", {"repetition_penalty": 1.2}, pen_ids, pen_text)):
            r = client.chat.completions.create(model="tiny_instruct", messages=messages(), max_tokens=24,
                                               temperature=0, extra_body={"return_token_ids": True, **extra})
            got = r.choices[0].model_extra.get("token_ids")
            check(got == ids, f"chat completion ({name}) gives ask's tokens: {got} vs {ids}")
            check(r.choices[0].message.content == text, f"chat completion ({name}) gives ask's text")
            check(r.usage is not None and r.usage.completion_tokens == len(ids) and r.usage.prompt_tokens > 4,
                  f"usage counts ({name}): {r.usage}")
            check(r.choices[0].finish_reason == ("length" if len(ids) == 24 else "stop"), "finish_reason")

        # Streaming: the same text, chunk by chunk, with usage at the end.
        pieces, usage, finish = [], None, None
        stream = client.chat.completions.create(model="tiny_instruct", messages=messages(), max_tokens=24,
                                                temperature=0, stream=True)
        for chunk in stream:
            if chunk.usage:
                usage = chunk.usage
            for c in chunk.choices:
                if c.delta.content:
                    pieces.append(c.delta.content)
                if c.finish_reason:
                    finish = c.finish_reason
        check("".join(pieces) == greedy_text, f"streaming yields the same text in {len(pieces)} chunks")
        check(usage is not None and usage.completion_tokens == len(greedy_ids), "the stream ends with usage")
        check(finish in ("stop", "length"), "the stream ends with a finish_reason")
        # The raw stream ends with data: [DONE].
        st, _, body = http(port, "POST", "/v1/chat/completions",
                           json.dumps({"messages": messages(), "max_tokens": 4, "temperature": 0, "stream": True}))
        events = [l for l in body.decode().split("\n") if l.startswith("data: ")]
        check(st == 200 and events and events[-1] == "data: [DONE]", "the SSE stream ends with data: [DONE]")

        # A stop string cuts the answer.
        if len(greedy_text) > 4:
            stop = greedy_text[2:4]
            r = client.chat.completions.create(model="tiny_instruct", messages=messages(), max_tokens=24,
                                               temperature=0, stop=[stop])
            want = greedy_text[:greedy_text.find(stop)]
            check(r.choices[0].message.content == want and r.choices[0].finish_reason == "stop",
                  f"stop {stop!r} cuts the answer to {want!r}")
        # OpenAI's frequency penalty changes the greedy answer (it repeats a token five times).
        r = client.chat.completions.create(model="x", messages=messages(), max_tokens=24, temperature=0,
                                           frequency_penalty=1.5, extra_body={"return_token_ids": True})
        got = r.choices[0].model_extra.get("token_ids")
        check(got != greedy_ids and got[:1] == greedy_ids[:1], "frequency_penalty 1.5 changes the answer after its first token")
        # Seeded sampling repeats itself.
        a = [client.chat.completions.create(model="x", messages=messages(), max_tokens=12, temperature=1.0,
                                            seed=7).choices[0].message.content for _ in range(2)]
        check(a[0] == a[1], "the same seed samples the same answer")

        # A system message is prepended to the first user turn; a second image is refused.
        r = client.chat.completions.create(model="x", messages=[{"role": "system", "content": "Be brief."}] + messages(),
                                           max_tokens=4, temperature=0)
        check(r.usage.prompt_tokens > 4, "a system message is accepted")
        two = messages() + [{"role": "assistant", "content": "red"}] + messages("And now?")
        st, body = curl(port, "-H", "Authorization: Bearer " + KEY, "-H", "Content-Type: application/json",
                        "-d", json.dumps({"messages": two}))
        check(st == 400 and b"one image" in body, f"a second image: 400 ({body[:100]!r})")

        # Bad requests with curl: status and OpenAI's error shape, and the server stays up.
        auth = ["-H", "Authorization: Bearer " + KEY, "-H", "Content-Type: application/json"]
        cases = [
            ("malformed JSON", auth + ["-d", '{"messages": [{"role": "user", "content": "hi"}'], 400),
            ("not an object", auth + ["-d", '[1, 2]'], 400),
            ("wrong type of temperature", auth + ["-d", json.dumps({"messages": messages(), "temperature": "hot"})], 400),
            ("wrong type of messages", auth + ["-d", json.dumps({"messages": "hi"})], 400),
            ("max_tokens 0", auth + ["-d", json.dumps({"messages": messages(), "max_tokens": 0})], 400),
            ("n = 2", auth + ["-d", json.dumps({"messages": messages(), "n": 2})], 400),
            ("unknown field", auth + ["-d", json.dumps({"messages": messages(), "temprature": 0})], 400),
            ("oversized body", auth + ["-d", json.dumps({"messages": messages("x" * 70000)})], 413),
            ("a non-image data URL", auth + ["-d", json.dumps({"messages": messages(
                url="data:text/plain;base64," + base64.b64encode(b"hello").decode())})], 400),
            ("an image URL with bytes that are no image", auth + ["-d", json.dumps({"messages": messages(
                url="data:image/png;base64," + base64.b64encode(b"\x89PNG\r\n\x1a\nnot really").decode())})], 400),
            ("a corrupt PNG", auth + ["-d", json.dumps({"messages": messages(
                url="data:image/png;base64," + base64.b64encode(open(IMAGE, "rb").read()[:200]).decode())})], 400),
            ("invalid base64", auth + ["-d", json.dumps({"messages": messages(url="data:image/png;base64,@@@@")})], 400),
            ("a remote image URL", auth + ["-d", json.dumps({"messages": messages(url="http://example.com/a.png")})], 400),
            ("a local path", auth + ["-d", json.dumps({"messages": messages(url=IMAGE)})], 400),
            ("a file URL", auth + ["-d", json.dumps({"messages": messages(url="file:///etc/passwd")})], 400),
            ("a bad key", ["-H", "Authorization: Bearer wrong", "-d", json.dumps({"messages": messages()})], 401),
            ("no key", ["-d", json.dumps({"messages": messages()})], 401),
            ("last message from the assistant", auth + ["-d", json.dumps(
                {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]})], 400),
        ]
        for what, args, want in cases:
            st, body = curl(port, *args)
            try:
                err = json.loads(body)["error"]
                shaped = isinstance(err["message"], str) and "type" in err
            except Exception:
                shaped = False
            check(st == want and shaped, f"{what}: {st} (want {want}) with an error object: {body[:120]!r}")
            check(healthy(port), f"  ... and the server is up")
        st, _, body = http(port, "GET", "/v1/nothing")
        check(st == 404 and b"error" in body, "unknown path: 404")
        st, _, body = http(port, "POST", "/v1/completions", json.dumps({"prompt": "hello"}))
        check(st == 400 and b"vision-language" in body, "completions on a vision-language model: 400")

        # 16 concurrent clients, each its complete answer (4 decode together, the rest wait).
        def one(i):
            c = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key=KEY, max_retries=0, timeout=300)
            if i % 2:
                r = c.chat.completions.create(model="x", messages=messages(), max_tokens=24, temperature=0,
                                              extra_body={"return_token_ids": True})
                return r.choices[0].model_extra.get("token_ids"), r.choices[0].message.content
            text = "".join(ch.choices[0].delta.content or "" for ch in c.chat.completions.create(
                model="x", messages=messages(), max_tokens=24, temperature=0, stream=True) if ch.choices)
            return greedy_ids, text
        with concurrent.futures.ThreadPoolExecutor(16) as ex:
            results = list(ex.map(one, range(16)))
        good = sum(1 for ids, text in results if ids == greedy_ids and text == greedy_text)
        check(good == 16, f"16 concurrent clients: {good} complete, correct answers")

        # Requests with different options decoding in one batched step get the answers they get alone:
        # greedy with different limits, seeded sampling, a frequency penalty.
        def varied(i):
            c = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key=KEY, max_retries=0, timeout=300)
            opts = [dict(temperature=0, max_tokens=5 + 3 * i), dict(temperature=0.9, seed=100 + i, max_tokens=20),
                    dict(temperature=0, max_tokens=20, frequency_penalty=1.5)][i % 3]
            r = c.chat.completions.create(model="x", messages=messages(), extra_body={"return_token_ids": True},
                                          **opts)
            return r.choices[0].model_extra.get("token_ids")
        alone = [varied(i) for i in range(6)]
        with concurrent.futures.ThreadPoolExecutor(6) as ex:
            together = list(ex.map(varied, range(6)))
        check(together == alone and len(set(map(tuple, alone))) > 3,
              f"6 requests with different options, batched, answer as each alone: {together} vs {alone}")

        # A bounded loop of random requests: mangled bodies, random types and values. The server answers
        # each (200 or a 4xx with an error object) and stays up.
        rng = random.Random(1234)
        valid = json.dumps({"messages": messages(), "max_tokens": 2, "temperature": 0})
        values = [None, True, -1, 0, 1, 2.5, 1e308, -1e308, 2**63, "", "x", [], {}, [1], {"a": 1}, "\u0000", "\ud800"]
        keys = ["messages", "max_tokens", "temperature", "top_p", "seed", "stop", "stream", "n", "model",
                "repetition_penalty", "top_k", "stream_options", "response_format", "logit_bias", "zzz"]
        statuses = {}
        for i in range(150):
            kind = i % 3
            if kind == 0:  # byte-level damage of a valid body
                b = bytearray(valid.encode())
                for _ in range(rng.randint(1, 8)):
                    p = rng.randrange(len(b))
                    b[p] = rng.randrange(256)
                body = bytes(b[:rng.randint(0, len(b))] if rng.random() < 0.3 else b)
            elif kind == 1:  # random values for the known keys
                d = json.loads(valid)
                d[rng.choice(keys)] = rng.choice(values)
                if rng.random() < 0.5:
                    d["messages"] = rng.choice([values, [{"role": rng.choice(["user", "system", "x", 1]),
                                                          "content": rng.choice(values)}]])
                body = json.dumps(d).encode()
            else:  # random content parts
                part = rng.choice([{"type": "image_url", "image_url": rng.choice(values)},
                                   {"type": rng.choice(values), "text": "a"},
                                   {"type": "image_url", "image_url": {"url": "data:image/" + rng.choice(
                                       ["png;base64,", "jpeg;base64,/9j/", "png,", "x"]) + rng.choice(["", "AAAA", "===="])}}])
                body = json.dumps({"messages": [{"role": "user", "content": [part]}], "max_tokens": 2}).encode()
            st, _, resp = http(port, "POST", "/v1/chat/completions", body)
            statuses[st] = statuses.get(st, 0) + 1
            if st != 200 and not (400 <= st < 500 and b'"error"' in resp):
                check(False, f"random request {i}: status {st}, body {resp[:200]!r}")
        check(healthy(port), f"150 random requests answered {statuses}; the server is up")

        st, _, body = http(port, "GET", "/metrics")
        text = body.decode()
        check(st == 200 and "tinyvlm_completion_tokens_total" in text and "tinyvlm_queue_depth" in text and
              "tinyvlm_time_to_first_token_seconds_count" in text, "GET /metrics: Prometheus text")
        check(http(port, "GET", "/metrics", auth=False)[0] == 401, "GET /metrics needs the key")
        check(proc.poll() is None, "the server is still running")
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
    check(proc.returncode == 0, f"the server stops cleanly on SIGTERM (exit {proc.returncode})")
    busy_and_gone()
    no_batch(greedy_ids)
    text_model()
    if failures:
        print(f"{len(failures)} check(s) failed")
        sys.exit(1)
    print("all server checks passed")


if __name__ == "__main__":
    main()
