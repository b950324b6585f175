"""Acceptance: the bertviz export and the report render in a real browser with no network.

Headless Chromium from the Debian packages is installed when missing (we are root), and the
test FAILS, never skips, when it cannot be had. Each page is opened with every network route
closed (proxy to a dead port, no loopback bypass, no background services), the DOM is dumped
after a virtual-time budget, and the console log is read back from Chromium's stderr.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from headscope import inspect
from headscope.viz import report, to_bertviz

CHROMIUM = "/usr/bin/chromium"
FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-default-apps", "--disable-extensions", "--no-default-browser-check",
    # no network: every request goes to a dead proxy, loopback included, and names do not resolve
    "--proxy-server=127.0.0.1:9", "--proxy-bypass-list=<-loopback>",
    "--host-resolver-rules=MAP * ~NOTFOUND",
    "--enable-logging=stderr", "--v=0", "--virtual-time-budget=8000",
]


@pytest.fixture(scope="session")
def chromium() -> str:
    path = CHROMIUM if os.path.exists(CHROMIUM) else shutil.which("chromium")
    if path:
        return path
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        pytest.fail("headless Chromium is needed for the browser tests and is not installed; run "
                    "`apt-get update && apt-get install -y chromium` as root (these tests never skip)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (["apt-get", "update"], ["apt-get", "install", "-y", "--no-install-recommends", "chromium"]):
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=1200)
        if done.returncode != 0:
            pytest.fail(f"could not install Chromium ({' '.join(cmd)} exited {done.returncode}):\n{done.stderr[-2000:]}")
    if not os.path.exists(CHROMIUM):
        pytest.fail("apt-get installed chromium but /usr/bin/chromium is missing")
    return CHROMIUM


def render(chromium: str, page: Path) -> tuple[str, list[str]]:
    """``(DOM after scripts ran, console messages)`` of ``page`` opened offline."""
    with tempfile.TemporaryDirectory(prefix="hs-chromium-") as profile:
        done = subprocess.run([chromium, *FLAGS, f"--user-data-dir={profile}", "--dump-dom", page.resolve().as_uri()],
                              capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    console = [line for line in done.stderr.splitlines() if ":CONSOLE" in line]
    return done.stdout, console


def errors(console: list[str]) -> list[str]:
    return [line for line in console if "ERROR:CONSOLE" in line or "Uncaught" in line or "Error" in line]


def bertviz_lines(dom: str) -> int:
    """Attention lines drawn by bertviz (head view: inside <g id="attention">; model view: thumbnails)."""
    return len(re.findall(r"<line\b", dom))


@pytest.fixture(scope="module")
def insp(tiny):
    model, tok = tiny("marian")
    return inspect((model, tok), "A man in a red shirt .".split(), target="Un homme en chemise rouge .".split(),
                   is_split_into_words=True)


def test_network_is_really_unreachable(chromium, tmp_path, insp):
    """Control: bertviz's own page (scripts from cdnjs) draws nothing under these flags."""
    import bertviz

    raw = bertviz.head_view(encoder_attention=list(insp.attentions["encoder"][:, None]),
                            encoder_tokens=insp.source_tokens, html_action="return").data
    path = tmp_path / "cdn.html"
    path.write_text(f"<!DOCTYPE html><html><body>{raw}</body></html>", encoding="utf-8")
    dom, console = render(chromium, path)
    assert bertviz_lines(dom) == 0
    assert errors(console), "a page that needs the CDN should fail offline"


@pytest.mark.parametrize("view", ["head", "model"])
def test_bertviz_export_renders_offline(chromium, tmp_path, insp, view):
    path = tmp_path / f"{view}.html"
    to_bertviz(insp, view, path=path)
    dom, console = render(chromium, path)
    assert not errors(console), console
    assert '<select id="layer"' in dom or view == "model"
    assert re.search(r'<select id="filter">', dom)  # encoder / decoder / cross selector
    assert "<svg" in dom
    assert bertviz_lines(dom) > 0
    if view == "head":
        assert any("d3 version 5.7.0" in line for line in console)  # the inlined d3 ran
        n_src = len(insp.source_tokens)
        assert bertviz_lines(dom) >= n_src * n_src  # encoder view of layer 0: one line per token pair (per head)
        # readable at its default size: the lines span 360 px (bertviz's own: 115), 3 px wide
        spans = {round(float(b) - float(a)) for a, b in re.findall(r'<line x1="([\d.]+)"[^>]*?x2="([\d.]+)"', dom)}
        assert spans == {360}, spans
        assert 'stroke-width="3"' in dom


def test_report_renders_offline(chromium, tmp_path, insp):
    path = report(insp, tmp_path / "report.html", gold="0-0 1-1 2-2 4-4 5-3 3p2 6-5")
    dom, console = render(chromium, path)
    assert not errors(console), console
    assert "Un homme en chemise rouge ." in dom.split("</header>")[0]
    for claim in ("alignment", "plausible", "faithful"):
        assert f'data-claim="{claim}"' in dom
    assert len(re.findall(r'<img src="data:image/png;base64,', dom)) >= 6
    views = dom.split('class="headscope-bertviz"')
    assert len(views) == 3  # head and model view
    assert all(bertviz_lines(v.split("</section>")[0]) > 0 for v in views[1:])  # both drew attention
    assert "Not applicable" not in dom and "Not computed" not in dom  # every section applies and ran
    for claim in ("faithful", "fragmentation"):
        assert "<img" in dom.split(f'data-claim="{claim}"')[1].split("</section>")[0]
