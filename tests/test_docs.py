"""Every code block and command of README.md and docs/*.md runs, on the shipped models, so the docs stay true.

The rule (also stated in the README, "The docs are tested"):

* ```` ```python ```` blocks of one file run in order, in one namespace, in a scratch copy of the
  repository (its working directory), with one torch thread;
* every command of a ```` ```bash ```` block runs there too: ``headscope ...`` through the
  command's entry point (:func:`headscope.cli.main`), ``python examples/...``,
  ``python benchmarks/...`` and ``python training/...`` as scripts (``runpy``, as ``python`` runs
  them, in the test's interpreter so that start-up and loaded models are shared). ``pip install`` and
  ``python -m pytest`` are what CI itself runs (``.ci/run``, checked by ``tests/test_readme.py``);
* **budget options**: the number after an option in :data:`BUDGET` is replaced by the small one
  there, so that a training run or a full study runs for seconds, the same code on less data.
  Nothing else is changed and no block is skipped.

A command that is none of these, or a fenced block with no language that holds commands, fails
the test: a command a reader is meant to run belongs in a ``bash`` block, where it is run.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from test_viz_browser import chromium  # noqa: F401  (the fixture: Chromium for the README screenshot)

ROOT = Path(__file__).resolve().parents[1]
FILES = ["README.md", *sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "docs").glob("*.md"))]

#: Budget options and the value the test gives them (whatever the docs say).
BUDGET = {
    "--minutes": "0.05", "--steps": "2", "--limit": "4", "--sentences": "2", "--reviews": "4",
    "--hansards": "6", "--multi30k": "4", "--repeats": "1", "--eval-n": "4", "--eval-minutes": "0.05",
    "--sizes": "8", "--max-ref-n": "8", "--ablation-texts": "2",
    "--pool": "256", "--validation": "40", "--test": "60", "--images": "12", "--faithful-images": "3",
    "--grad-sentences": "2", "--aligner-pairs": "50", "--translations": "1",
    "--lengths": "64", "--long-tokens": "128",
}
SCRIPT_DIRS = ("examples/", "benchmarks/", "training/")
RUN_BY_CI = (("pip",), ("python", "-m", "pytest"))

_FENCE = re.compile(r"^```([\w+-]*)[^\n]*\n(.*?)^```[ \t]*$", re.S | re.M)
_COMMANDISH = re.compile(r"^\s*(\$ |headscope |python |pip )", re.M)


def blocks(path: str) -> list[tuple[str, str]]:
    """``(language, code)`` of every fenced block of ``path``, in order."""
    return [(m.group(1).lower(), m.group(2)) for m in _FENCE.finditer((ROOT / path).read_text(encoding="utf-8"))]


def commands(code: str) -> list[list[str]]:
    """The commands of a bash block: continuation lines joined, comments dropped, ``&&`` chains split."""
    out = []
    for line in code.replace("\\\n", " ").splitlines():
        for part in re.split(r"\s&&\s", line):
            words = shlex.split(part, comments=True)
            if words:
                out.append(words)
    return out


def with_budget(words: list[str]) -> list[str]:
    """``words`` with the value of every budget option replaced (``--limit 447`` -> ``--limit 4``)."""
    out = list(words)
    for i, word in enumerate(out[:-1]):
        if word in BUDGET:
            out[i + 1] = BUDGET[word]
            j = i + 2  # an option with several numbers (--sizes 8 16 24) keeps one
            while j < len(out) and re.fullmatch(r"-?\d+(\.\d+)?", out[j]):
                out[j] = ""
                j += 1
    return [w for w in out if w != ""]


def kind_of(words: list[str]) -> str:
    """``"cli"``, ``"script"`` or ``"ci"``; anything else is not a command the docs may show."""
    if any(tuple(words[:len(prefix)]) == prefix for prefix in RUN_BY_CI):
        return "ci"
    if words[0] == "headscope":
        return "cli"
    if words[0] == "python" and len(words) > 1 and words[1].startswith(SCRIPT_DIRS):
        return "script"
    raise AssertionError(f"not a command the docs test can run: {shlex.join(words)!r} (use headscope ..., "
                         f"python examples|benchmarks|training/..., in a bash block)")


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory) -> Path:
    """A scratch copy of the repository (tracked and new files), beside a link to the shared data."""
    top = tmp_path_factory.mktemp("docs")
    repo = top / ROOT.name
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT, capture_output=True,
                            check=True).stdout.decode().split("\0")
    for name in filter(None, listed):
        src = ROOT / name
        if src.is_file():
            (repo / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, repo / name)
    if (ROOT.parent / "shared").is_dir():
        (top / "shared").symlink_to(ROOT.parent / "shared")
    return repo


def run_cli(words: list[str], cwd: Path) -> str:
    """``headscope ...`` through :func:`headscope.cli.main` in ``cwd``; its output, exit status 0 asserted."""
    from headscope.cli import main

    out, err = io.StringIO(), io.StringIO()
    here = os.getcwd()
    os.chdir(cwd)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(words[1:])
            except SystemExit as stop:  # --help, --version
                code = stop.code or 0
    finally:
        os.chdir(here)
    assert code == 0, f"{shlex.join(words)} exited {code}:\n{err.getvalue()[-3000:]}"
    return out.getvalue()


def run_script(words: list[str], cwd: Path) -> str:
    """``python <script> ...`` in ``cwd``, as ``python`` would run it (``runpy``, ``__name__ ==
    "__main__"``, ``sys.argv`` and ``sys.path[0]`` set), but in this interpreter: the start-up and
    the loaded models are shared between commands. Exit status 0 asserted; torch threads restored."""
    import runpy

    import torch

    script = cwd / words[1]
    assert script.is_file(), f"{words[1]} does not exist"
    out, err = io.StringIO(), io.StringIO()
    saved = (os.getcwd(), list(sys.argv), list(sys.path), torch.get_num_threads())
    os.chdir(cwd)
    sys.argv = [str(script), *words[2:]]
    sys.path.insert(0, str(script.parent))
    code: object = 0
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                runpy.run_path(str(script), run_name="__main__")
            except SystemExit as stop:
                code = stop.code or 0
    finally:
        os.chdir(saved[0])
        sys.argv, sys.path[:] = saved[1], saved[2]
        torch.set_num_threads(saved[3])
    assert code == 0, f"{shlex.join(words)} exited {code}:\n{err.getvalue()[-3000:]}"
    return out.getvalue()


def run_file(path: str, repo: Path) -> list[str]:
    """Run every block of ``path`` in ``repo``; one line per block or command run, with its time."""
    import torch

    ran: list[str] = []
    namespace: dict = {"__name__": "__docs__"}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for i, (language, code) in enumerate(blocks(path)):
            start = time.perf_counter()
            if language == "python":
                here = os.getcwd()
                os.chdir(repo)
                try:
                    with contextlib.redirect_stdout(io.StringIO()):
                        exec(compile(code, f"{path} (python block {i + 1})", "exec"), namespace)
                finally:
                    os.chdir(here)
                ran.append(f"python block {i + 1}  ({time.perf_counter() - start:.1f} s)")
            elif language in ("bash", "sh", "shell", "console"):
                for words in commands(code):
                    kind = kind_of(words)
                    if kind == "ci":
                        continue
                    words = with_budget(words)
                    start = time.perf_counter()
                    (run_cli if kind == "cli" else run_script)(words, repo)
                    ran.append(f"{shlex.join(words)}  ({time.perf_counter() - start:.1f} s)")
                continue
            else:
                assert not _COMMANDISH.search(code), (
                    f"{path}: a fenced block with no language holds commands; tag it bash (or python) so that "
                    f"it is run:\n{code[:300]}")
    finally:
        torch.set_num_threads(threads)
    return ran


def test_rule_helpers():
    assert commands('a \\\n  --x 1 && headscope models  # comment\n# only a comment\n') == [
        ["a", "--x", "1"], ["headscope", "models"]]
    assert with_budget(["python", "benchmarks/flow.py", "--sizes", "8", "16", "24", "--minutes", "75", "--out",
                        "x"]) == ["python", "benchmarks/flow.py", "--sizes", "8", "--minutes", "0.05", "--out", "x"]
    assert kind_of(["pip", "install", "-e", "."]) == "ci" and kind_of(["headscope", "models"]) == "cli"
    with pytest.raises(AssertionError, match="not a command"):
        kind_of(["rm", "-rf", "/"])


def test_commands_are_in_tagged_blocks():
    """No command hides in prose as an indented block: every one a reader should run is in a bash block."""
    for path in FILES:
        text = _FENCE.sub("", (ROOT / path).read_text(encoding="utf-8"))
        hidden = [line for line in text.splitlines() if re.match(r"^( {4,}|\t)(\$ |headscope |python |pip )", line)]
        assert not hidden, f"{path}: commands in an indented block, put them in a ```bash block: {hidden}"


def test_readme_screenshot_is_made_by_a_readme_command():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    image = re.search(r"!\[[^\]]*\]\((docs/img/[^)]+\.png)\)", text)
    assert image, "the README shows the report screenshot"
    shown = [words for lang, code in blocks("README.md") if lang == "bash" for words in commands(code)]
    assert ["python", "examples/report_default.py", "--screenshot", image.group(1)] in shown


def test_readme_python_uses_the_current_api():
    python = "\n".join(code for lang, code in blocks("README.md") if lang == "python")
    for gone in ("insp.rollout(", "insp.report(", "insp.head_ablation(", "insp.token_importance(",
                 "insp.fragmentation(", "insp.to_bertviz(", "insp.align("):
        assert gone not in python, f"the README still calls {gone}...), which the Inspection no longer has"


@pytest.mark.slow
@pytest.mark.parametrize("path", FILES)
def test_doc_runs(path, sandbox, request):
    if any("--screenshot" in code for lang, code in blocks(path) if lang == "bash"):
        request.getfixturevalue("chromium")
    ran = run_file(path, sandbox)
    print(f"{path}:", *ran, sep="\n  ")


def test_results_print_short_summaries_and_convert_to_rows(tiny):
    """The README's promise for every result: a few lines printed, a one-line repr, a table, rows."""
    from headscope import inspect
    from headscope.faithful import compare_rankings, faithfulness_report, head_ablation, token_importance
    from headscope.fragment import fragmentation

    insp = inspect(tiny("marian"), "A man in a red shirt.", target="Un homme en chemise rouge.")
    results = [head_ablation(insp), token_importance(insp, "loo"), compare_rankings(insp),
               faithfulness_report(insp, ablation_texts=0), fragmentation(insp)]
    for result in results:
        name = type(result).__name__
        assert 1 <= len(str(result).splitlines()) <= 12, f"{name} prints {len(str(result).splitlines())} lines"
        assert "\n" not in repr(result) and len(repr(result)) < 200, name
        assert isinstance(result.table(), str) and result.table(), name
        rows = result.to_rows()
        assert rows and all(isinstance(r, dict) and r.keys() == rows[0].keys() for r in rows), name
        assert "▁" not in str(result), f"{name} prints subword markers"
