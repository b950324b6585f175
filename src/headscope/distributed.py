"""Corpus runs across processes and GPUs with Hugging Face ``accelerate``, identical to one process.

A corpus run (``align.evaluate`` over a gold set, ``faithful.faithfulness_corpus`` and
``fragment.fragmentation_corpus`` over texts) is cut into numbered pieces (:mod:`headscope.runs`): fixed batches of sentences, fixed chunks of
texts. The pieces are the unit that is shared out: the numbers of a piece depend only on the piece
(its sentences are padded together, whichever process runs it), so a run shared by any number of
processes gives exactly the numbers of a one-process run. :func:`run_pieces` computes the pieces of
a run in one of three ways:

- **one process** (``processes=1``, the default outside a launch): every piece here, in order;
- **launched** (``accelerate launch --num_processes N script.py``, or ``torchrun``): each of the N
  copies of the script computes its shard of the pieces (a :meth:`datasets.Dataset.shard` of the
  piece numbers: pieces ``rank, rank + N, ...``; neighbouring batches have similar lengths, so the
  shards cost about the same), then the pieces are gathered
  (:func:`accelerate.utils.gather_object`) and every process returns all of them in piece order;
- **forked** (``processes=N`` from one process; ``headscope align --processes N``): N worker
  processes are forked from this one (the model and data already loaded are shared), each set up
  by :class:`accelerate.PartialState` (one GPU each, ``cuda:rank``, where there are GPUs; one torch
  thread each on the CPU), each writing its finished pieces atomically into the work folder; this
  process then reads them back in piece order.

With a work folder, pieces saved there by an earlier, interrupted run (with any number of
processes) are read instead of computed, so a run continues where it stopped. Pieces are bytes;
the caller turns them back into its result in piece order (the one-process code path reads them
the same way), so the result does not depend on the number of processes.

>>> pieces = run_pieces(3, lambda i: f"piece {i}".encode(), suffix="txt", processes=2)   # doctest: +SKIP
>>> [p.decode() for p in pieces]                                                          # doctest: +SKIP
['piece 0', 'piece 1', 'piece 2']
"""

from __future__ import annotations

import atexit
import contextlib
import multiprocessing
import os
import pickle
import shutil
import socket
import tempfile
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch

from .errors import HeadscopeError, InputError
from .runs import WorkFolder

__all__ = ["check_processes", "is_main", "launched", "open_work", "placed", "run_chunks", "run_pieces", "shard"]

Compute = Callable[[int], bytes]
Check = Callable[[int, bytes], "str | None"]
Place = Callable[[torch.device], contextlib.AbstractContextManager[Any]]


def launched() -> bool:
    """Whether this process is one of several started by ``accelerate launch`` (or ``torchrun``).

    >>> launched()                       # doctest: +SKIP
    False
    """
    try:
        return int(os.environ.get("WORLD_SIZE", "1")) > 1
    except ValueError:
        return False


def is_main() -> bool:
    """Whether this is the main process of a launched run, or not launched (where progress bars go).

    >>> is_main()                        # doctest: +SKIP
    True
    """
    return not launched() or os.environ.get("RANK", "0") == "0"


def check_processes(processes: Any) -> int | None:
    """``processes`` checked: ``None`` (one, or the launched number) or a positive whole number that
    this machine can give (at most one process per GPU where there are GPUs).

    >>> check_processes(2)
    2
    """
    if processes is None:
        return None
    if not isinstance(processes, int) or isinstance(processes, bool) or processes < 1:
        raise InputError(f"processes={processes!r}: pass a positive whole number of processes (1: this process only)")
    if processes > 1 and launched():
        raise InputError(f"processes={processes}: this script was started by accelerate launch with "
                         f"{os.environ.get('WORLD_SIZE')} processes already; leave processes out (each launched "
                         "process computes its shard)")
    if processes > 1 and "fork" not in multiprocessing.get_all_start_methods():
        raise InputError(f"processes={processes} forks worker processes, which this system cannot; start the script "
                         f"with accelerate launch --num_processes {processes} instead (docs/scale.md)")
    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if gpus and processes > gpus:
        raise InputError(f"processes={processes}, but this machine has {gpus} GPU(s): pass at most {gpus} "
                         "(one process per GPU)")
    return processes


def shard(total: int, rank: int, size: int) -> list[int]:
    """The piece numbers of process ``rank`` of ``size``: a round-robin :meth:`datasets.Dataset.shard`
    of ``0 .. total-1`` (``rank, rank + size, ...``).

    >>> shard(7, 1, 3)
    [1, 4]
    """
    if total == 0:
        return []
    from datasets import Dataset

    pieces = Dataset.from_dict({"piece": list(range(total))})
    return list(pieces.shard(num_shards=size, index=rank, contiguous=False)["piece"])


def open_work(path: str | os.PathLike, options: dict[str, Any], *, total: int, command: str = "") -> WorkFolder:
    """:meth:`WorkFolder.open <headscope.runs.WorkFolder.open>` that works in a launched run too: the
    main process opens (and locks) the folder, the others join it once it is open (and fail with the
    main process's error if it could not be opened).

    >>> work = open_work("run.partial", {"what": "demo"}, total=3)    # doctest: +SKIP
    """
    if not launched():
        return WorkFolder.open(path, options, total=total, command=command)
    from accelerate.utils import broadcast_object_list

    state = _state()
    work, message = None, [None]
    if state.is_main_process:
        try:
            work = WorkFolder.open(path, options, total=total, command=command)
        except HeadscopeError as err:
            message = [err]
    broadcast_object_list(message, from_process=0)
    if message[0] is not None:
        raise message[0]
    return work if work is not None else WorkFolder.join(path, options, total=total)


@contextlib.contextmanager
def placed(model: torch.nn.Module, device: torch.device) -> Iterator[None]:
    """Run the block with ``model`` on ``device``, then put it back where it was.

    A model spread over several devices (``device_map="auto"``) stays where it is: its dispatch
    hooks move the inputs.

    >>> with placed(loaded.model, torch.device("cuda:1")):     # doctest: +SKIP
    ...     insp = headscope.inspect(loaded, "A red car.")
    """
    devices = {p.device for p in model.parameters()}
    if len(devices) != 1 or next(iter(devices)) == device or getattr(model, "hf_device_map", None):
        yield
        return
    before = next(iter(devices))
    model.to(device)
    try:
        yield
    finally:
        model.to(before)


def run_chunks(model: torch.nn.Module, total: int, compute: Compute, *, suffix: str, work: WorkFolder | None,
               processes: int | None, check: Check, progress: bool, desc: str) -> list[bytes]:
    """:func:`run_pieces` of a corpus run over chunks of texts, as ``faithfulness_corpus`` and
    ``fragmentation_corpus`` do it: a progress bar in the main process (``progress``), each worker's
    pieces computed with ``model`` on its device, and the work folder closed at the end (also on
    failure or interruption, its saved pieces kept).

    >>> pieces = run_chunks(model, 3, compute, suffix="json", work=None, processes=2, check=check,
    ...                     progress=False, desc="fragment")                                 # doctest: +SKIP
    """
    bar = None
    if progress and is_main():
        from tqdm.auto import tqdm

        bar = tqdm(total=total, desc=desc, unit="chunk")
    try:
        return run_pieces(total, compute, suffix=suffix, work=work, processes=processes, check=check,
                          progress=None if bar is None else lambda _: bar.update(1),
                          on_device=lambda device: placed(model, device), unit="chunk")
    finally:
        if bar is not None:
            bar.close()
        if work is not None:
            work.close()


def run_pieces(total: int, compute: Compute, *, suffix: str, work: WorkFolder | None = None,
               processes: int | None = None, check: Check | None = None,
               progress: Callable[[int], Any] | None = None, on_device: Place | None = None,
               unit: str = "piece") -> list[bytes]:
    """The bytes of pieces ``0 .. total-1`` of a run, in order, computed across processes.

    Parameters
    ----------
    total : number of pieces.
    compute : ``compute(index) -> bytes``, the piece computed (in whichever process runs it).
    suffix : the piece files' suffix in ``work`` (``"npz"``, ``"json"``).
    work : the run's work folder (:func:`open_work`): saved pieces are read instead of computed, and
        computed ones are saved there at once. Needed by nothing else; forked runs without one use a
        temporary folder.
    processes : ``None`` or 1: this process (in a launched run: this process's shard); N > 1: fork
        N worker processes (see the module docstring).
    check : ``check(index, data)``: why saved piece ``index`` is unusable, or ``None``; an unusable
        piece is removed (with a warning naming it a ``unit``, e.g. ``"batch"``) and computed again.
    progress : called with each piece's index as it is finished (in this process).
    on_device : ``on_device(device)``, a context in which a worker computes its pieces on its
        accelerate device when that is not the CPU (e.g. ``lambda d: placed(model, d)``).

    Returns
    -------
    list of bytes, one per piece, the same for any number of processes.
    """
    processes = check_processes(processes)
    if processes is not None and processes > 1:
        return _forked(total, compute, suffix, work, processes, _Check(check, unit), progress, on_device)
    if launched():
        return _launched(total, compute, suffix, work, _Check(check, unit), progress, on_device)
    out = []
    for index in range(total):
        data = _get(index, compute, suffix, work, _Check(check, unit))
        if progress is not None:
            progress(index)
        out.append(data)
    return out


# ---- the pieces of one process ---------------------------------------------------------------


class _Check:
    """A caller's ``check`` and the name of its pieces (for the warning)."""

    def __init__(self, check: Check | None, unit: str) -> None:
        self.check, self.unit = check, unit

    def __call__(self, index: int, data: bytes) -> str | None:
        return None if self.check is None else self.check(index, data)


def _saved(index: int, suffix: str, work: WorkFolder | None, check: _Check) -> bytes | None:
    """Piece ``index`` as saved in ``work``, or ``None`` (not saved, or unusable: then removed)."""
    if work is None or not work.done(index, suffix):
        return None
    try:
        data = work.read(index, suffix)
    except OSError as err:
        reason: str | None = str(err)
    else:
        reason = check(index, data)
    if reason is None:
        return data
    warnings.warn(f"{work.piece_path(index, suffix)}: cannot read this saved {check.unit} ({reason}); recomputing "
                  "it", stacklevel=4)
    work.piece_path(index, suffix).unlink(missing_ok=True)
    return None


def _get(index: int, compute: Compute, suffix: str, work: WorkFolder | None, check: _Check) -> bytes:
    data = _saved(index, suffix, work, check)
    if data is None:
        data = compute(index)
        if work is not None:
            work.save(index, suffix, data)
    return data


# ---- launched: accelerate launch / torchrun ---------------------------------------------------


def _state() -> Any:
    """accelerate's state of this process; in a launched run its process group is closed at exit
    (a gloo group left open aborts the process as it ends)."""
    from accelerate import PartialState

    global _CLOSE_AT_EXIT
    state = PartialState(cpu=not torch.cuda.is_available())
    if launched() and not _CLOSE_AT_EXIT:
        atexit.register(state.destroy_process_group)
        _CLOSE_AT_EXIT = True
    return state


_CLOSE_AT_EXIT = False


def _launched(total: int, compute: Compute, suffix: str, work: WorkFolder | None, check: _Check,
              progress: Callable[[int], Any] | None, on_device: Place | None) -> list[bytes]:
    from accelerate.utils import gather_object

    state = _state()
    mine: list[tuple[int, bytes | None, Exception | None]] = []
    try:
        with _on(on_device, state.device):
            for index in shard(total, state.process_index, state.num_processes):
                mine.append((index, _get(index, compute, suffix, work, check), None))
                if progress is not None:
                    progress(index)
    except Exception as err:  # noqa: BLE001 - every process raises it (none waits for the others forever)
        mine = [(-1, None, err)]
    gathered = gather_object(mine)
    for _, _, err in gathered:
        if err is not None:
            raise err
    found = {index: data for index, data, _ in gathered}
    if progress is not None:
        for index in sorted(set(found) - {i for i, _, _ in mine}):
            progress(index)
    return [found[index] for index in range(total)]


# ---- forked: processes=N ---------------------------------------------------------------------


def _forked(total: int, compute: Compute, suffix: str, work: WorkFolder | None, processes: int,
            check: _Check, progress: Callable[[int], Any] | None, on_device: Place | None) -> list[bytes]:
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        raise InputError(f"processes={processes} forks worker processes, but this process has used its GPU already "
                         "(a forked process cannot); start the script with accelerate launch --num_processes "
                         f"{processes} instead, or leave the model on the CPU until the run")
    import accelerate  # noqa: F401 - imported once here, not once in every worker (a second each)

    shards = [shard(total, rank, processes) for rank in range(processes)]
    with _work_or_temporary(work, total) as folder, tempfile.TemporaryDirectory(prefix="headscope-errors-") as errors:
        for index in range(total):  # unusable saved pieces go now, before the workers look
            _saved(index, suffix, folder, check)
        context = torch.multiprocessing.start_processes(
            _worker, args=(processes, _free_port(), shards, compute, suffix, folder, on_device, errors),
            nprocs=processes, join=False, start_method="fork")
        seen: set[int] = set()
        try:
            while not _joined(context, errors):
                seen = _report(folder, suffix, total, seen, progress)
        except BaseException:
            for process in context.processes:
                if process.is_alive():
                    process.terminate()
            for process in context.processes:
                process.join()
            raise
        _report(folder, suffix, total, seen, progress)
        return [folder.read(index, suffix) for index in range(total)]


@contextlib.contextmanager
def _work_or_temporary(work: WorkFolder | None, total: int) -> Iterator[WorkFolder]:
    if work is not None:
        yield work
        return
    place = Path(tempfile.mkdtemp(prefix="headscope-run-"))
    folder = WorkFolder.open(place / "run", {"what": "headscope.distributed (temporary)"}, total=total)
    try:
        yield folder
    finally:
        folder.close()
        shutil.rmtree(place, ignore_errors=True)


def _report(folder: WorkFolder, suffix: str, total: int, seen: set[int],
            progress: Callable[[int], Any] | None) -> set[int]:
    if progress is None:
        return seen
    with os.scandir(folder.path) as entries:  # one listing per look, however many pieces
        names = {entry.name for entry in entries}
    for index in range(total):
        if index not in seen and folder.piece_path(index, suffix).name in names:
            seen.add(index)
            progress(index)
    return seen


def _joined(context: Any, errors: str) -> bool:
    """Whether every worker has ended well; a worker's failure is raised here as the worker raised it."""
    from torch.multiprocessing.spawn import ProcessException

    try:
        return bool(context.join(timeout=0.1))
    except ProcessException:
        pass
    for process in context.processes:
        if process.is_alive():
            process.terminate()
        process.join()
    for file in sorted(Path(errors).glob("rank-*")):
        try:
            err = pickle.loads(file.read_bytes())
        except Exception:  # noqa: BLE001 - an unreadable report: say so below
            continue
        raise err
    raise RuntimeError("a headscope worker process ended without saying why (killed?); run the same command "
                       "again: the finished pieces are kept in the work folder")


def _worker(rank: int, size: int, port: int, shards: list[list[int]], compute: Compute, suffix: str,
            work: WorkFolder, on_device: Place | None, errors: str) -> None:
    """One forked worker: set up by accelerate, compute this rank's unsaved pieces, save each."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), WORLD_SIZE=str(size), RANK=str(rank),
                      LOCAL_RANK=str(rank), LOCAL_WORLD_SIZE=str(size), OMP_NUM_THREADS="1")
    torch.set_num_threads(1)
    state = None
    try:
        state = _state()
        with _on(on_device, state.device):
            for index in shards[rank]:
                if not work.done(index, suffix):
                    work.save(index, suffix, compute(index))
    except BaseException as err:  # the parent raises it as it was raised here
        try:
            data = pickle.dumps(err)
            pickle.loads(data)
        except Exception:  # noqa: BLE001 - an error that does not pickle: its type and message
            data = pickle.dumps(RuntimeError(f"worker {rank}: {type(err).__name__}: {err}"))
        Path(errors, f"rank-{rank:04d}").write_bytes(data)
        raise SystemExit(1) from None
    finally:
        if state is not None:
            with contextlib.suppress(Exception):
                state.destroy_process_group()


def _on(on_device: Place | None, device: torch.device) -> contextlib.AbstractContextManager[Any]:
    return on_device(device) if on_device is not None and device.type != "cpu" else contextlib.nullcontext()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])

