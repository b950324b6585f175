"""Ctrl-C at any moment of a command, even while torch is still being imported, ends with one line."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest


@pytest.mark.parametrize("delay", [1.0, 2.0, 3.0])  # after the interpreter itself has started
def test_sigint_during_startup_prints_one_line(delay):
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    # Ctrl-C reaches the command as in a terminal, also where this test runs with SIGINT ignored (a
    # background job of a shell)
    proc = subprocess.Popen([sys.executable, "-m", "headscope.cli", "inspect", "A dog."], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    time.sleep(delay)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode != 0, "the command finished before the signal: nothing was interrupted"
    assert "Traceback" not in err, err
    assert proc.returncode == 130 and err.strip().endswith("headscope: interrupted"), (proc.returncode, err)
