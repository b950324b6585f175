"""Run the ``headscope`` command in a child process that the resume tests kill at a chosen point.

The child is forked from a ``multiprocessing`` fork server that has imported torch, transformers
and headscope once (so each run does not pay for the imports again); it runs
``headscope.cli.main(argv)`` exactly as the console script does, its stdout and stderr going to
files. ``pause_at`` stops it (writing a ``paused`` marker file, then sleeping) at the point where
the test sends the signal: right after the work folder opens (``"0"``), after the n-th saved
piece (``"n"``), or just before the finished result folder ``rep`` is renamed into place
(``"save"``). These pauses are test-only wrappers around :mod:`headscope.runs` and
:mod:`headscope.storage`; the command itself is unchanged.
"""

from __future__ import annotations

import os
import signal
import sys
import time

PRELOAD = ["torch", "transformers", "datasets", "headscope.cli", "headscope.cli.align", "headscope.cli.faithful",
           "headscope.align.evaluation", "headscope.faithful", "headscope.viz.figures"]


def run_cli(argv: list[str], cwd: str, pause_at: str, logs: str) -> None:
    """The child: redirect output, install the pause, run the command, exit with its status."""
    import torch

    import headscope.runs as runs
    import headscope.storage as storage

    signal.signal(signal.SIGINT, signal.default_int_handler)  # Ctrl-C as in a terminal, also under a background job
    os.chdir(cwd)
    torch.set_num_threads(1)  # as in the test process, so the numbers agree to the last bit
    for fd, name in ((1, "stdout"), (2, "stderr")):
        os.dup2(os.open(os.path.join(logs, name), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644), fd)

    def pause() -> None:
        open(os.path.join(logs, "paused"), "w").close()
        time.sleep(120)

    open_, save_, replace_ = runs.WorkFolder.open.__func__, runs.WorkFolder.save, storage.replace_folder

    def opened(cls, *a, **k):
        work = open_(cls, *a, **k)
        if pause_at == "0":
            pause()
        return work

    def saved(self, *a, **k):
        save_(self, *a, **k)
        if pause_at == str(self.count()):
            pause()

    def replacing(staging, folder):
        if pause_at == "save" and folder.name == "rep":
            pause()
        replace_(staging, folder)

    runs.WorkFolder.open, runs.WorkFolder.save, storage.replace_folder = classmethod(opened), saved, replacing
    from headscope.cli import main

    sys.stdout.flush()
    sys.exit(main(argv))
