#!/usr/bin/env python3
"""Makes docs/demo_report.png, the README's picture of the demo's report, from runs/demo/report.html of a
real `tinyvlm demo` run: the page is rendered by headless chromium with a few rules added to its style so
that it fits one picture (the first row of plots of each phase, phase 2 and phase 1's generated text left
out, phase 3's first ten answers), then scaled to 900 pixels wide (with a 256-colour palette when full
colour would pass 190 KB). Needs chromium and pillow (for the scaling only).

    python3 scripts/docs_report_picture.py runs/demo/report.html docs/demo_report.png
"""
import os
import subprocess
import sys
import tempfile

from PIL import Image

WIDTH = 1200
FIT = """<style>
section:nth-of-type(2), section:nth-of-type(1) h3, section:nth-of-type(1) table.samples { display: none }
.plots svg:nth-child(n+3) { display: none }
table.samples tr:nth-child(n+12) { display: none }
</style>
</head>"""


def main():
    report, out = sys.argv[1], sys.argv[2]
    html = open(report, encoding="utf-8").read().replace("</head>", FIT, 1)
    with tempfile.TemporaryDirectory() as work:
        page_html, shot = os.path.join(work, "page.html"), os.path.join(work, "page.png")
        open(page_html, "w", encoding="utf-8").write(html)
        subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                        f"--user-data-dir={os.path.join(work, 'profile')}", f"--window-size={WIDTH},3000",
                        f"--screenshot={shot}", "file://" + page_html],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        page = Image.open(shot).convert("RGB")
    # Cut the empty space below the page's last content.
    px = page.load()
    bottom = max(y for y in range(page.height) if any(sum(px[x, y]) < 600 for x in range(0, WIDTH, 3)))
    # And at the right of the widest content.
    right = max(x for x in range(WIDTH) if any(sum(px[x, y]) < 600 for y in range(0, bottom, 3)))
    page = page.crop((0, 0, min(WIDTH, right + 24), bottom + 24))
    scale = 900 / page.width
    picture = page.resize((900, int(page.height * scale)), Image.LANCZOS)
    picture.save(out, optimize=True)
    if os.path.getsize(out) > 190 * 1024:  # too big in full colour: a palette keeps it small
        picture.quantize(colors=256, method=Image.Quantize.FASTOCTREE).save(out, optimize=True)
    picture = Image.open(out)
    print(f"{out}: {picture.width}x{picture.height}, {os.path.getsize(out) // 1024} KB")


if __name__ == "__main__":
    main()
