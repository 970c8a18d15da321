#!/usr/bin/env python3
"""Renders report.html pages in a headless browser (Debian's chromium) and checks the screenshots: a
single run, three runs overlaid (including a DPO run's accuracy and rewards), each built by
`tinyvlm report` from the committed metrics fixtures (tests/fixtures/report, made by
scripts/fixtures/report_fixtures.py). A screenshot must exist, have the window's size, not be blank, and
show the plot colours of every run. Exits 77 (skipped) only when no chromium is installed.

    test_report_render.py TINYVLM_BIN FIXTURE_DIR
"""
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import zlib

WIDTH, HEIGHT = 1200, 900
# The report's palette: the first run's colour, the second's, the third's (report/html_report.cpp).
BLUE, ORANGE, GREEN = (0x1F, 0x77, 0xB4), (0xFF, 0x7F, 0x0E), (0x2C, 0xA0, 0x2C)


def read_png(path):
    """(width, height, rows of (r, g, b) tuples) of an 8-bit RGB or RGBA non-interlaced PNG (stdlib only)."""
    data = open(path, "rb").read()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError(f"{path}: not a PNG")
    pos, idat, w = 8, b"", 0
    while pos < len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + n]
        pos += 12 + n
        if kind == b"IHDR":
            w, h, depth, ctype, _, _, interlace = struct.unpack(">IIBBBBB", body)
            if depth != 8 or ctype not in (2, 6) or interlace:
                raise ValueError(f"{path}: expected 8-bit RGB(A), got depth {depth} type {ctype} interlace {interlace}")
            bpp = 3 if ctype == 2 else 4
        elif kind == b"IDAT":
            idat += body
        elif kind == b"IEND":
            break
    raw = zlib.decompress(idat)
    stride = w * bpp
    rows, prev = [], bytearray(stride)
    for y in range(h):
        f = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b = prev[i]
            c = prev[i - bpp] if i >= bpp else 0
            if f == 1:
                line[i] = (line[i] + a) & 255
            elif f == 2:
                line[i] = (line[i] + b) & 255
            elif f == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append([tuple(line[x * bpp:x * bpp + 3]) for x in range(w)])
        prev = line
    return w, h, rows


def find_chromium():
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    return None


def screenshot(chromium, html, png, work):
    cmd = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run",
           f"--user-data-dir={os.path.join(work, 'profile')}", f"--window-size={WIDTH},{HEIGHT}",
           f"--screenshot={png}", "file://" + os.path.abspath(html)]
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=120)
    if r.returncode != 0 or not os.path.exists(png):
        raise SystemExit(f"FAIL: chromium did not write {png} (exit {r.returncode}):\n{r.stdout.decode(errors='replace')[-2000:]}")


def near(p, c, tol=40):
    return abs(p[0] - c[0]) + abs(p[1] - c[1]) + abs(p[2] - c[2]) <= tol


def check(png, colours, what):
    w, h, rows = read_png(png)
    if (w, h) != (WIDTH, HEIGHT):
        raise SystemExit(f"FAIL: {what}: screenshot is {w}x{h}, expected {WIDTH}x{HEIGHT}")
    nonwhite = sum(1 for row in rows for p in row if sum(p) < 3 * 235)
    share = nonwhite / (w * h)
    counts = {c: sum(1 for row in rows for p in row if near(p, c)) for c in colours}
    print(f"{what}: {w}x{h}, {100 * share:.1f}% non-white pixels, plot colours "
          + ", ".join(f"#{c[0]:02x}{c[1]:02x}{c[2]:02x}: {n}" for c, n in counts.items()))
    if share < 0.02:
        raise SystemExit(f"FAIL: {what}: the page looks blank ({100 * share:.2f}% non-white pixels)")
    for c, n in counts.items():
        if n < 200:
            raise SystemExit(f"FAIL: {what}: the colour #{c[0]:02x}{c[1]:02x}{c[2]:02x} shows on {n} pixels only")
    # The plots are drawn across the page, not only in a corner: the left and the right half both hold ink.
    left = sum(1 for row in rows for p in row[: w // 2] if near(p, colours[0]))
    right = sum(1 for row in rows for p in row[w // 2:] if any(near(p, c) for c in colours))
    if left < 50 or right < 50:
        raise SystemExit(f"FAIL: {what}: plot colours only on one side ({left} left, {right} right)")


def main():
    tinyvlm, fixtures = sys.argv[1], sys.argv[2]
    chromium = find_chromium()
    if not chromium:
        print("SKIPPED: chromium is not installed (Debian: apt-get install chromium; scripts/install_deps.sh --test does)")
        return 77
    work = tempfile.mkdtemp(prefix="tinyvlm_report_render_")
    try:
        runs = os.path.join(fixtures, "report")
        for name in ("run_a", "run_b", "dpo"):
            shutil.copytree(os.path.join(runs, name), os.path.join(work, name))
        subprocess.run([tinyvlm, "report", os.path.join(work, "run_a")], check=True)
        single = os.path.join(work, "run_a", "report.html")
        overlay = os.path.join(work, "overlay.html")
        subprocess.run([tinyvlm, "report", os.path.join(work, "run_a"), os.path.join(work, "run_b"),
                        os.path.join(work, "dpo"), "--out", overlay], check=True)
        screenshot(chromium, single, os.path.join(work, "single.png"), work)
        check(os.path.join(work, "single.png"), [BLUE, ORANGE], "one run")
        screenshot(chromium, overlay, os.path.join(work, "overlay.png"), work)
        check(os.path.join(work, "overlay.png"), [BLUE, ORANGE, GREEN], "three runs overlaid")
        html = open(overlay, encoding="utf-8").read()
        for title in ("Preference accuracy", "Rewards", "Reward margin", "seq_tokens"):
            if title not in html:
                raise SystemExit(f"FAIL: the overlay has no '{title}' plot")
        print("PASS")
        return 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
