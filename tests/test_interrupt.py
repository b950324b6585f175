"""Ctrl-C at any moment of a command, even while torch is still being imported, ends with one line."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

# a command that runs about 8 s on a 2-core machine (imports 4.5 s), so that every delay lands inside it
LONG = ("A man in a red shirt is riding a bike along the river while two children in blue coats watch him from a "
        "wooden bridge and a dog runs after a ball on the grass near the old stone wall.")


# from just after the interpreter has started, through the imports of torch, numpy, accelerate and transformers
# (where a KeyboardInterrupt can abort torch from C++ or come back as an ImportError), to the run itself
@pytest.mark.parametrize("delay", [0.5, 0.6, 0.8, 1.0, 1.5, 2.0, 3.0])
def test_sigint_during_startup_prints_one_line(delay):
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    # Ctrl-C reaches the command as in a terminal, also where this test runs with SIGINT ignored (a
    # background job of a shell)
    proc = subprocess.Popen([sys.executable, "-m", "headscope.cli", "fragment", LONG], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    time.sleep(delay)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode != 0, "the command finished before the signal: nothing was interrupted"
    assert "Traceback" not in err, err
    assert proc.returncode == 130 and err.strip().endswith("headscope: interrupted"), (proc.returncode, err)


def test_interrupt_inside_the_deferred_block_is_raised_at_its_end():
    from headscope.cli import _Interrupts

    interrupts = _Interrupts()
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    reached = []
    try:
        with interrupts.handled(), pytest.raises(KeyboardInterrupt):
            with interrupts.deferred():
                os.kill(os.getpid(), signal.SIGINT)
                sum(range(10_000))  # the handler has run by now; it only noted the signal
                reached.append(True)
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handed back
    finally:
        signal.signal(signal.SIGINT, previous)
    assert reached == [True] and interrupts.seen


def test_an_interrupt_noted_while_deferred_wins_over_a_failing_check(monkeypatch, capsys):
    """Ctrl-C during the start-up checks, which then fail: the command says it was interrupted, not the error."""
    import headscope.cli as cli
    from headscope.errors import InputError

    def check(args):
        os.kill(os.getpid(), signal.SIGINT)
        sum(range(10_000))  # the handler runs (deferred: noted only)
        raise InputError("a check that fails")

    monkeypatch.setattr(cli, "check", check)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        assert cli.main(["inspect", "A dog."]) == 130
    finally:
        signal.signal(signal.SIGINT, previous)
    assert capsys.readouterr().err == "headscope: interrupted\n"


def test_a_second_interrupt_while_reporting_the_first_changes_nothing():
    from headscope.cli import _Interrupts

    interrupts = _Interrupts()
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with interrupts.handled():
            interrupts.seen = True
            assert interrupts.report() == 130
            os.kill(os.getpid(), signal.SIGINT)  # raises nothing now
            sum(range(10_000))
    finally:
        signal.signal(signal.SIGINT, previous)
