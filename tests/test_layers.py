"""The package's layering holds: the import-linter contracts in pyproject.toml are kept."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_import_contracts_are_kept():
    exe = shutil.which("lint-imports") or str(Path(sys.executable).with_name("lint-imports"))
    run = subprocess.run([exe, "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "0 broken" in run.stdout


def test_a_broken_layer_is_caught(tmp_path):
    """The contract is live: a lower layer importing a higher one breaks it."""
    (tmp_path / "pyproject.toml").write_text((ROOT / "pyproject.toml").read_text(encoding="utf-8"), encoding="utf-8")
    pkg = tmp_path / "src"
    shutil.copytree(ROOT / "src" / "headscope", pkg / "headscope",
                    ignore=shutil.ignore_patterns("weights", "data", "static", "__pycache__"))
    bad = pkg / "headscope" / "errors.py"
    bad.write_text(bad.read_text(encoding="utf-8") + "\n\ndef _bad():\n    from .viz import figures  # noqa\n",
                   encoding="utf-8")
    exe = shutil.which("lint-imports") or str(Path(sys.executable).with_name("lint-imports"))
    env = {"PYTHONPATH": str(pkg), "PATH": str(Path(sys.executable).parent)}
    run = subprocess.run([exe, "--no-cache"], cwd=tmp_path, capture_output=True, text=True, timeout=300, env=env)
    assert run.returncode != 0 and "BROKEN" in run.stdout


def test_the_architecture_page_draws_the_contracts_layers_in_order():
    import re
    import tomllib

    layers = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["importlinter"]
    order = [name.removeprefix("headscope.") for name in layers["contracts"][0]["layers"]]
    page = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    diagram = page.split("```\n", 2)[1]
    drawn = [re.sub(r"\.py$|/$", "", word) for word in re.findall(r"\b[a-z_]+(?:/|\.py)", diagram)]
    drawn = [w for w in drawn if w in order]
    assert drawn == order, (drawn, order)
