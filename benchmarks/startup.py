"""The first minute of a user: how long `import headscope`, `headscope --help`, `headscope models`
and a first `headscope inspect` take, each in a fresh process, against the baseline of a bare
`python -c pass` (interpreter start), of `import torch` / `import transformers`, and of the floor
under `headscope inspect` (the same model loaded and run by transformers alone), measured in the
same run.

    python benchmarks/startup.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

# The floor under `headscope inspect`: the same model loaded and run by transformers alone, no headscope.
TRANSFORMERS_ALONE = (
    "import torch; from importlib import resources; from transformers import AutoModelForSeq2SeqLM, AutoTokenizer; "
    "p = str(resources.files('headscope') / 'models' / 'weights' / 'en-fr'); "
    "m = AutoModelForSeq2SeqLM.from_pretrained(p, dtype=torch.float32); t = AutoTokenizer.from_pretrained(p); "
    "print(t.decode(m.generate(**t('A man in a red shirt is riding a bike.', return_tensors='pt'))[0]))")
CASES = {
    "python -c pass (baseline)": [sys.executable, "-c", "pass"],
    "import torch (reference)": [sys.executable, "-c", "import torch"],
    "import transformers (reference)": [sys.executable, "-c", "import transformers"],
    "transformers alone: load en-fr + translate (floor)": [sys.executable, "-c", TRANSFORMERS_ALONE],
    "import headscope": [sys.executable, "-c", "import headscope"],
    "headscope --help": [sys.executable, "-m", "headscope.cli", "--help"],
    "headscope models": [sys.executable, "-m", "headscope.cli", "models"],
    "headscope inspect (default model)": [sys.executable, "-m", "headscope.cli", "inspect",
                                          "A man in a red shirt is riding a bike."],
    "headscope inspect Helsinki-NLP/opus-mt-en-fr (unreachable)": [
        sys.executable, "-m", "headscope.cli", "inspect", "Helsinki-NLP/opus-mt-en-fr", "A dog."],
}
GOALS = {"import headscope": 1.0, "headscope --help": 1.0, "headscope models": 1.0,
         "headscope inspect (default model)": 5.0, "headscope inspect Helsinki-NLP/opus-mt-en-fr (unreachable)": 3.0}


def timed(cmd: list[str]) -> float:
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    start = time.perf_counter()
    subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, check=False)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="fresh processes per case (median reported)")
    args = parser.parse_args()
    for cmd in CASES.values():  # warm the file cache once
        timed(cmd)
    base = None
    print(f"median of {args.repeats} fresh processes; load average {os.getloadavg()[0]:.1f}\n")
    print("| command | median s | min s | over `python -c pass` | goal |\n|---|---:|---:|---:|---|")
    for name, cmd in CASES.items():
        runs = [timed(cmd) for _ in range(args.repeats)]
        median = statistics.median(runs)
        base = median if base is None else base
        goal = f"< {GOALS[name]:g} s: {'met' if median < GOALS[name] else 'NOT met'}" if name in GOALS else ""
        print(f"| {name} | {median:.2f} | {min(runs):.2f} | {median / base:.1f}x | {goal} |")


if __name__ == "__main__":
    main()
