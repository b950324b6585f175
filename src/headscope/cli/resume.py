"""Resumable verbs of the ``headscope`` command: the work folder beside the output, and Ctrl-C.

A verb that runs over a data set (``headscope align``, ``headscope faithful MODEL FILE``) keeps its
finished pieces in ``OUT.partial/`` beside its output folder ``OUT`` (:mod:`headscope.runs`) and
deletes it once ``OUT`` is saved. Running the same command again after an interruption (Ctrl-C,
a kill, a crash) continues from the saved pieces and ends with the same result as an
uninterrupted run. Ctrl-C prints one line (how much is saved, how to continue) and exits with
status 130.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

__all__ = ["WORK_SUFFIX", "interruptible", "resuming", "work_folder"]

WORK_SUFFIX = ".partial"
INTERRUPTED = 130  # 128 + SIGINT, what shells report for Ctrl-C


def work_folder(out: str | Path) -> Path:
    """The work folder of output folder ``out``: ``out.partial`` beside it."""
    out = Path(out)
    return out.with_name(out.name + WORK_SUFFIX)


def resuming(work: Path, unit: str) -> None:
    """Say on stderr that a run continues from saved pieces, if it does."""
    from ..runs import progress

    state = progress(work)
    if state and state[0]:
        print(f"headscope: continuing the interrupted run: {state[0]} of {state[1]} {unit} already saved in "
              f"{work}/", file=sys.stderr)


def interruptible(body: Callable[[], int], work: Path | None, unit: str) -> int:
    """Run ``body``; on Ctrl-C print one line saying what is saved in ``work`` and return 130."""
    try:
        return body()
    except KeyboardInterrupt:
        from ..runs import progress

        state = progress(work) if work is not None else None
        if state is None:
            saved = "nothing was saved yet"
        else:
            saved = f"{state[0]} of {state[1]} {unit} are saved in {work}/; run the same command again to continue"
        end_bar = "\n" if sys.stderr.isatty() else ""  # a progress bar may hold the terminal's last line
        print(f"{end_bar}headscope: interrupted; {saved}", file=sys.stderr)
        return INTERRUPTED
