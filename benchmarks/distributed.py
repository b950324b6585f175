"""Wall time of :func:`headscope.align.evaluate` on hansards-en-fr with 1 and with N processes.

The full alignment report (every cross-attention head, the layer means, the all-heads mean and the
rollout, both decoder-step conventions) of ``--model`` on the first ``--limit`` gold sentences
(447: all of them), computed in one process, then shared out over ``--processes`` forked worker
processes with accelerate (:mod:`headscope.distributed`, one torch thread each on the CPU, one GPU
each where there are GPUs). Prints each wall time (the model is loaded before the clock starts;
the workers' start-up is timed), the ratio to one process, the machine's load average before and
after, and checks that every report equals the one-process report (saved files, all but the run
time). With ``--repeats R`` the settings alternate R times (1, N, 1, N, ...) and the fastest run of
each counts; all are printed, with the CPU time of this process and its workers (which does not
depend on how busy the machine is). The statistical-aligner baseline is left out (``aligner=None``): it
runs once, in the calling process, whatever the number of processes.

    python benchmarks/distributed.py [--model headscope/en-fr] [--limit 447] [--processes 2] [--repeats 1]
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time
from pathlib import Path


def _cpu_seconds() -> float:
    """CPU time (user + system) of this process and of its ended child processes (the workers)."""
    me, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + children.ru_utime + children.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="headscope/en-fr")
    parser.add_argument("--limit", type=int, default=447, help="gold sentences (447: all of hansards-en-fr)")
    parser.add_argument("--processes", type=int, nargs="+", default=[2], help="process counts to time beside 1")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=1, help="runs of each setting; the fastest counts, all are shown")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(1)
    from headscope.align import evaluate
    from headscope.models.loading import load
    from headscope.runs import result_contents

    loaded = load(args.model)
    settings = [1, *[n for n in args.processes if n != 1]]
    load_before = os.getloadavg()
    print(f"{args.model}: align.evaluate on hansards-en-fr, {args.limit} sentences, batch size {args.batch_size}, "
          f"convention both, one torch thread per process; {os.cpu_count()} CPU(s), "
          f"{torch.cuda.device_count() if torch.cuda.is_available() else 0} GPU(s)")
    print(f"load average before: {' '.join(f'{x:.2f}' for x in load_before)}")
    runs: dict[int, list[float]] = {n: [] for n in settings}
    cpu: dict[int, list[float]] = {n: [] for n in settings}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.repeats):  # 1, N, 1, N, ...: both see the same changes of load
            for n in settings:
                start, cpu_start = time.perf_counter(), _cpu_seconds()
                report = evaluate(loaded, "hansards-en-fr", limit=args.limit, batch_size=args.batch_size,
                                  convention="both", progress=False, aligner=None, processes=n)
                runs[n].append(time.perf_counter() - start)
                cpu[n].append(_cpu_seconds() - cpu_start)
                report.save(Path(tmp) / f"p{n}-{len(runs[n])}")
        reference = result_contents(Path(tmp) / "p1-1")
        for n in settings:
            best = min(runs[n])
            same = all(result_contents(Path(tmp) / f"p{n}-{r + 1}") == reference for r in range(args.repeats))
            every = f"  (runs: {', '.join(f'{t:.1f}' for t in runs[n])} s)" if args.repeats > 1 else ""
            print(f"{n} process(es): {best:6.1f} s  {args.limit / best:5.1f} sentences/s  "
                  f"x{min(runs[1]) / best:.2f} vs 1 process; CPU {min(cpu[n]):.1f} s in all processes"
                  f"{'' if n == 1 else '  (report identical to 1 process)' if same else '  REPORT DIFFERS'}{every}")
            if not same:
                raise SystemExit(1)
    print(f"load average after:  {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
