"""bertviz views of an :class:`~headscope.Inspection`, as pages that open offline.

bertviz's ``head_view`` / ``model_view`` (with ``html_action="return"``) write every weight as
JSON text and load require.js, d3 and jQuery from a CDN. Here the weights are rounded to
``decimals`` (and layers/heads can be subset) before bertviz sees them, the CDN loads are
replaced by the copies shipped in ``headscope/viz/static`` (inlined into the page, licence
notices kept), and the element id bertviz draws at random is made deterministic, so the same
inspection always gives the same bytes.

These views support the **plausibility** claim only: they show what the weights look like, not
whether they align with gold links or drove the output.
"""

from __future__ import annotations

import hashlib
import html as _html
import json
import os
import re
import sys
import warnings
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import torch

from headscope.errors import InputError, TooLargeError
from headscope.inspection import Inspection

from .files import write_atomic

__all__ = ["DEFAULT_MAX_BYTES", "HTMLPage", "REFUSE_BYTES", "bertviz_fragment", "estimate_bytes", "offline_scripts",
           "page_params", "to_bertviz"]

#: Above this many bytes of page, :func:`to_bertviz` warns (a browser struggles with tens of MB).
DEFAULT_MAX_BYTES = 10_000_000
REFUSE_BYTES = 200_000_000
"""A bertviz page estimated larger than this is refused (:class:`~headscope.errors.TooLargeError`):
its weights alone would not load in a browser (a 4,096-token input of 6 layers x 12 heads is ~7 GB)."""

VIEWS = ("head", "model")

_STATIC = (
    # (file, global it sets, AMD module name bertviz asks for)
    ("d3-5.7.0.min.js", "d3", "d3"),
    ("jquery-3.7.1.min.js", "jQuery", "jquery"),
)
_REQUIRE = "require-2.3.6.js"
_CDN_TAG = re.compile(r'<script src="https?://[^"]*require[^"]*"></script>')
_REQUIRE_CONFIG = re.compile(r"require\.config\(\{.*?\}\);", re.S)
_VIS_ID = re.compile(r"bertviz-[0-9a-f]{32}")

#: The head view as bertviz draws it is ~115 px of lines between the token columns, each line at
#: opacity weight / (heads shown): with all heads on, faint hairlines. headscope widens the space
#: between the columns, thickens the lines and draws them at opacity sqrt(weight / heads shown)
#: (monotone in the weight, as before, but a weight of 0.1 of one of 4 heads is visible: 0.16,
#: not 0.025). The caption says so.
HEAD_VIEW_PATCHES = (
    ("const MATRIX_WIDTH = 115;", "const MATRIX_WIDTH = 360;"),
    ("const BOXWIDTH = 110;", "const BOXWIDTH = 130;"),
    ('.attr("stroke-width", 2)', '.attr("stroke-width", 3)'),
    ("return d / activeHeads()", "return Math.sqrt(d / activeHeads())"),
)
HEAD_VIEW_NOTE = ("Line opacity is √(weight / heads shown), so that weak links stay visible; "
                  "click a head's colour square to hide or show it, double-click it to show it alone.")


class HTMLPage(str):
    """An HTML page as a ``str``; Jupyter shows it inline (in an isolated iframe)."""

    height = 720

    def _repr_html_(self) -> str:
        """The page in a sandboxed ``<iframe>``, for Jupyter."""
        return (f'<iframe srcdoc="{_html.escape(self, quote=True)}" style="width:100%;height:{self.height}px;'
                'border:1px solid #ddd" sandbox="allow-scripts"></iframe>')

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the page (UTF-8) atomically.

        Parameters
        ----------
        path
            The ``.html`` file to write (its folder is created when missing).

        Returns
        -------
        Path
            The written file.
        """
        return write_atomic(path, str(self))


def _static(name: str) -> str:
    """The text of one script shipped in ``headscope/viz/static``."""
    return resources.files("headscope.viz").joinpath("static").joinpath(name).read_text(encoding="utf-8")


def offline_scripts() -> str:
    """``<script>`` blocks that make bertviz's ``requirejs(['jquery', 'd3'], ...)`` work offline.

    d3 and jQuery are inlined first (no AMD loader yet, so they set ``window.d3`` /
    ``window.jQuery``), then require.js, then named modules ``d3`` / ``jquery`` returning those
    globals. Include once per page, before any bertviz fragment.

    Returns
    -------
    str
        The four ``<script>`` elements.
    """
    parts = []
    for name, _, _ in _STATIC:
        parts.append(f"<script>/* {name}: see its licence in headscope/viz/static */\n{_static(name)}\n</script>")
    parts.append(f"<script>/* {_REQUIRE}: MIT, see headscope/viz/static/LICENSE-requirejs.txt */\n"
                 f"{_static(_REQUIRE)}\n</script>")
    defines = "".join(f"define('{module}',[],function(){{return window.{glob};}});" for _, glob, module in _STATIC)
    parts.append(f"<script>{defines}</script>")
    return "\n".join(parts)


def _round(att: torch.Tensor, decimals: int) -> torch.Tensor:
    """float64 weights rounded to ``decimals`` places (their JSON text is then short: ``0.123``)."""
    scale = 10.0 ** decimals
    return torch.round(att.detach().to(torch.float64) * scale) / scale


def _kinds_for(insp: Inspection, kinds: Sequence[str] | None) -> list[str]:
    """The kinds to show (default: every captured kind), each checked to be captured."""
    chosen = list(insp.kinds if kinds is None else kinds)
    if not chosen and kinds is None and (insp.reduced or insp.streamed_to):  # issue 17: long inputs
        insp.layer_maps(next(iter(insp.reduced), "encoder"))  # raises InputError saying where the maps are
    for k in chosen:
        insp.kind_maps(k)  # raises InputError naming the captured kinds
    if not chosen:
        raise InputError("no attention kind to show; pass kinds= with at least one of " + str(insp.kinds))
    return chosen


def _select(insp: Inspection, kinds: list[str], layers: Sequence[int] | None,
            heads: Sequence[int] | None) -> tuple[list[int], list[int], dict[str, dict[int, torch.Tensor]]]:
    """Model layer indices shown, heads shown, and ``{kind: {layer: [1, heads, q, k]}}``."""
    index = {k: insp.layer_indices(k) for k in kinds}
    if layers is None:
        shown = index[kinds[0]]
        if any(index[k] != shown for k in kinds):
            raise InputError(
                f"the kinds have different layers ({index}); bertviz shows one layer list for all kinds: "
                "pass layers= present in every kind, or kinds= to show one kind"
            )
    else:
        shown = [int(x) for x in layers]
        for k in kinds:
            missing = [x for x in shown if x not in index[k]]
            if missing:
                raise InputError(f"layer(s) {missing} of {k!r} were not captured; captured layers: {index[k]}")
    if not shown:
        raise InputError("layers= is empty; give at least one layer")
    n_heads = {insp.shape(k)[1] for k in kinds}
    head_list = list(range(min(n_heads))) if heads is None else [int(h) for h in heads]
    for h in head_list:
        if not all(0 <= h < n for n in n_heads):
            raise InputError(f"head {h} out of range: the shown kinds have {sorted(n_heads)} heads")
    if not head_list:
        raise InputError("heads= is empty; give at least one head")
    data = {k: {layer: insp.map(k, layer)[head_list].unsqueeze(0) for layer in shown} for k in kinds}
    return shown, head_list, data


def estimate_bytes(insp: Inspection, kinds: Sequence[str], layers: Sequence[int] | None = None,
                   heads: Sequence[int] | None = None, decimals: int = 3) -> int:
    """Estimated size of a bertviz page's weights: one ``0.xyz,`` (``decimals + 3`` characters) per
    shown weight, ``layers x heads x query x key`` per kind (before any map is read).

    >>> estimate_bytes(insp, ["encoder"], layers=[0], heads=[0])    # doctest: +SKIP
    768
    """
    total = 0
    for k in kinds:
        n_layers = len(insp.layer_indices(k)) if layers is None else len(list(layers))
        n_heads = insp.shape(k)[1] if heads is None else len(list(heads))
        total += n_layers * n_heads * len(insp.query_tokens(k)) * len(insp.key_tokens(k))
    return total * (decimals + 3)


def _bertviz_html(insp: Inspection, view: str, kinds: list[str], shown: list[int], head_list: list[int],
                  data: dict[str, dict[int, torch.Tensor]], decimals: int) -> str:
    """bertviz's own HTML of the view (with its CDN loads, fixed up by :func:`bertviz_fragment`)."""
    import bertviz  # imported on first use: it pulls in IPython

    # bertviz indexes the per-layer list by layer number (format_attention) and reads the head
    # count from entry 0: a list indexed by model layer, unshown layers filled with a shown one.
    rounded = {}
    for k, per in data.items():
        maps = {layer: _round(t, decimals) for layer, t in per.items()}
        filler = maps[shown[0]]
        rounded[k] = [maps.get(layer, filler) for layer in range(max(shown) + 1)]
    kw: dict[str, Any] = {"html_action": "return", "include_layers": shown}
    if view == "model":
        kw["include_heads"] = list(range(len(head_list)))
        kw["display_mode"] = "light"
    if insp.architecture.has_target:
        names = {"encoder": "encoder_attention", "decoder": "decoder_attention", "cross": "cross_attention"}
        for k in kinds:
            kw[names[k]] = rounded[k]
        if "encoder" in kinds or "cross" in kinds:
            kw["encoder_tokens"] = list(insp.source_tokens)
        if "decoder" in kinds or "cross" in kinds:
            if insp.target_tokens is None:
                raise InputError("this encoder-decoder inspection has no target tokens to label the decoder side")
            kw["decoder_tokens"] = list(insp.target_tokens)
    else:
        if len(kinds) != 1:
            raise InputError(f"a {insp.architecture.name} model has one attention kind; got kinds={kinds}")
        kw["attention"] = rounded[kinds[0]]
        kw["tokens"] = list(insp.query_tokens(kinds[0]))
    fn = bertviz.head_view if view == "head" else bertviz.model_view
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)  # bertviz 1.4.1 reads its .js without closing it
        return fn(**kw).data


_PARAMS_AT = "const params = "
_INTEGRAL = re.compile(r"(?<=[\[,])(-?\d+)\.0(?=[,\]])")


def _compact_params(raw: str) -> str:
    """Re-serialise bertviz's embedded parameters compactly (no spaces, ``0`` for ``0.0``) and safely.

    bertviz writes ``json.dumps(params)`` (``", "`` separators, ``0.0``); the JSON is read back
    with ``raw_decode`` and written again; ``<`` is escaped so that a token such as ``</script>``
    cannot end the script element early. bertviz's ``str.replace`` of its template marker also
    pastes a second copy of the JSON into a comment; that copy is dropped.
    """
    start = raw.index(_PARAMS_AT) + len(_PARAMS_AT)
    params, end = json.JSONDecoder().raw_decode(raw, start)
    text = json.dumps(params, ensure_ascii=False, separators=(",", ":"))
    text = _INTEGRAL.sub(r"\1", text).replace("<", "\\u003c").replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")
    rest = raw[end:]
    if rest.startswith("; // HACK"):  # bertviz's replace() also pasted the whole JSON into this comment
        rest = ";" + rest[rest.index("\n"):]
    return raw[:start] + text + rest


def bertviz_fragment(insp: Inspection, view: str = "head", *, layers: Sequence[int] | None = None,
                     heads: Sequence[int] | None = None, kinds: Sequence[str] | None = None,
                     decimals: int = 3) -> str:
    """The bertviz view's ``<div>`` and ``<script>`` with no CDN loads (needs :func:`offline_scripts`).

    For pages holding several views (the report); :func:`to_bertviz` wraps one into a page.

    Parameters
    ----------
    insp
        The inspection.
    view
        ``"head"`` or ``"model"``.
    layers, heads, kinds, decimals
        As for :func:`to_bertviz`.

    Returns
    -------
    str
        A ``<div class="headscope-bertviz">`` holding a caption and the view.

    Raises
    ------
    headscope.errors.InputError
        An unknown view, a kind, layer or head that was not captured, or ``decimals`` outside 1..8.
    """
    if view not in VIEWS:
        raise InputError(f"view must be one of {VIEWS}, not {view!r}")
    if not isinstance(decimals, int) or not 1 <= decimals <= 8:
        raise InputError(f"decimals must be an integer from 1 to 8, not {decimals!r}")
    chosen = _kinds_for(insp, kinds)
    size = estimate_bytes(insp, chosen, layers, heads, decimals)
    if size > REFUSE_BYTES:
        n = max(len(insp.query_tokens(k)) for k in chosen)
        raise TooLargeError(
            f"the bertviz {view} view of this {n}-token input would be about {size / 1e6:,.1f} MB of weights "
            f"(over {REFUSE_BYTES / 1e6:,.0f} MB; a browser cannot load it): pass layers=[...] and heads=[...] "
            "to show a few heads, kinds=[...], fewer decimals=, or inspect a shorter text")
    shown, head_list, data = _select(insp, chosen, layers, heads)
    raw = _bertviz_html(insp, view, chosen, shown, head_list, data, decimals)
    raw = _compact_params(raw)
    if view == "head":
        for old, new in HEAD_VIEW_PATCHES:
            if old not in raw:
                raise RuntimeError(f"bertviz's head view changed: {old!r} not found; update HEAD_VIEW_PATCHES")
            raw = raw.replace(old, new)
    raw = _CDN_TAG.sub("", raw)
    raw = _REQUIRE_CONFIG.sub("/* headscope: d3 and jquery are defined inline (offline) */", raw, count=1)
    raw = _VIS_ID.sub("bertviz-ID", raw)
    digest = hashlib.sha1(raw.encode("utf-8")).hexdigest()[:16]
    raw = raw.replace("bertviz-ID", f"bertviz-{view}-{digest}")
    caption = _caption(insp, view, chosen, shown, head_list)
    return f'<div class="headscope-bertviz" data-view="{view}">\n<p class="hs-caption">{caption}</p>\n{raw}\n</div>'


def _caption(insp: Inspection, view: str, kinds: list[str], shown: list[int], head_list: list[int]) -> str:
    """What the view shows, and that it is a picture, not evidence."""
    n_heads = min(insp.shape(k)[1] for k in kinds)
    heads_txt = "all heads" if head_list == list(range(n_heads)) else (
        f"heads {head_list} (numbered 0..{len(head_list) - 1} in the view)")
    parts = [f"bertviz {view} view of {_html.escape(insp.model_name)}: {', '.join(kinds)} attention, "
             f"layers {shown}, {heads_txt}."]
    if any(insp.architecture.query_is_target(k) for k in kinds):
        parts.append("Decoder positions are labelled by the token they output (their input is the previous "
                     "output, or the start token).")
    if view == "head":
        parts.append(HEAD_VIEW_NOTE)
    parts.append("A picture of the weights (plausibility), not evidence of alignment or faithfulness.")
    return " ".join(parts)


def _page(title: str, body: str) -> str:
    """A whole page around one view, its scripts inlined."""
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            f"<title>{_html.escape(title)}</title>\n"
            "<style>body{font-family:Helvetica,Arial,sans-serif;margin:1.5em;color:#222}"
            ".hs-caption{color:#555;font-size:0.9em;max-width:60em}</style>\n"
            f"</head>\n<body>\n{offline_scripts()}\n{body}\n</body>\n</html>\n")


def _in_notebook() -> bool:
    """Whether this runs in a Jupyter kernel (IPython already imported and a kernel shell active)."""
    ipython = sys.modules.get("IPython")
    get_ipython = getattr(ipython, "get_ipython", None)
    shell = get_ipython() if get_ipython is not None else None
    return type(shell).__name__ in ("ZMQInteractiveShell", "Shell")


def to_bertviz(insp: Inspection, view: str = "head", path: str | os.PathLike[str] | None = None,
               layers: Sequence[int] | None = None,
               heads: Sequence[int] | None = None, decimals: int = 3, max_bytes: int | None = DEFAULT_MAX_BYTES,
               *, kinds: Sequence[str] | None = None, display: bool | None = None) -> HTMLPage:
    """bertviz ``head_view`` / ``model_view`` of ``insp`` as one page that opens offline.

    Encoder-decoders show encoder, decoder and cross attention (a selector switches between
    them), labelled with the source tokens and the (generated or forced) output tokens.

    Parameters
    ----------
    insp
        The inspection.
    view
        ``"head"`` or ``"model"``.
    path
        Write the page here (atomically) when given.
    layers
        Model layer indices to show (default: all captured).
    heads
        Head indices to show (default: all).
    decimals
        Weights are rounded to this many places (1..8).
    max_bytes
        Warn when the page is larger (``None``: never).
    kinds
        Attention kinds to show (default: every captured kind).
    display
        ``True``: display the page with IPython now; ``None``: do so in a notebook only when
        ``path`` is given (otherwise the returned page displays itself as a cell result).

    Returns
    -------
    HTMLPage
        The page, a ``str`` that Jupyter renders inline.

    Raises
    ------
    headscope.errors.InputError
        An unknown view, a kind, layer or head that was not captured, or bad ``decimals``.
    headscope.errors.TooLargeError
        The page's weights are estimated over :data:`REFUSE_BYTES` (a long input): the message names
        the size; show fewer ``layers`` / ``heads`` / ``kinds``.
    """
    fragment = bertviz_fragment(insp, view, layers=layers, heads=heads, kinds=kinds, decimals=decimals)
    page = HTMLPage(_page(f"headscope {view} view: {insp.source_text}", fragment))
    page.height = 760 if view == "head" else 1200
    size = len(page.encode("utf-8"))
    if max_bytes is not None and size > max_bytes:
        warnings.warn(
            f"the bertviz page is {size / 1e6:.1f} MB (over {max_bytes / 1e6:.1f} MB); browsers get slow. "
            "Pass layers=[...], heads=[...], kinds=[...] or fewer decimals= to shrink it",
            stacklevel=2,
        )
    if path is not None:
        page.save(path)
    if display or (display is None and path is not None and _in_notebook()):
        from IPython.display import display as _display

        _display(page)
    return page


def page_params(page: str) -> list[dict[str, Any]]:
    """The bertviz parameter objects embedded in a page (for tests and tools).

    Parameters
    ----------
    page
        A page or fragment made by :func:`to_bertviz` / :func:`bertviz_fragment`.

    Returns
    -------
    list of dict
        One parameter object per view, in page order.
    """
    out = []
    decoder = json.JSONDecoder()
    at = page.find(_PARAMS_AT)
    while at >= 0:
        params, end = decoder.raw_decode(page, at + len(_PARAMS_AT))
        out.append(params)
        at = page.find(_PARAMS_AT, end)
    return out
