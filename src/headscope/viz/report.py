"""``report(insp, path)``: one self-contained HTML page about one input.

The page shows the model's output (translation or prediction) and every view headscope can
draw for it, each section headed by the claim it supports (one module each in
:mod:`headscope.viz.sections`):

* **Alignment** - attention read as word links and *scored* against gold links (AER per head,
  the best head's map with the gold links drawn in). Without gold links: *not scored*.
* **Plausible** - pictures for a person: the bipartite link picture, word-level matrices
  (heads averaged, rollout), the bertviz head and model views. They show; they measure nothing.
* **Faithful** - interventions on the model: head ablation and token importance (gradients,
  leave-one-out erasure) with Kendall τ between the readings; counterfactual attention (uniform,
  permuted and adversarial maps swapped in during the forward, :mod:`.sections.counterfactual`).
* **Fragmentation** - how far the single-map reading breaks apart.

A section is marked *not applicable* only when its claim is not defined for the input (a
:class:`~headscope.errors.NotApplicableError`, e.g. alignment of a classifier); any other error
propagates and no page is written. Figures are embedded as base64 PNG, the bertviz views with
their scripts inlined: the page needs no network.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from headscope import align
from headscope.errors import NotApplicableError, TooLargeError
from headscope.inspection import Inspection

from .bertviz import REFUSE_BYTES, estimate_bytes, offline_scripts
from .files import check_destination, write_atomic
from .page import Section, page_html
from .sections.alignment import Gold, alignment_section, parse_gold
from .sections.counterfactual import counterfactual_block
from .sections.faithful import faithful_section
from .sections.fragmentation import fragmentation_section
from .sections.image import image_report
from .sections.plausible import plausible_section

__all__ = ["build_report", "report"]

IMPORTANCE_METHODS: tuple[str, ...] = ("attention", "rollout", "gradient", "loo")
MAX_TOKENS = 512
"""The longest input (query or key tokens) a report draws: its figures are ``n x n`` maps with a label per token."""


def check_size(insp: Inspection, *, bertviz: bool = True, bertviz_layers: Sequence[int] | None = None,
               bertviz_heads: Sequence[int] | None = None, decimals: int = 3) -> None:
    """Refuse (:class:`~headscope.errors.TooLargeError`, naming the size and the fix) an inspection
    the report cannot draw: maps not kept in memory, more than :data:`MAX_TOKENS` tokens, or bertviz
    views estimated over :data:`~headscope.viz.bertviz.REFUSE_BYTES`."""
    if not insp.kinds and (insp.reduced or insp.streamed_to):
        where = f"streamed to {insp.streamed_to}" if insp.streamed_to else "reduced (insp.reduced)"
        raise TooLargeError(f"the report draws full attention maps, but this inspection's maps were {where}, not "
                            "kept in memory; inspect without reduce=/stream_to= (an input of at most "
                            f"{MAX_TOKENS} tokens) to report on it")
    n = max(max(len(insp.query_tokens(k)), len(insp.key_tokens(k))) for k in insp.kinds)
    if n > MAX_TOKENS:
        maps = sum(t.numel() * t.element_size() for k in insp.kinds for t in insp.layer_maps(k))
        raise TooLargeError(f"the report draws {n}x{n} maps with a label per token ({maps / 1e6:,.0f} MB of maps); it "
                            f"handles at most {MAX_TOKENS} tokens: report on a shorter text, or read this one with "
                            "reductions (headscope.inspect(..., reduce=[...])) or to_bertviz(layers=[...], heads=[...])")
    if bertviz:
        size = estimate_bytes(insp, insp.kinds, bertviz_layers, bertviz_heads, decimals)
        if size > REFUSE_BYTES:
            raise TooLargeError(f"the report's bertviz views would be about {size / 1e6:,.0f} MB of weights (over "
                                f"{REFUSE_BYTES / 1e6:,.0f} MB): pass bertviz_layers=[...] and bertviz_heads=[...], "
                                "or bertviz=False")


def _claim(claim: str, build: Callable[..., Section], *args: Any, **kwargs: Any) -> Section:
    """``build(*args, **kwargs)``, or a section saying why ``claim`` does not apply to this input."""
    try:
        return build(*args, **kwargs)
    except NotApplicableError as err:
        return Section.not_applicable(claim, str(err))


def build_report(insp: Inspection, gold: Gold | None = None, *, convention: str | None = None,
                 bertviz: bool = True, bertviz_layers: Sequence[int] | None = None,
                 bertviz_heads: Sequence[int] | None = None, decimals: int = 3, faithful: bool = True,
                 importance_methods: Sequence[str] = IMPORTANCE_METHODS, fragmentation: bool = True,
                 min_weight: float = 0.1, counterfactual: bool = True) -> str:
    """The report page of ``insp`` as a string (see :func:`report` for the parameters).

    Returns
    -------
    str
        The HTML document.
    """
    if insp.patch_grid is not None:  # an image: its maps on the patch grid; gold is the object mask (issue 18)
        return image_report(insp, gold, faithful=faithful, fragmentation=fragmentation)
    check_size(insp, bertviz=bertviz, bertviz_layers=bertviz_layers, bertviz_heads=bertviz_heads,
               decimals=decimals)  # issue 17: long inputs
    links = parse_gold(gold)
    rows = convention or align.DEFAULT_CONVENTION
    with warnings.catch_warnings():
        # matplotlib's cosmetic notes on long labels and glyphs missing from its font; the figures are drawn
        warnings.filterwarnings("ignore", message="(Tight layout not applied|Glyph )", category=UserWarning)
        sections = [
            _claim("alignment", alignment_section, insp, links, rows),
            _claim("plausible", plausible_section, insp, convention=rows, bertviz=bertviz,
                   bertviz_layers=bertviz_layers, bertviz_heads=bertviz_heads, decimals=decimals,
                   min_weight=min_weight),
            _claim("faithful", faithful_section, insp, run=faithful, methods=importance_methods),
        ]
        if faithful and counterfactual and insp.loaded is not None:  # counterfactual attention (issue 15)
            counterfactual_block(sections[-1], insp)
        if fragmentation:
            sections.append(_claim("fragmentation", fragmentation_section, insp, faithful=faithful))
    return page_html(insp, sections, offline_scripts() if bertviz else "")


def report(insp: Inspection, path: str | os.PathLike[str], gold: Gold | None = None, *,
           convention: str | None = None, bertviz: bool = True, bertviz_layers: Sequence[int] | None = None,
           bertviz_heads: Sequence[int] | None = None, decimals: int = 3, faithful: bool = True,
           importance_methods: Sequence[str] = IMPORTANCE_METHODS, fragmentation: bool = True,
           min_weight: float = 0.1, counterfactual: bool = True) -> Path:
    """Write one self-contained HTML page about ``insp``.

    Parameters
    ----------
    insp
        The inspection (from :func:`headscope.inspect`; faithfulness needs its model attached).
    path
        An ``.html`` / ``.htm`` file, or a folder that gets ``report.html``.
    gold
        Gold links of this sentence pair (see :func:`~headscope.viz.parse_gold`), word indices
        from 0 over the inspection's words (inspect with ``is_split_into_words=True`` to control
        the words). ``None``: the alignment section says it is not scored. For an image inspection
        (:mod:`headscope.viz.sections.image`): the object's ``[height, width]`` boolean mask, scored
        by the localisation section.
    convention
        Decoder-step rows of cross attention, ``"naive"`` or ``"shift"`` (default
        :data:`headscope.align.DEFAULT_CONVENTION`).
    bertviz
        Include the bertviz head and model views.
    bertviz_layers, bertviz_heads, decimals
        Layers, heads and rounding of the bertviz views (see :func:`~headscope.viz.to_bertviz`).
    faithful
        Run head ablation and token importance (needs the model).
    importance_methods
        Token-importance methods of the faithful section.
    fragmentation
        Include the fragmentation section.
    min_weight
        Lightest link drawn in the bipartite picture.
    counterfactual
        Add counterfactual attention (uniform, permuted, adversarial maps; Jain & Wallace 2019) to the
        faithful section (with ``faithful``).

    Returns
    -------
    Path
        The written page.

    Raises
    ------
    headscope.errors.TooLargeError
        An input too long to draw (over :data:`MAX_TOKENS` tokens, maps not in memory, or bertviz
        views over :data:`~headscope.viz.bertviz.REFUSE_BYTES`): raised before any work, naming the size.
    headscope.errors.HeadscopeError
        Bad input (e.g. gold links outside the sentence); every error other than a section's
        :class:`~headscope.errors.NotApplicableError` propagates, and then no page is written.

    Notes
    -----
    The page is written to a temporary file beside the destination and renamed into place, so an
    existing page is replaced whole or not at all.
    """
    out = Path(path)
    if out.suffix.lower() not in (".html", ".htm"):
        out = out / "report.html"
    check_destination(out, path)  # before the work: a bad path fails at once, naming it
    page = build_report(insp, gold, convention=convention, bertviz=bertviz, bertviz_layers=bertviz_layers,
                        bertviz_heads=bertviz_heads, decimals=decimals, faithful=faithful,
                        importance_methods=importance_methods, fragmentation=fragmentation, min_weight=min_weight,
                        counterfactual=counterfactual)
    return write_atomic(out, page)
