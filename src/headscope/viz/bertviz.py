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
import re
import sys
import warnings
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import torch

from headscope.errors import InputError

__all__ = ["HTMLPage", "to_bertviz", "offline_scripts", "bertviz_fragment", "DEFAULT_MAX_BYTES"]

#: Above this many bytes of page, :func:`to_bertviz` warns (a browser struggles with tens of MB).
DEFAULT_MAX_BYTES = 10_000_000

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


class HTMLPage(str):
    """An HTML page as a ``str``; Jupyter shows it inline (in an isolated iframe)."""

    height = 720

    def _repr_html_(self) -> str:
        return (f'<iframe srcdoc="{_html.escape(self, quote=True)}" style="width:100%;height:{self.height}px;'
                'border:1px solid #ddd" sandbox="allow-scripts"></iframe>')

    def save(self, path: str | Path) -> Path:
        """Write the page (UTF-8) and return its path."""
        out = Path(path)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(self, encoding="utf-8")
        return out


def _static(name: str) -> str:
    return resources.files("headscope.viz").joinpath("static").joinpath(name).read_text(encoding="utf-8")


def offline_scripts() -> str:
    """``<script>`` blocks that make bertviz's ``requirejs(['jquery', 'd3'], ...)`` work offline.

    d3 and jQuery are inlined first (no AMD loader yet, so they set ``window.d3`` /
    ``window.jQuery``), then require.js, then named modules ``d3`` / ``jquery`` returning those
    globals. Include once per page, before any bertviz fragment.
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


def _kinds_for(insp: Any, kinds: Sequence[str] | None) -> list[str]:
    chosen = list(insp.kinds if kinds is None else kinds)
    for k in chosen:
        if k not in insp.attentions:
            raise InputError(f"no {k!r} attention in this inspection; captured kinds: {insp.kinds}")
    if not chosen:
        raise InputError("no attention kind to show; pass kinds= with at least one of " + str(insp.kinds))
    return chosen


def _layer_index(insp: Any, kind: str) -> list[int]:
    return list(insp.layers.get(kind, range(insp.attentions[kind].shape[0])))


def _select(insp: Any, kinds: list[str], layers: Sequence[int] | None,
            heads: Sequence[int] | None) -> tuple[list[int], list[int], dict[str, dict[int, torch.Tensor]]]:
    """Model layer indices shown, heads shown, and ``{kind: {layer: [1, heads, q, k]}}``."""
    index = {k: _layer_index(insp, k) for k in kinds}
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
    n_heads = {insp.attentions[k].shape[1] for k in kinds}
    head_list = list(range(min(n_heads))) if heads is None else [int(h) for h in heads]
    for h in head_list:
        if not all(0 <= h < n for n in n_heads):
            raise InputError(f"head {h} out of range: the shown kinds have {sorted(n_heads)} heads")
    if not head_list:
        raise InputError("heads= is empty; give at least one head")
    data = {}
    for k in kinds:
        att = insp.attentions[k]
        data[k] = {layer: att[index[k].index(layer)][head_list].unsqueeze(0) for layer in shown}
    return shown, head_list, data


def _bertviz_html(insp: Any, view: str, kinds: list[str], shown: list[int], head_list: list[int],
                  data: dict[str, dict[int, torch.Tensor]], decimals: int) -> str:
    import bertviz

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
    if insp.family == "encoder-decoder":
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
            raise InputError(f"a {insp.family} has one attention kind; got kinds={kinds}")
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


def bertviz_fragment(insp: Any, view: str = "head", *, layers: Sequence[int] | None = None,
                     heads: Sequence[int] | None = None, kinds: Sequence[str] | None = None,
                     decimals: int = 3) -> str:
    """The bertviz view's ``<div>`` and ``<script>`` with no CDN loads (needs :func:`offline_scripts`).

    For pages holding several views (the report); :func:`to_bertviz` wraps one into a page.
    """
    if view not in VIEWS:
        raise InputError(f"view must be one of {VIEWS}, not {view!r}")
    if not isinstance(decimals, int) or not 1 <= decimals <= 8:
        raise InputError(f"decimals must be an integer from 1 to 8, not {decimals!r}")
    chosen = _kinds_for(insp, kinds)
    shown, head_list, data = _select(insp, chosen, layers, heads)
    raw = _bertviz_html(insp, view, chosen, shown, head_list, data, decimals)
    raw = _compact_params(raw)
    raw = _CDN_TAG.sub("", raw)
    raw = _REQUIRE_CONFIG.sub("/* headscope: d3 and jquery are defined inline (offline) */", raw, count=1)
    raw = _VIS_ID.sub("bertviz-ID", raw)
    digest = hashlib.sha1(raw.encode("utf-8")).hexdigest()[:16]
    raw = raw.replace("bertviz-ID", f"bertviz-{view}-{digest}")
    caption = _caption(insp, view, chosen, shown, head_list)
    return f'<div class="headscope-bertviz" data-view="{view}">\n<p class="hs-caption">{caption}</p>\n{raw}\n</div>'


def _caption(insp: Any, view: str, kinds: list[str], shown: list[int], head_list: list[int]) -> str:
    n_heads = min(insp.attentions[k].shape[1] for k in kinds)
    heads_txt = "all heads" if head_list == list(range(n_heads)) else (
        f"heads {head_list} (numbered 0..{len(head_list) - 1} in the view)")
    parts = [f"bertviz {view} view of {_html.escape(insp.model_name)}: {', '.join(kinds)} attention, "
             f"layers {shown}, {heads_txt}."]
    if insp.family == "encoder-decoder" and ("cross" in kinds or "decoder" in kinds):
        parts.append("Decoder positions are labelled by the token they output (their input is the previous "
                     "output, or the start token).")
    parts.append("A picture of the weights (plausibility), not evidence of alignment or faithfulness.")
    return " ".join(parts)


def _page(title: str, body: str) -> str:
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            f"<title>{_html.escape(title)}</title>\n"
            "<style>body{font-family:Helvetica,Arial,sans-serif;margin:1.5em;color:#222}"
            ".hs-caption{color:#555;font-size:0.9em;max-width:60em}</style>\n"
            f"</head>\n<body>\n{offline_scripts()}\n{body}\n</body>\n</html>\n")


def _in_notebook() -> bool:
    shell = sys.modules.get("IPython")
    if shell is None:
        return False
    try:
        ip = shell.get_ipython()  # type: ignore[attr-defined]
    except Exception:  # noqa: BLE001 - any failure means "not a notebook"
        return False
    return ip is not None and type(ip).__name__ in ("ZMQInteractiveShell", "Shell")


def to_bertviz(insp: Any, view: str = "head", path: str | Path | None = None, layers: Sequence[int] | None = None,
               heads: Sequence[int] | None = None, decimals: int = 3, max_bytes: int | None = DEFAULT_MAX_BYTES,
               *, kinds: Sequence[str] | None = None, display: bool | None = None) -> HTMLPage:
    """bertviz ``head_view`` / ``model_view`` of ``insp`` as one page that opens offline.

    Encoder-decoders show encoder, decoder and cross attention (a selector switches between
    them; ``kinds=`` limits them), labelled with the source tokens and the (generated or forced)
    output tokens. ``layers`` are model layer indices to keep, ``heads`` head indices (both
    default to all); weights are rounded to ``decimals`` places. Returns the page (a ``str``
    that Jupyter renders inline), writes it to ``path`` when given, and warns when the page is
    over ``max_bytes`` (``None``: never). ``display=True`` displays it with IPython now;
    ``None`` does so in a notebook only when ``path`` is given (otherwise the returned page
    displays itself as a cell result).
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
    """The bertviz parameter objects embedded in a page (for tests and tools)."""
    out = []
    decoder = json.JSONDecoder()
    at = page.find(_PARAMS_AT)
    while at >= 0:
        params, end = decoder.raw_decode(page, at + len(_PARAMS_AT))
        out.append(params)
        at = page.find(_PARAMS_AT, end)
    return out
