"""Fragmentation over a corpus of texts, a chunk at a time: resumable, and shared out over processes.

:func:`fragmentation_corpus` inspects the texts ``chunk_size`` at a time (one padded batch per
chunk) and measures :func:`~headscope.fragment.fragmentation` on each. The chunks are the pieces of
a corpus run (:mod:`headscope.runs`, :mod:`headscope.distributed`): with ``work_dir`` each finished
chunk is saved at once and a call after an interruption computes only the rest; with
``processes=N`` (or under ``accelerate launch``) the chunks are shared out over processes. Every
chunk, fresh or saved, is read back from its JSON, so the result does not depend on either.
A text longer than :data:`headscope.capture.LONG_INPUT` tokens is inspected on its own with the
reductions :func:`headscope.capture.reduce_for` picks (per-row statistics and the decision rows:
memory ``O(layers x heads x n)`` instead of ``n^2``), and measured on those rows (issue 17).

>>> frags = fragmentation_corpus("headscope/en-fr", ["A red car.", "Two dogs."], processes=2)  # doctest: +SKIP
>>> [round(f.kinds["cross"].effective_maps, 2) for f in frags]                                 # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from typing import Any

from ..capture.reductions import LONG_INPUT, reduce_for
from ..distributed import check_processes, open_work, run_chunks
from ..errors import InputError
from ..models.loading import load
from ..run import inspect
from ..runs import fingerprint, iter_pieces, model_fingerprint, text_list, unreadable_json
from .measure import fragmentation
from .result import Fragmentation

__all__ = ["fragmentation_corpus"]

_PIECE = "json"


def fragmentation_corpus(model: Any, texts: Sequence[str], targets: Sequence[str] | None = None, *,
                         chunk_size: int = 16, faithful: bool = True, work_dir: str | os.PathLike | None = None,
                         processes: int | None = None, progress: bool = False) -> list[Fragmentation]:
    """:func:`~headscope.fragment.fragmentation` of every text of a corpus, in text order.

    Parameters
    ----------
    model : a shipped name, folder, ``(model, tokenizer)`` or :class:`~headscope.LoadedModel`.
    texts : the texts (a list of non-empty strings).
    targets : outputs to force, one per text (encoder-decoders; default: the model's own greedy output).
    chunk_size : texts inspected together (one padded batch) and saved together. The numbers depend
        on it (padding changes the last digits), so a resumed or shared run keeps the same one.
    faithful : add gradient and leave-one-out importance as readings (as ``fragmentation`` does).
    work_dir : folder to keep finished chunks in; the same call after an interruption continues.
    processes : compute the chunks in this many processes with ``accelerate`` (one per GPU where
        there are GPUs), or leave it out under ``accelerate launch`` (:mod:`headscope.distributed`).
    progress : show a progress bar over chunks.

    Returns
    -------
    list of Fragmentation, one per text, the same for any number of processes.

    Fragmentation across heads and readings is the subject of :mod:`headscope.fragment`; the
    agreement of readings with gradient and leave-one-out importance follows Jain & Wallace (2019),
    "Attention is not Explanation".
    """
    texts = text_list(texts, "texts", "fragmentation(headscope.inspect(model, text))")
    if targets is not None:
        targets = text_list(targets, "targets", "fragmentation(headscope.inspect(model, text))")
        if len(targets) != len(texts):
            raise InputError(f"{len(texts)} texts but {len(targets)} targets; give one target per text (or none)")
    if not isinstance(chunk_size, int) or isinstance(chunk_size, bool) or chunk_size < 1:
        raise InputError(f"chunk_size={chunk_size!r}: pass a positive whole number")
    check_processes(processes)
    loaded = load(model)
    pieces = list(iter_pieces(len(texts), chunk_size))
    work = None
    if work_dir is not None:
        options = {"what": "headscope.fragment.fragmentation_corpus", "model": loaded.name,
                   "weights": model_fingerprint(loaded.model), "texts": fingerprint(texts),
                   "targets": None if targets is None else fingerprint(targets), "chunk_size": chunk_size,
                   "faithful": faithful}
        work = open_work(work_dir, options, total=len(pieces))

    def compute(index: int) -> bytes:
        _, start, stop = pieces[index]
        chunk_targets = None if targets is None else targets[start:stop]
        long = long_input_reductions(loaded, texts[start:stop], chunk_targets)
        short = [i for i, spec in enumerate(long) if spec is None]
        insps: list[Any] = [None] * len(long)
        if short:  # one padded batch, as without long texts
            found = inspect(loaded, [texts[start + i] for i in short], batch_size=chunk_size,
                            target=None if targets is None else [chunk_targets[i] for i in short])
            for i, insp in zip(short, found):
                insps[i] = insp
        for i, spec in enumerate(long):
            if spec is not None:
                insps[i] = inspect(loaded, texts[start + i], target=None if targets is None else chunk_targets[i],
                                   reduce=spec)
        frags = [fragmentation(insp, faithful=faithful).to_dict() for insp in insps]
        return json.dumps(frags, ensure_ascii=False).encode("utf-8")

    found = run_chunks(loaded.model, len(pieces), compute, suffix=_PIECE, work=work, processes=processes,
                       check=unreadable_json(lambda ds: [Fragmentation.from_dict(d) for d in ds]), progress=progress, desc=f"fragment {loaded.name}")
    return [Fragmentation.from_dict(d) for data in found for d in json.loads(data.decode("utf-8"))]


def long_input_reductions(loaded: Any, texts: list[str], targets: list[str] | None) -> list[Any]:
    """Per text, the reductions to inspect it with for :func:`fragmentation` when it is longer than
    ``LONG_INPUT`` tokens, else ``None`` (whole maps). An encoder-decoder's long text keeps whole maps
    unless its target is given (every target row is a decision, and the length of a generated one is
    not known beforehand).

    >>> loaded = headscope.load("headscope/sentiment")                            # doctest: +SKIP
    >>> long_input_reductions(loaded, ["fine", "word " * 600], None)[0] is None    # doctest: +SKIP
    True
    """
    if loaded.architecture.reads_images:  # a patch grid is short
        return [None] * len(texts)
    out: list[Any] = []
    for i, text in enumerate(texts):
        n = len(loaded.tokenizer(text)["input_ids"])
        n_target = None
        if loaded.architecture.has_target:
            if targets is None:
                out.append(None)
                continue
            n_target = len(loaded.tokenizer(text_target=targets[i])["input_ids"])
        out.append(reduce_for(["fragmentation"], n, n_target=n_target, long=LONG_INPUT))
    return out


