"""Corpus runs shared out over processes with accelerate (issue 17): the result equals a one-process run.

Forked workers (``processes=2``) and ``accelerate launch`` (two copies of a script, pieces gathered
with ``gather_object``) are both checked against the one-process result, byte for byte in the saved
report files (all but the run time).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest

from headscope.align import evaluate
from headscope.distributed import check_processes, run_pieces, shard
from headscope.errors import InputError
from headscope.faithful import faithfulness_corpus
from headscope.fragment import fragmentation_corpus
from headscope.runs import WorkFolder, result_contents

MODEL = "headscope/en-fr-1x1"
ALIGN = dict(limit=14, batch_size=4, convention="both", progress=False, aligner=None)
TEXTS = ["A red car.", "Two dogs play.", "It is late.", "The house is big.", "I see a cat."]


# ---- the engine ------------------------------------------------------------------------------


def test_shards_are_round_robin_and_cover_every_piece_once():
    shards = [shard(11, r, 3) for r in range(3)]
    assert shards == [[0, 3, 6, 9], [1, 4, 7, 10], [2, 5, 8]]
    assert sorted(sum(shards, [])) == list(range(11)) and shard(0, 0, 2) == []


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "2"])
def test_bad_process_counts_are_refused(bad):
    with pytest.raises(InputError, match="processes="):
        check_processes(bad)


def test_forked_pieces_come_back_in_order_and_saved(tmp_path):
    def compute(i: int) -> bytes:
        return f"{i}:{os.getpid()}".encode()

    got = run_pieces(5, compute, suffix="txt", processes=2)
    assert [g.split(b":")[0] for g in got] == [str(i).encode() for i in range(5)]
    workers = {g.split(b":")[1] for g in got}
    assert len(workers) == 2 and str(os.getpid()).encode() not in workers  # two processes, neither this one
    with WorkFolder.open(tmp_path / "w", {"what": "test"}, total=5) as work:
        work.save(3, "txt", b"saved before")
        seen: list[int] = []
        again = run_pieces(5, compute, suffix="txt", processes=2, work=work, progress=seen.append)
        assert again[3] == b"saved before" and sorted(seen) == list(range(5))  # a saved piece is not recomputed
        assert all(work.done(i, "txt") for i in range(5))


def test_a_worker_error_is_raised_as_the_worker_raised_it():
    def compute(i: int) -> bytes:
        if i == 1:
            raise InputError("piece 1 is bad; fix it")
        return b"ok"

    with pytest.raises(InputError, match="piece 1 is bad; fix it"):
        run_pieces(3, compute, suffix="txt", processes=2)


# ---- the corpus studies ----------------------------------------------------------------------


def test_align_two_processes_equals_one_process(tmp_path):
    one = evaluate(MODEL, **ALIGN)
    two = evaluate(MODEL, processes=2, **ALIGN)
    one.save(tmp_path / "one")
    two.save(tmp_path / "two")
    assert result_contents(tmp_path / "two") == result_contents(tmp_path / "one")
    # a run shared by two processes continues in one (and the other way round): same pieces
    work = tmp_path / "run.partial"
    evaluate(MODEL, processes=2, work_dir=work, **ALIGN)
    for p in sorted(work.glob("piece-*"))[::2]:
        p.unlink()
    evaluate(MODEL, work_dir=work, **ALIGN).save(tmp_path / "resumed")
    assert result_contents(tmp_path / "resumed") == result_contents(tmp_path / "one")


def test_faithfulness_corpus_two_processes_equals_one_process(tmp_path):
    one = faithfulness_corpus(MODEL, TEXTS, chunk_size=2)
    two = faithfulness_corpus(MODEL, TEXTS, chunk_size=2, processes=2)
    assert json.dumps(two.to_dict(), sort_keys=True) == json.dumps(one.to_dict(), sort_keys=True)


def test_fragmentation_corpus_two_processes_equals_one_process(tmp_path):
    one = fragmentation_corpus(MODEL, TEXTS, chunk_size=2)
    two = fragmentation_corpus(MODEL, TEXTS, chunk_size=2, processes=2, work_dir=tmp_path / "run.partial")
    def as_json(frags: list) -> str:
        return json.dumps([f.to_dict() for f in frags], sort_keys=True)

    assert len(one) == len(TEXTS) and as_json(two) == as_json(one)
    again = fragmentation_corpus(MODEL, TEXTS, chunk_size=2, work_dir=tmp_path / "run.partial")
    assert as_json(again) == as_json(one)  # every chunk read back from the folder the shared run left


def test_cli_processes_mirror_the_api(tmp_path, capsys):
    from headscope.cli import main

    args = ["align", MODEL, "--gold", "hansards-en-fr", "--limit", "14", "--batch-size", "4", "--convention", "both",
            "--no-aligner", "--no-progress"]
    assert main([*args, "--out", str(tmp_path / "one")]) == 0
    assert main([*args, "--processes", "2", "--out", str(tmp_path / "two")]) == 0
    assert result_contents(tmp_path / "two") == result_contents(tmp_path / "one")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["one", "two"]  # no work folder left behind
    capsys.readouterr()
    assert main([*args, "--processes", "0", "--out", str(tmp_path / "bad")]) != 0
    assert "processes=0: pass a positive whole number" in capsys.readouterr().err


def test_cli_fragment_and_faithful_files_in_two_processes(tmp_path, capsys):
    from headscope.cli import main
    from headscope.fragment import Fragmentation

    texts = tmp_path / "texts.txt"
    texts.write_text("".join(t + "\n" for t in TEXTS), encoding="utf-8")
    for n in ("1", "2"):
        assert main(["fragment", MODEL, str(texts), "--chunk-size", "2", "--processes", n, "--no-progress",
                     "--no-faithful", "--out", str(tmp_path / f"frag{n}")]) == 0
        assert main(["faithful", MODEL, str(texts), "--chunk-size", "2", "--processes", n, "--no-progress",
                     "--no-ablation", "--out", str(tmp_path / f"faith{n}")]) == 0
    printed = capsys.readouterr().out
    assert printed.count("#4 ") == 2 and "effective maps" in printed
    assert result_contents(tmp_path / "faith2") == result_contents(tmp_path / "faith1")
    for k in range(len(TEXTS)):
        one, two = (Fragmentation.load(tmp_path / f"frag{n}" / f"text-{k:04d}") for n in "12")
        assert json.dumps(two.to_dict(), sort_keys=True) == json.dumps(one.to_dict(), sort_keys=True)


LAUNCHED = """
import sys, torch
torch.set_num_threads(1)
from accelerate import PartialState
from headscope.align import evaluate
report = evaluate({model!r}, **{align!r})
state = PartialState()
report.save(sys.argv[1] + f"/rank{{state.process_index}}")
state.destroy_process_group()
"""


@pytest.mark.slow
def test_accelerate_launch_two_processes_equals_one_process(tmp_path):
    script = tmp_path / "evaluate_launched.py"
    script.write_text(LAUNCHED.format(model=MODEL, align=ALIGN), encoding="utf-8")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    with socket.socket() as free:  # not accelerate's fixed default port: other runs may hold it
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    # --multi_gpu: several processes; without GPUs accelerate runs them on the CPU (gloo)
    command = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
               "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port",
               str(port), str(script), str(tmp_path)]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    evaluate(MODEL, **ALIGN).save(tmp_path / "one")
    assert result_contents(tmp_path / "rank0") == result_contents(tmp_path / "one") == result_contents(tmp_path / "rank1")
