"""``fragmentation(insp)``: how the single-map reading breaks apart, for one input.

Collects, per attention kind, the disagreement between heads (JS divergence, rank
correlation, effective number of distinct maps) and the head taxonomy with sink mass; and,
across *readings* of the input (single heads, layer means, the all-heads mean, rollout, flow,
and token importance from :mod:`headscope.faithful`: gradient, leave-one-out), the Kendall τ
agreement matrix. The result is a :class:`~headscope.fragment.result.Fragmentation`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..aggregate import map_readings, reading_map
from ..aggregate.maps import reading_rows
from ..errors import InputError
from ..faithful import list_methods, token_importance
from ..inspection import Inspection
from ..readings import KINDS, Flow, Head, Reading, Site, parse_reading
from .agreement import agreement_matrix
from .disagreement import effective_maps, pairwise_js, pairwise_rank_correlation
from .result import Fragmentation, KindFragmentation, ReadingKey
from .taxonomy import classify_heads

MAX_SINGLE_HEADS = 24  # above this many heads of the compared kind, only the last layer's heads are readings
FAITHFUL_METHODS = ("gradient", "loo")


def kind_fragmentation(att: Any, kind: str, key_tokens: Sequence[str] | None = None,
                       layers: Sequence[int] | None = None, positions: Sequence[int] | None = None,
                       n_query: int | None = None) -> KindFragmentation:
    """Disagreement and taxonomy of the heads in ``att`` ``[layers, heads, q, k]`` (torch or numpy).

    ``key_tokens`` marks the sink tokens (special tokens, punctuation); ``layers`` gives the
    model's layer index of each captured layer (default ``0, 1, ...``). When ``att`` holds only
    some query rows of maps with ``n_query`` rows (the whole rows a reduced capture kept),
    ``positions`` gives the query position of each: every statistic is then the full-map one
    averaged over those rows only, and the result records them (``rows``).

    >>> import numpy as np
    >>> kf = kind_fragmentation(np.tile(np.eye(3), (2, 2, 1, 1)), "encoder")
    >>> kf.n_heads, round(kf.effective_maps, 6), kf.shares
    (4, 1.0, {'diagonal': 1.0})
    """
    arr = att.detach().float().cpu().numpy() if hasattr(att, "detach") else np.asarray(att, dtype=np.float64)
    flat = arr.reshape(-1, *arr.shape[-2:])
    js = pairwise_js(flat)
    labels, sink, shares = classify_heads(arr, kind, key_tokens=key_tokens, positions=positions, n_query=n_query)
    index = list(range(arr.shape[0])) if layers is None else [int(x) for x in layers]
    return KindFragmentation(kind, index, flat.shape[0], js, pairwise_rank_correlation(flat),
                             effective_maps(1 - js), labels, sink, shares,
                             None if positions is None else [int(p) for p in positions])


def inspection_kind_fragmentation(insp: Inspection, kind: str) -> KindFragmentation:
    """:func:`kind_fragmentation` of the maps of ``kind`` in ``insp``, or, when the inspection kept
    only reductions (a long input, ``headscope.inspect(..., reduce=["rows=0,-1"])``; issue 17), of the
    whole query rows it kept: the same statistics as from full maps, over those rows.

    >>> insp = headscope.inspect("headscope/sentiment", "fine", reduce=["rows=0,-1"])   # doctest: +SKIP
    >>> inspection_kind_fragmentation(insp, "encoder").rows                            # doctest: +SKIP
    [0, 2]
    """
    rows = reading_rows(insp, kind)
    if rows is None:
        return kind_fragmentation(insp.kind_maps(kind), kind, insp.key_tokens(kind), insp.layer_indices(kind))
    kept = insp.reduced.get(kind, {}).get("rows")
    if kept is None:
        raise InputError(f"fragmentation of {kind!r} compares heads row by row, but this inspection kept only "
                         f"{', '.join(sorted(insp.reduced.get(kind, {}))) or 'no reductions of it'}; inspect with "
                         "reduce=['rows=0,-1'] (the query rows to compare them on; headscope.capture.reduce_for "
                         "picks them), full maps (no reduce=) or stream_to=")
    return kind_fragmentation(kept, kind, insp.key_tokens(kind), insp.layer_indices(kind), positions=rows,
                              n_query=len(insp.query_tokens(kind)))


def inspection_kinds(insp: Inspection) -> list[str]:
    """The kinds of ``insp`` with maps or reductions, in the order encoder, decoder, cross."""
    return [k for k in KINDS if k in insp.attentions or k in insp.reduced]


def decision_rows(insp: Inspection, kind: str) -> slice | int:
    """The rows of ``kind`` maps that explain the output, as an index into the query axis.

    When the rows are target tokens of a generated (or forced) text, each explains its own output
    token: ``slice(None)``. Otherwise one position carries the decision, the one the architecture
    reads it from (``decision_rows``): the first ([CLS]) of an encoder, the last of a causal decoder.

    >>> decision_rows(insp, "cross"), decision_rows(bert_insp, "encoder")     # doctest: +SKIP
    (slice(None, None, None), 0)
    """
    arch = insp.architecture
    if arch.query_is_target(kind) and "label" not in insp.prediction:
        return slice(None)
    return arch.decision_rows(len(insp.query_tokens(kind)), 1)[0]


def explained_rows(insp: Inspection) -> slice | np.ndarray:
    """The rows of the compared readings that are decisions worth explaining: every output token
    that belongs to a word, special ones (a final ``</s>``) left out, as
    :func:`headscope.faithful.compare_rankings` does; the one row of a label or next-token decision.

    >>> explained_rows(headscope.inspect("headscope/en-fr", "A red car."))   # doctest: +SKIP
    array([0, 1, 2, 3])
    """
    kind = insp.architecture.decision_kind()
    if isinstance(decision_rows(insp, kind), int) or insp.target_word_ids is None:
        return slice(None)
    return np.array([t for t, w in enumerate(insp.target_word_ids) if w is not None], dtype=int)


def attention_readings(insp: Inspection) -> dict[Reading, np.ndarray]:
    """Readings from the maps alone: single heads, layer means, the all-heads mean, rollout, flow.

    Maps are those of the architecture's ``decision_kind``, at the rows of :func:`decision_rows`: cross-attention
    ``[T, S]`` for encoder-decoders; the first-token ([CLS]) row ``[S]`` of an encoder; the last
    row of a decoder-only model. Single heads are left out (layer means kept) above
    ``MAX_SINGLE_HEADS`` heads but for the last layer's. On an inspection that kept reductions
    instead of maps, the rows come from the whole query rows it kept (which must include the
    decision rows), and rollout and flow, which need whole maps, are left out.

    >>> list(attention_readings(insp))[-2:]      # doctest: +SKIP
    [HeadsMean(kind='cross'), Rollout(kind='cross')]
    """
    kind = insp.architecture.decision_kind()
    rows = decision_rows(insp, kind)
    n_layers, n_heads = insp.shape(kind)
    last = insp.layer_indices(kind)[-1]
    out: dict[Reading, np.ndarray] = {}
    for reading in map_readings(insp, kind, flow_too=True):
        if isinstance(reading, Head) and n_layers * n_heads > MAX_SINGLE_HEADS and reading.layer != last:
            continue
        if isinstance(reading, Flow) and isinstance(rows, int):  # the one row only: exact, and far cheaper
            out[reading] = reading_map(insp, reading, rows=[rows])[0].numpy()
        else:
            out[reading] = _decision_map(insp, reading, kind, rows)
    return out


def _decision_map(insp: Inspection, reading: Reading, kind: str, rows: slice | int) -> np.ndarray:
    """``reading``'s map at the decision ``rows``: from the full map, or from the whole rows a reduced
    capture kept (an ``InputError`` names the rows to keep when they were not)."""
    if reading_rows(insp, kind) is None:
        return reading_map(insp, reading)[rows].numpy()
    wanted = list(range(len(insp.query_tokens(kind))))[rows] if isinstance(rows, slice) else [rows]
    m = reading_map(insp, reading, rows=wanted).numpy()
    return m[0] if isinstance(rows, int) else m


def fragmentation(insp: Inspection, *, faithful: bool = True, methods: Sequence[str] = FAITHFUL_METHODS,
                  alignment: Mapping[Reading | Site | str, float] | None = None,
                  references: Mapping[str, np.ndarray] | None = None) -> Fragmentation:
    """How the single-map reading breaks apart for one inspection.

    Parameters
    ----------
    insp
        An inspection from :func:`headscope.inspect` (or :meth:`Inspection.load` with ``faithful=False``).
    faithful
        Add token importance by each of ``methods`` as readings; needs the model (``insp.loaded``).
    methods
        :func:`headscope.faithful.list_methods` names to add (default gradient and leave-one-out).
    alignment
        AER of readings scored against gold links (e.g. from :func:`headscope.align.evaluate`),
        keyed by reading (``Head("cross", 2, 2)`` or ``"cross.2.2"``), reported under the alignment claim.
    references
        Importance scores measured elsewhere, by name, over the source tokens (one value per token, or
        one row per decision of an encoder-decoder), compared like ``methods``' (e.g. the image tests
        of :func:`headscope.vision.image_fragmentation`).

    Returns
    -------
    Fragmentation
        Per kind, head disagreement and behaviours; Kendall τ between every pair of readings over
        the source tokens that belong to a word (special tokens left out), averaged over the
        decisions of :func:`explained_rows` (the rows ``headscope.faithful`` explains too).

    Examples
    --------
    >>> frag = fragmentation(headscope.inspect("headscope/en-fr", "A red car."))   # doctest: +SKIP
    >>> print(frag)                                                                 # doctest: +SKIP
    >>> frag.tau_with("loo")                                                        # doctest: +SKIP
    """
    scored = {parse_reading(r): float(v) for r, v in (alignment or {}).items()}
    kinds = {kind: inspection_kind_fragmentation(insp, kind) for kind in inspection_kinds(insp)}
    readings: dict[ReadingKey, np.ndarray] = dict(attention_readings(insp))
    if faithful:
        unknown = [m for m in methods if m not in list_methods()]
        if unknown:
            raise InputError(f"unknown importance method(s) {unknown}; choose from {sorted(list_methods())}")
        if insp.loaded is None:
            raise InputError("faithful=True needs the model, but this inspection has none attached (it was loaded "
                             "from disk); pass faithful=False or re-run headscope.inspect")
        if insp.patch_grid is not None:
            raise InputError(f"faithful=True adds gradient and leave-one-out token importance, which read text; "
                             f"{insp.model_name} read an image: use headscope.vision.image_fragmentation (leave-one-"
                             "patch-out and gradient saliency as the references), or pass faithful=False")
        for method in methods:
            readings[method] = np.asarray(token_importance(insp, method).scores, dtype=np.float64)
    for name, scores in (references or {}).items():
        if name in readings:
            raise InputError(f"references: {name!r} is already a reading here; give it another name")
        readings[name] = np.asarray(scores, dtype=np.float64)
    keep = np.array([w is not None for w in insp.source_word_ids])
    if keep.sum() < 2:
        raise InputError("need at least two source words to rank; give a longer text")
    explained = explained_rows(insp)
    rows = {key: np.atleast_2d(r)[explained][..., keep] for key, r in readings.items()}
    shapes = {str(key): r.shape for key, r in rows.items()}
    if len(set(shapes.values())) != 1:
        raise InputError(f"readings have different shapes: {shapes}")
    keys, tau = agreement_matrix(rows)
    return Fragmentation(insp.model_name, insp.architecture.name, kinds, keys, tau, scored)
