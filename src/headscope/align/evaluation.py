"""Score every cross-attention reading of a translation model as a word aligner: :func:`evaluate`.

:func:`evaluate` loads the model and the gold set, forces each gold target through the model
(teacher forcing, length-sorted padded batches, only the attention it needs) and hands every
sentence to a :class:`~headscope.align.scoring.Scorer`, which scores all readings in one pass:

- every cross-attention head of every decoder layer (``heads``: ``cross.2.3``);
- each layer's head mean (``layer_mean``: ``cross.2.mean``) and the all-heads mean (``all_mean``: ``cross.mean``);
- the encoder-decoder rollout (``rollout``: ``cross.rollout``; needs the encoder and decoder
  self-attention too, so it costs a bigger capture).

:func:`evaluate_inspections` scores already captured forced inspections the same way.

>>> report = evaluate("headscope/en-fr", "hansards-en-fr", convention="both")  # doctest: +SKIP
>>> print(report.table())                                                       # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextvars import ContextVar
from typing import Any

import numpy as np
import torch

from headscope.align.baselines import ALIGNERS, AlignerText, read_aligner_text, score_baselines
from headscope.align.extract import Extraction, check_extraction, extraction_name
from headscope.align.gold import load_gold
from headscope.align.report import AlignmentReport
from headscope.align.scoring import Scorer, check_conventions
from headscope.align.options import DEFAULT_CONVENTION, DEFAULT_SOURCES, MIXING_SOURCES
from headscope.align.wordmaps import check_sources
from headscope.align.words import Pool
from headscope.distributed import check_processes, is_main, open_work, placed, run_pieces
from headscope.errors import InputError, NotApplicableError
from headscope.inspection import Inspection
from headscope.models.loading import LoadedModel, load
from headscope.readings import parse_reading
from headscope.run import inspect
from headscope.runs import WorkFolder, fingerprint, model_fingerprint

__all__ = ["evaluate", "evaluate_inspections", "skip_vocabulary_projection"]

Row = dict[str, Any]
_COLUMNS = ("source_words", "target_words", "sure", "possible")


def evaluate(
    model: Any,
    gold: Any = "hansards-en-fr",
    *,
    convention: str = DEFAULT_CONVENTION,
    extraction: Extraction = "argmax",
    sources: str | Sequence[str] = DEFAULT_SOURCES,
    batch_size: int = 32,
    limit: int | None = None,
    progress: bool = True,
    reverse: bool = False,
    index_base: int | None = None,
    src_pool: Pool = "sum",
    tgt_pool: Pool = "mean",
    work_dir: str | os.PathLike | None = None,
    processes: int | None = None,
    aligner: str | None = "eflomal",
    aligner_text: AlignerText | None = None,
) -> AlignmentReport:
    """Score every cross-attention head (and aggregate) of ``model`` against gold word alignments.

    Parameters
    ----------
    model : a shipped name (``"headscope/en-fr"``), folder, hub name, ``(model, tokenizer)`` or
        :class:`~headscope.LoadedModel` of an encoder-decoder translating gold source to target.
    gold : a built-in gold set (``"hansards-en-fr"``), ``(sentences, alignments)`` or
        ``(source, target, alignments)`` paths, or a dataset from :func:`~headscope.align.load_gold`.
    convention : ``"naive"`` (default), ``"shift"`` or ``"both"`` (the report's main fields are then
        the default convention's).
    extraction : ``"argmax"`` (one link per target word) or ``("threshold", p)``.
    sources : groups of readings to score, from :data:`~headscope.align.SOURCES` (default the raw attention
        readings; ``"norm"``, ``"alti"``, ``"gradrollout"`` add the readings of :mod:`headscope.mixing`,
        computed one sentence at a time: slower, gradient rollout most).
    batch_size : sentences per padded forward pass (sentences are sorted by length first).
    limit : score only the first ``limit`` gold sentences.
    progress : show a progress bar.
    reverse, index_base : passed to :func:`~headscope.align.load_gold` for file gold sets.
    src_pool, tgt_pool : how subwords pool into words (default: sum over source subwords, mean
        over target subwords; see :func:`~headscope.align.subword_to_word`).
    work_dir : a folder to keep finished batches in (see :mod:`headscope.runs`): each batch's links
        are saved there as soon as it is scored, and a call with the same arguments and folder
        after an interruption (Ctrl-C, a kill) scores only the batches not saved yet. The report
        equals that of an uninterrupted call (all but ``seconds``). A folder made with other
        arguments, gold or model weights is refused. Delete the folder once the report is saved
        (``headscope align`` does).
    processes : run the batches in this many processes (one per GPU where there are GPUs; one
        torch thread each on the CPU) with ``accelerate``, or leave it out in a script started by
        ``accelerate launch``, whose processes then share the batches (:mod:`headscope.distributed`).
        Batches are the unit shared out, so the report equals a one-process report exactly.
    aligner : the statistical aligner scored as a baseline beside the diagonal (``"eflomal"``,
        default, when installed: ``pip install 'headscope[aligners]'``; ``None``: the diagonal only).
        See :mod:`headscope.align.baselines`.
    aligner_text : more parallel text to train the aligner on, besides the gold pairs:
        ``(source lines, target lines)`` or ``(source file, target file)``.

    Returns
    -------
    AlignmentReport

    The gold words are passed to the tokenizer pre-split (``is_split_into_words=True``); a sentence
    whose tokenizer words differ from the gold words is refused. The output layer's vocabulary
    projection is skipped while the model runs (:func:`skip_vocabulary_projection`). Small
    models on few busy cores run fastest with one torch thread: set ``torch.set_num_threads(1)``.

    >>> report = evaluate("headscope/en-fr", limit=20, progress=False)         # doctest: +SKIP
    >>> report.best_head, round(report.best_aer, 3)                            # doctest: +SKIP
    """
    t0 = time.perf_counter()
    convs = check_conventions(convention)
    check_extraction(extraction)
    if not isinstance(batch_size, int) or batch_size < 1:
        raise InputError(f"batch_size={batch_size!r}: pass a positive whole number of sentences per forward pass")
    rows = _gold_rows(gold, reverse, index_base, limit)
    check_processes(processes)
    text = _check_aligner(aligner, aligner_text)
    scorer = Scorer(convs, extraction, sources, len(rows), (src_pool, tgt_pool))
    loaded = load(model)
    if "cross" not in loaded.structure.kinds:
        raise NotApplicableError(f"{loaded.name} is {loaded.architecture.name}-only: word alignment needs the cross "
                                 "attention of an encoder-decoder (translation) model")
    mixing = [s for s in scorer.sources if s in MIXING_SOURCES]
    kinds = ["encoder", "decoder", "cross"] if "rollout" in scorer.sources or mixing else ["cross"]
    work = None
    if work_dir is not None:
        options = {"what": "headscope.align.evaluate", "model": loaded.name,
                   "weights": model_fingerprint(loaded.model), "gold": _gold_name(gold), "gold_rows": fingerprint(rows),
                   "n_sentences": len(rows), "convention": list(convs), "extraction": extraction_name(extraction),
                   "sources": list(scorer.sources), "pools": list(scorer.pools), "batch_size": batch_size}
        work = open_work(work_dir, options, total=-(-len(rows) // batch_size))
    bar = None
    if progress and is_main():
        from tqdm.auto import tqdm

        bar = tqdm(total=len(rows), desc=f"align {loaded.name}", unit="sent")
    try:
        # gradient rollout needs gradients and the model's real predictions: no shortcuts then
        plain = "gradrollout" not in mixing
        with (torch.no_grad() if plain else contextlib.nullcontext()), \
                (skip_vocabulary_projection(loaded.model) if plain else contextlib.nullcontext()):
            _run_batches(loaded, rows, batch_size, kinds, scorer, bar.update if bar else None, work, processes,
                         mixing)
    finally:
        if bar is not None:
            bar.close()
        if work is not None:
            work.close()
    report = scorer.report(model_name=loaded.name, gold_name=_gold_name(gold), gold=rows,
                           seconds=time.perf_counter() - t0)
    return _with_baselines(report, rows, aligner, text)


def evaluate_inspections(
    inspections: Sequence[Inspection],
    gold: Any,
    *,
    convention: str = DEFAULT_CONVENTION,
    extraction: Extraction = "argmax",
    sources: str | Sequence[str] = DEFAULT_SOURCES,
    reverse: bool = False,
    index_base: int | None = None,
    src_pool: Pool = "sum",
    tgt_pool: Pool = "mean",
    aligner: str | None = "eflomal",
    aligner_text: AlignerText | None = None,
) -> AlignmentReport:
    """Score already captured forced inspections (one per gold sentence, same order).

    The scoring half of :func:`evaluate`: same checks, same counts, same report. ``gold`` as in
    :func:`evaluate`, or a list of rows ``{"source_words", "target_words", "sure", "possible"}``.

    >>> rows = [{"source_words": ["a"], "target_words": ["x"], "sure": [[0, 0]], "possible": []}]
    >>> evaluate_inspections([insp], rows, sources="heads").best_aer          # doctest: +SKIP
    0.0
    """
    t0 = time.perf_counter()
    convs = check_conventions(convention)
    check_extraction(extraction)
    check_sources(sources)
    given_rows = isinstance(gold, list) and bool(gold) and isinstance(gold[0], dict)
    rows = gold if given_rows else _gold_rows(gold, reverse, index_base, None)
    if len(rows) != len(inspections):
        raise InputError(f"{len(inspections)} inspections for {len(rows)} gold sentences")
    text = _check_aligner(aligner, aligner_text)
    scorer = Scorer(convs, extraction, sources, len(rows), (src_pool, tgt_pool))
    with torch.no_grad():
        for k, (insp, row) in enumerate(zip(inspections, rows)):
            scorer.add(k, insp, row)
    report = scorer.report(model_name=inspections[0].model_name if inspections else "",
                           gold_name="rows" if given_rows else _gold_name(gold), gold=rows,
                           seconds=time.perf_counter() - t0)
    return _with_baselines(report, rows, aligner, text)


# ---- baselines -------------------------------------------------------------------------------


def _check_aligner(aligner: str | None, aligner_text: AlignerText | None) -> tuple[list[str], list[str]] | None:
    """Refuse a bad ``aligner`` / ``aligner_text`` before any work; the text's lines, read."""
    if aligner is not None and aligner not in ALIGNERS:
        raise InputError(f"aligner must be one of {ALIGNERS} or None (the diagonal only), not {aligner!r}")
    if aligner_text is not None and aligner is None:
        raise InputError("aligner_text trains the statistical aligner: drop aligner=None or aligner_text")
    return None if aligner_text is None else read_aligner_text(aligner_text)


def _with_baselines(report: AlignmentReport, rows: list[Row], aligner: str | None,
                    text: tuple[list[str], list[str]] | None) -> AlignmentReport:
    """``report`` with the diagonal and statistical-aligner baselines scored on ``rows``."""
    report.baselines, notes = score_baselines(rows, aligner=aligner, aligner_text=text)
    report.notes.extend(notes)
    return report


# ---- gold ------------------------------------------------------------------------------------


def _gold_rows(gold: Any, reverse: bool, index_base: int | None, limit: int | None) -> list[Row]:
    """The first ``limit`` gold rows (``source_words, target_words, sure, possible``) of ``gold``."""
    ds = gold
    if isinstance(gold, (str, os.PathLike, tuple, list)):
        ds = load_gold(gold, reverse=reverse, index_base=index_base)
    elif reverse or index_base is not None:
        raise InputError("reverse / index_base apply when loading gold files; pass a name or paths, not a dataset")
    if limit is not None and (not isinstance(limit, int) or limit < 1):
        raise InputError(f"limit={limit!r}: pass a positive number of sentences, or None for all")
    if not hasattr(ds, "column_names") or any(c not in ds.column_names for c in _COLUMNS):
        raise InputError(f"gold must be a gold set name, file paths or a datasets.Dataset with the columns {_COLUMNS} "
                         f"(as made by headscope.align.load_gold), not {type(gold).__name__}")
    n = len(ds) if limit is None else min(len(ds), limit)
    data = ds[:n]
    return [{c: data[c][k] for c in _COLUMNS} for k in range(n)]


def _gold_name(gold: Any) -> str:
    if isinstance(gold, str):
        return gold
    if hasattr(gold, "column_names"):
        return "dataset"
    if isinstance(gold, (tuple, list)):
        return " ".join(str(p) for p in gold)
    return type(gold).__name__


# ---- running the model -----------------------------------------------------------------------


def _run_batches(loaded: LoadedModel, rows: list[Row], batch_size: int, kinds: list[str], scorer: Scorer,
                 advance: Callable[[int], Any] | None, work: WorkFolder | None = None,
                 processes: int | None = None, mixing: Sequence[str] = ()) -> None:
    """Force the gold rows through the model in length-sorted batches; score each sentence.

    The batches are the pieces of the run (:func:`headscope.distributed.run_pieces`): with ``work``,
    a batch saved there is added back from its links instead, and a batch scored here is saved
    there at once; batches scored by other processes are added back from their links.
    """
    order = sorted(range(len(rows)), key=lambda k: len(rows[k]["source_words"]) + len(rows[k]["target_words"]))
    chunks = [order[start:start + batch_size] for start in range(0, len(order), batch_size)]
    added: set[int] = set()

    def compute(b: int) -> bytes:
        chunk = chunks[b]
        try:
            insps = inspect(loaded, [rows[k]["source_words"] for k in chunk],
                            target=[rows[k]["target_words"] for k in chunk],
                            is_split_into_words=True, kinds=kinds, batch_size=batch_size,
                            **({"readings": list(mixing)} if mixing else {}))
        except InputError as err:
            raise (_too_long(loaded, rows, chunk) or err) from None
        for k, insp in zip(chunk, insps):
            scorer.add(k, insp, rows[k])
        added.add(b)
        return _piece(scorer, chunk)

    pieces = run_pieces(len(chunks), compute, suffix=_PIECE, work=work, processes=processes,
                        check=lambda b, data: _unreadable(data, chunks[b]),
                        progress=None if advance is None else lambda b: advance(len(chunks[b])),
                        on_device=lambda device: placed(loaded.model, device), unit="batch")
    for b, data in enumerate(pieces):
        if b not in added:
            _restore(data, chunks[b], rows, scorer)


_PIECE = "npz"


def _piece(scorer: Scorer, chunk: list[int]) -> bytes:
    """One batch's link masks and the readings they belong to, as ``.npz`` bytes."""
    assert scorer.readings is not None
    meta = {"sentences": chunk, "readings": [r.name for r in scorer.readings], "layers": scorer.layers,
            "n_heads": scorer.n_heads}
    arrays = {f"{c}.{k}": m for k in chunk for c, m in scorer.saved(k).items()}
    buf = io.BytesIO()
    np.savez(buf, meta=np.array(json.dumps(meta)), **arrays)
    return buf.getvalue()


def _read_piece(data: bytes, chunk: list[int]) -> tuple[dict[str, Any], list[dict[str, np.ndarray]]]:
    """The meta data and per-sentence link masks of a saved batch (``ValueError`` & co. if damaged)."""
    with np.load(io.BytesIO(data), allow_pickle=False) as npz:
        meta = json.loads(str(npz["meta"]))
        if meta["sentences"] != chunk:
            raise ValueError(f"it holds sentences {meta['sentences'][:3]}..., this batch {chunk[:3]}...")
        names = [k for k in npz.files if k != "meta"]
        conventions = sorted({n.split(".")[0] for n in names})
        return meta, [{c: npz[f"{c}.{k}"] for c in conventions} for k in chunk]


def _unreadable(data: bytes, chunk: list[int]) -> str | None:
    """Why the saved batch ``data`` cannot be added back, or ``None``."""
    try:
        meta, _ = _read_piece(data, chunk)
        [parse_reading(n) for n in meta["readings"]]
    except (OSError, ValueError, KeyError, TypeError, EOFError) as err:
        return str(err)
    return None


def _restore(data: bytes, chunk: list[int], rows: list[Row], scorer: Scorer) -> None:
    """Add a batch back from its saved piece ``data``."""
    meta, saved = _read_piece(data, chunk)
    readings = [parse_reading(n) for n in meta["readings"]]
    for k, masks in zip(chunk, saved):
        scorer.restore(k, rows[k], masks, readings, meta["layers"], int(meta["n_heads"]))


def _too_long(loaded: LoadedModel, rows: list[Row], chunk: list[int]) -> InputError | None:
    """An error naming the first gold sentence of ``chunk`` longer than the model accepts, if any."""
    limit = loaded.max_length
    if limit is None:
        return None
    tokenizer = copy.deepcopy(loaded.tokenizer)  # a private copy: a tokenizer's padding state is per call
    for side, key in (("source", "text"), ("target", "text_target")):
        words = [rows[k][f"{side}_words"] for k in chunk]
        for k, ids in zip(chunk, tokenizer(**{key: words}, is_split_into_words=True)["input_ids"]):
            if len(ids) > limit:
                return InputError(f"gold sentence {k} ({side}) is {len(ids)} tokens long but {loaded.name} accepts "
                                  f"at most {limit}; leave it out of the gold set (cutting it would drop gold words)")
    return None


# ---- no vocabulary projection ----------------------------------------------------------------

_SKIP_PROJECTION: ContextVar[bool] = ContextVar("headscope_align_skip_projection", default=False)
_GATE_LOCK = threading.Lock()


class _ProjectionGate:
    """An output layer's ``forward`` while evaluations run on its model: in a context that skips the
    projection it returns zeros of width 1; everywhere else (another thread's plain forward) it is
    the layer's own forward."""

    def __init__(self, layer: torch.nn.Linear) -> None:
        self.own = type(layer).forward.__get__(layer)
        self.users = 0

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if _SKIP_PROJECTION.get():
            return x.new_zeros(()).expand(*x.shape[:-1], 1)
        return self.own(x)


@contextlib.contextmanager
def skip_vocabulary_projection(model: Any) -> Iterator[None]:
    """Skip the output layer's vocabulary projection in this context while the block runs.

    Alignment reads attention only, and the projection (``d_model x vocabulary``, the last op of a
    seq2seq forward) is a fifth or more of a small translator's forward. Inside the block, forward
    passes run in this context get meaningless logits (zeros of width 1, plus any final bias);
    attention is untouched, and passes on other threads compute the projection as usual. The layer
    is given back exactly as it was when the last such block ends, also on an exception. Models
    whose output layer is not a plain ``Linear`` with its class's own ``forward`` are left alone.

    >>> with skip_vocabulary_projection(model):                                # doctest: +SKIP
    ...     insp = headscope.inspect((model, tokenizer), words, target=words, is_split_into_words=True)
    """
    get = getattr(model, "get_output_embeddings", None)
    layer = get() if callable(get) else None
    gate = None
    if isinstance(layer, torch.nn.Linear):
        with _GATE_LOCK:
            gate = vars(layer).get("forward")
            if gate is None:
                gate = layer.forward = _ProjectionGate(layer)
            if isinstance(gate, _ProjectionGate):
                gate.users += 1
            else:  # the layer's forward is someone else's: leave it alone
                gate = None
    if gate is None:
        yield
        return
    token = _SKIP_PROJECTION.set(True)
    try:
        yield
    finally:
        _SKIP_PROJECTION.reset(token)
        with _GATE_LOCK:
            gate.users -= 1
            if gate.users == 0:
                del layer.forward
