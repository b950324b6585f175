"""Write the headscope report for the default translator on an adjective-noun reordering sentence.

    python examples/report_default.py [--out headscope-out/report/default] [--screenshot docs/img/report.png]

"A man in a red shirt is riding a bike." -> "... chemise rouge ...": English puts the adjective
before the noun, French after it, so a good cross-attention map shows crossing links there.
The report opens offline in any browser. With ``--screenshot`` headless Chromium (Debian
package ``chromium``) also takes a picture of the page's top for the README.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import tempfile
from pathlib import Path

import headscope
import headscope.viz

SOURCE = "A man in a red shirt is riding a bike ."
TARGET = "Un homme en chemise rouge fait du vélo ."
# Gold word links for this pair (source index - target index, 0-based, whitespace words):
# A-Un man-homme in-en red-rouge shirt-chemise riding-fait bike-vélo .-. (sure);
# a~en is~fait riding~du/vélo a~du (possible).
GOLD = "0-0 1-1 2-2 4-4 5-3 7-5 9-7 10-8 3p2 6p5 7p6 7p7 8p6"


def main() -> None:
    """Inspect the sentence pair, write the report and, if asked, its screenshot."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="headscope-out/report/default", help="folder for report.html")
    parser.add_argument("--model", default=headscope.DEFAULT_MODEL)
    parser.add_argument("--screenshot", help="also save a PNG screenshot of the report here")
    parser.add_argument("--generate", action="store_true",
                        help="let the model translate instead of forcing the reference (then no gold scoring)")
    args = parser.parse_args()

    if args.generate:
        insp = headscope.inspect(args.model, SOURCE)
        gold = None
    else:
        insp = headscope.inspect(args.model, SOURCE.split(), target=TARGET.split(), is_split_into_words=True)
        gold = GOLD
    print(insp.summary())
    path = headscope.viz.report(insp, args.out, gold=gold)
    print(f"report: {path}")
    if args.screenshot:
        screenshot(path, Path(args.screenshot))
        print(f"screenshot: {args.screenshot}")


def screenshot(page: Path, png: Path, size: str = "1200,1600") -> None:
    """Headless Chromium picture of the top of ``page`` with the network closed.

    Parameters
    ----------
    page
        The report to open.
    png
        Where the screenshot goes.
    size
        Window size ``"width,height"`` in pixels.
    """
    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    png.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                        "--no-first-run", "--disable-background-networking", "--proxy-server=127.0.0.1:9",
                        "--proxy-bypass-list=<-loopback>", f"--user-data-dir={profile}",
                        f"--window-size={size}", "--virtual-time-budget=8000",
                        f"--screenshot={png.resolve()}", page.resolve().as_uri()],
                       check=True, capture_output=True, timeout=180)


if __name__ == "__main__":
    main()
