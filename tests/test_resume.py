"""Resumable corpus runs (issue 13): align and faithful over a data set keep finished pieces in a work
folder; an interrupted run continues and ends identical to an uninterrupted one; a mismatched
resume is refused; Ctrl-C prints one line (exit 130). The last tests kill real ``headscope``
subprocesses (SIGINT and SIGKILL, after 0, 1 and several batches, and while the report is saved).
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

import headscope
from headscope.align import evaluate
from headscope.cli import main
from headscope.errors import InputError
from headscope.faithful import faithfulness_corpus
from headscope.runs import WorkFolder, progress, result_contents

MODEL = "headscope/en-fr-1x1"
TEXTS = ["A red car.", "Two dogs play.", "It is late."]


def _same_report(a, b) -> None:
    assert a.to_rows() == b.to_rows()
    assert a.links == b.links and a.gold == b.gold and a.readings == b.readings
    assert (a.model_name, a.gold_name, a.n_sentences, a.notes) == (b.model_name, b.gold_name, b.n_sentences, b.notes)


class _Stop:
    """Raise KeyboardInterrupt at the ``n``-th call of a wrapped function (as Ctrl-C would)."""

    def __init__(self, fn, n: int) -> None:
        self.fn, self.n, self.calls = fn, n, 0

    def __call__(self, *args, **kwargs):
        self.calls += 1
        if self.calls == self.n:
            raise KeyboardInterrupt
        return self.fn(*args, **kwargs)


# ---- the Python functions --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def align_reference():
    return evaluate(MODEL, "hansards-en-fr", limit=12, batch_size=4, progress=False, convention="both")


@pytest.mark.parametrize("stop_at", [1, 2, 3])  # before the first batch, after one, after two of three
def test_evaluate_resumes_identically(align_reference, tmp_path, monkeypatch, stop_at):
    import headscope.align.evaluation as ev

    work = tmp_path / "run.partial"
    stop = _Stop(ev.inspect, stop_at)
    monkeypatch.setattr(ev, "inspect", stop)
    with pytest.raises(KeyboardInterrupt):
        evaluate(MODEL, "hansards-en-fr", limit=12, batch_size=4, progress=False, convention="both", work_dir=work)
    assert progress(work) == (stop_at - 1, 3)
    counted = _Stop(ev.inspect.fn, 0)
    monkeypatch.setattr(ev, "inspect", counted)
    again = evaluate(MODEL, "hansards-en-fr", limit=12, batch_size=4, progress=False, convention="both",
                     work_dir=work)
    assert counted.calls == 3 - (stop_at - 1)  # only the batches not saved were run
    _same_report(again, align_reference)
    monkeypatch.setattr(ev, "inspect", _Stop(ev.inspect.fn, 1))  # all saved: nothing runs at all
    _same_report(evaluate(MODEL, "hansards-en-fr", limit=12, batch_size=4, progress=False, convention="both",
                          work_dir=work), align_reference)


def test_mismatched_resume_is_refused(tmp_path, monkeypatch):
    import headscope.align.evaluation as ev

    work = tmp_path / "run.partial"
    monkeypatch.setattr(ev, "inspect", _Stop(ev.inspect, 2))
    with pytest.raises(KeyboardInterrupt):
        evaluate(MODEL, "hansards-en-fr", limit=12, batch_size=4, progress=False, work_dir=work)
    monkeypatch.undo()
    for kwargs, named in [({"batch_size": 6}, "batch_size: 4 there, 6 now"), ({"limit": 8}, "n_sentences"),
                          ({"convention": "shift"}, "convention"), ({"src_pool": "max"}, "pools")]:
        args = {"limit": 12, "batch_size": 4, **kwargs}
        with pytest.raises(InputError, match=f"holds an interrupted run with other settings.*{named}.*delete"):
            evaluate(MODEL, "hansards-en-fr", progress=False, work_dir=work, **args)
    assert progress(work) == (1, 3)  # the refused runs touched nothing
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep")
    with pytest.raises(InputError, match="not a headscope work folder"):
        evaluate(MODEL, "hansards-en-fr", limit=12, progress=False, work_dir=tmp_path / "mine")


def test_damaged_piece_is_recomputed(align_reference, tmp_path):
    work = tmp_path / "w"
    evaluate(MODEL, "hansards-en-fr", limit=12, batch_size=4, progress=False, convention="both", work_dir=work)
    (work / "piece-000001.npz").write_bytes(b"not a zip")
    with pytest.warns(UserWarning, match="piece-000001.npz: cannot read this saved batch.*recomputing"):
        again = evaluate(MODEL, "hansards-en-fr", limit=12, batch_size=4, progress=False, convention="both",
                         work_dir=work)
    _same_report(again, align_reference)


def test_one_process_per_work_folder(tmp_path):
    with WorkFolder.open(tmp_path / "w", {"a": 1}, total=2):
        with pytest.raises(InputError, match="in use by another running headscope process"):
            WorkFolder.open(tmp_path / "w", {"a": 1}, total=2)
    WorkFolder.open(tmp_path / "w", {"a": 1}, total=2).close()  # released


@pytest.fixture(scope="module")
def faithful_reference():
    return faithfulness_corpus(MODEL, TEXTS, chunk_size=1)


def test_faithfulness_corpus_resumes_identically(faithful_reference, tmp_path, monkeypatch):
    import headscope.faithful.corpus as corpus

    assert faithful_reference.texts == TEXTS and faithful_reference.ablation.n_examples == 3
    work = tmp_path / "f.partial"
    monkeypatch.setattr(corpus, "faithfulness_report", _Stop(corpus.faithfulness_report, 2))
    with pytest.raises(KeyboardInterrupt):
        faithfulness_corpus(MODEL, TEXTS, chunk_size=1, work_dir=work)
    assert progress(work) == (1, 3)
    monkeypatch.undo()
    again = faithfulness_corpus(MODEL, TEXTS, chunk_size=1, work_dir=work)
    assert again.to_dict() == faithful_reference.to_dict()
    with pytest.raises(InputError, match="chunk_size: 1 there, 3 now"):
        faithfulness_corpus(MODEL, TEXTS, chunk_size=3, work_dir=work)
    with pytest.raises(InputError, match="texts:"):
        faithfulness_corpus(MODEL, TEXTS[::-1], chunk_size=1, work_dir=work)


def test_faithfulness_corpus_pools_like_one_call(faithful_reference):
    """Chunks pool the per-example ablation effects exactly as one call over all texts would (up to the
    last digits batching changes); the comparisons are those of each text."""
    from headscope.faithful import faithfulness_report

    one = faithfulness_report(MODEL, TEXTS)
    parts = faithful_reference
    assert parts.texts == one.texts and parts.ablation.configs == one.ablation.configs
    assert parts.ablation.per_example.keys() == one.ablation.per_example.keys() and parts.ablation.n_examples == 3
    for kind, grid in one.ablation.effect().items():
        assert parts.ablation.effect(kind) == pytest.approx(grid, abs=1e-4)
    assert [len(c.rows) for c in parts.comparisons] == [len(c.rows) for c in one.comparisons]


# ---- the command line, in process --------------------------------------------------------------------

def test_cli_align_ctrl_c_one_line(tmp_path, monkeypatch, capsys):
    import headscope.align.evaluation as ev

    out = tmp_path / "rep"
    monkeypatch.setattr(ev, "inspect", _Stop(ev.inspect, 2))
    argv = ["align", MODEL, "--gold", "hansards-en-fr", "--limit", "12", "--batch-size", "4", "--out", str(out),
            "--no-progress"]
    assert main(argv) == 130
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"headscope: interrupted; 1 of 3 batches are saved in {out}.partial/; run the same command "
                   "again to continue"]
    monkeypatch.undo()
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert "continuing the interrupted run: 1 of 3 batches already saved" in captured.err
    assert not Path(f"{out}.partial").exists() and (out / "aer_heatmap_naive.png").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rep"]  # no staging or work folder left


# ---- real processes, killed --------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def forkserver():
    """A multiprocessing context whose children are forked from a server that has the imports done."""
    import multiprocessing

    from resume_helpers import PRELOAD

    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(PRELOAD)
    return ctx


def _run(ctx, cwd: Path, argv: list[str], at: object = "", sig: int | None = None, timeout: float = 300):
    """Run ``headscope argv`` in a child; with ``sig``, send it when the child pauses at ``at``.
    Returns ``(exit code, stderr)`` (a negative code: killed by that signal)."""
    from resume_helpers import run_cli

    logs = cwd / f".logs-{time.monotonic_ns()}"
    logs.mkdir()
    proc = ctx.Process(target=run_cli, args=(argv, str(cwd), str(at), str(logs)))
    proc.start()
    end = time.monotonic() + timeout
    if sig is not None:
        while not (logs / "paused").exists():
            assert proc.exitcode is None, f"finished before the kill point: {(logs / 'stderr').read_text()}"
            assert time.monotonic() < end, "kill point never reached"
            time.sleep(0.01)
        os.kill(proc.pid, sig)
    proc.join(timeout)
    err = (logs / "stderr").read_text()
    for f in logs.iterdir():
        f.unlink()
    logs.rmdir()
    return proc.exitcode, err


@pytest.mark.slow
def test_align_process_killed_and_resumed_equals_uninterrupted(forkserver, tmp_path, capsys):
    args = ["align", MODEL, "--gold", "hansards-en-fr", "--limit", "12", "--batch-size", "2", "--convention",
            "both", "--no-progress", "--no-aligner"]  # eflomal has no seed: runs in two processes differ
    assert main([*args, "--out", str(tmp_path / "ref")]) == 0  # uninterrupted (in this process)
    capsys.readouterr()
    argv = [*args, "--out", "rep"]
    work, rep = tmp_path / "rep.partial", tmp_path / "rep"
    kills = []
    # after 0 batches (SIGINT), 1 batch (SIGKILL), 4 batches (SIGINT), while the report is saved (SIGKILL)
    for sig, at in [(signal.SIGINT, 0), (signal.SIGKILL, 1), (signal.SIGINT, 4), (signal.SIGKILL, "save")]:
        code, err = _run(forkserver, tmp_path, argv, at, sig)
        kills.append(len(list(work.glob("piece-*"))))
        assert not rep.exists()  # never a half-written report (and none before the run is complete)
        if sig == signal.SIGINT:
            assert code == 130 and "Traceback" not in err, err
            lines = err.splitlines()
            assert lines[-1] == (f"headscope: interrupted; {kills[-1]} of 6 batches are saved in rep.partial/; run "
                                 "the same command again to continue")
            assert lines[:-1] == ([] if at == 0 else [  # one line; a resumed run said so first
                "headscope: continuing the interrupted run: 1 of 6 batches already saved in rep.partial/"])
        else:
            assert code == -signal.SIGKILL
    assert kills == [0, 1, 4, 6]
    assert any(p.name.startswith(".rep.headscope-") for p in tmp_path.iterdir())  # the killed save's staging
    code, err = _run(forkserver, tmp_path, argv)
    assert code == 0, err
    assert "6 of 6 batches already saved" in err
    assert result_contents(rep) == result_contents(tmp_path / "ref")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ref", "rep"]  # work folder and stale staging gone


@pytest.mark.slow
def test_faithful_process_killed_and_resumed_equals_uninterrupted(forkserver, tmp_path, capsys):
    (tmp_path / "texts.txt").write_text("".join(t + "\n" for t in TEXTS), encoding="utf-8")
    args = ["faithful", MODEL, "texts.txt", "--chunk-size", "1", "--no-progress"]
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        assert main([*args, "--out", "ref"]) == 0
    finally:
        os.chdir(cwd)
    capsys.readouterr()
    work = tmp_path / "rep.partial"
    for sig, at in [(signal.SIGKILL, 1), (signal.SIGINT, 2)]:
        code, err = _run(forkserver, tmp_path, [*args, "--out", "rep"], at, sig)
        assert len(list(work.glob("piece-*"))) == at
        if sig == signal.SIGINT:
            assert code == 130 and "Traceback" not in err, err
            assert err.strip().splitlines()[-1] == ("headscope: interrupted; 2 of 3 chunks are saved in "
                                                   "rep.partial/; run the same command again to continue")
        else:
            assert code == -signal.SIGKILL
    code, err = _run(forkserver, tmp_path, [*args, "--out", "rep"])
    assert code == 0, err
    assert "2 of 3 chunks already saved" in err
    assert result_contents(tmp_path / "rep") == result_contents(tmp_path / "ref") and not work.exists()
    assert headscope.faithful.FaithfulnessReport.load(tmp_path / "rep").texts == TEXTS
