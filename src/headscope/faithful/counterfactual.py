"""Counterfactual attention: can a head's map be swapped without changing the output?

Jain & Wallace (2019, section 4) asked, for a fixed input, whether a very different attention
distribution would leave the prediction unchanged; Wiegreffe & Pinter (2019) added a uniform
baseline. :func:`counterfactual` replaces the attention probabilities of a head, a layer, every
head of a kind, or any set of them, *during the forward pass* (headscope's registered attention
function, ``AttentionCapture(replace=...)``), with

* ``"uniform"`` - uniform over each row's unmasked keys;
* ``"permute"`` - each row's own weights randomly permuted over its unmasked keys (J&W 4.1;
  the median over ``permutations`` draws is reported);
* ``"adversarial"`` - the map of largest Jensen-Shannon divergence from the original whose output
  stays within ``epsilon`` in total variation distance, for each epsilon (J&W 4.2;
  :mod:`headscope.faithful.adversarial`); each result re-checked by a forward with the map found;
* a map given by the user (``method=tensor``: ``[query, key]`` or ``[heads, query, key]`` over
  one input's real tokens).

Padding and future tokens stay masked and every row stays a distribution. For each example,
target and method it measures the output change: ``tvd`` (total variation distance of the output
distribution; the largest over decisions, i.e. target steps, teacher-forced, for an
encoder-decoder; ``tvd_mean`` their mean), ``flipped`` (a decision's argmax changed; for
``permute`` the share of draws that flip), ``flip_share`` (share of decisions whose argmax changed),
``ll_change`` (new minus original log-likelihood of the model's own output: the label, or the
target sentence) and ``js`` (mean JS divergence in bits, 0..1, of the replaced rows from the
original rows).

>>> res = counterfactual("headscope/sentiment", "A dull film.", method=["uniform", "adversarial"])  # doctest: +SKIP
>>> print(res)                 # a few lines; res.table(), res.to_rows()                       # doctest: +SKIP
>>> res.save("cf/"); CounterfactualResult.load("cf/")                                          # doctest: +SKIP

References: Jain & Wallace 2019, "Attention is not Explanation"; Wiegreffe & Pinter 2019,
"Attention is not not Explanation".
"""

from __future__ import annotations

import csv
import io
import math
import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import InputError
from ._common import as_examples, chunked
from ._intervene import (ROWS, Batch, Change, Key, Target, default_targets, given_maps, permuted_maps, real_rows,
                         uniform_maps)
from ._io import dump_json, read_json, save_folder
from .adversarial import TOLERANCE, adversarial_search

METHODS = ("uniform", "permute", "adversarial")
DEFAULT_EPSILONS = (0.01, 0.05)
FORMAT_VERSION = 1
_FILE = "counterfactual.json"
_CSV = "effects.csv"


# ---- result -------------------------------------------------------------------------------------

@dataclass
class Effect:
    """One example under one intervention (see the module docstring for the measures).

    ``epsilon`` is set for ``adversarial`` only, with ``checked_tvd`` (the largest decision TVD of
    a separate forward with the map found) and ``within`` (``checked_tvd <= epsilon + tolerance``);
    ``fallback`` marks an example whose found map failed that check and was replaced by its original.
    """

    example: int
    target: str
    method: str
    js: float
    tvd: float
    tvd_mean: float
    flipped: float
    flip_share: float
    ll_change: float
    epsilon: float | None = None
    checked_tvd: float | None = None
    within: bool | None = None
    fallback: bool = False


def _median(values: Sequence[float]) -> float:
    return float(np.median(np.asarray(values, dtype=float))) if len(values) else float("nan")


def _mean(values: Sequence[float]) -> float:
    return float(np.mean(np.asarray(values, dtype=float))) if len(values) else float("nan")


@dataclass(repr=False)
class CounterfactualResult:
    """Output changes under counterfactual attention, per example, target and method.

    Attributes
    ----------
    model_name, architecture : str
        The model (architecture name, e.g. ``"encoder-decoder"``).
    rows : str
        ``"all"`` real query rows replaced, or ``"decision"`` rows only.
    texts : list of str
        The inputs, in example order; ``decisions`` the model's own decisions on each.
    targets : list of str
        The head sets, by name (``"cross.2.mean"`` = the heads of cross layer 2, ``"cross.mean"``
        = every cross head, ``"cross.1.0+cross.2.3"`` = a union).
    methods : list of str
        ``uniform``, ``permute``, ``adversarial``, ``map``.
    epsilons : list of float
        The TVD bounds of the adversarial search.
    effects : list of :class:`Effect`
        One per (example, target, method[, epsilon]).
    settings : dict
        Search and sampling settings (steps, lr, penalty, permutations, seed, tolerance, ...).
    seconds : float
        Wall time; ``seconds_adversarial`` the part spent in the adversarial search.
    maps : dict or None
        With ``keep_maps=True``: ``{(example, target, method, epsilon): {"kind.layer": [heads, q, k]}}``
        the maps applied (padding removed); kept in memory only.
    """

    model_name: str
    architecture: str
    rows: str
    texts: list[str]
    decisions: list[list[str]]
    targets: list[str]
    methods: list[str]
    epsilons: list[float]
    effects: list[Effect]
    settings: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    seconds_adversarial: float = 0.0
    n_forwards: int = 0
    maps: dict[tuple, dict[str, np.ndarray]] | None = None

    @property
    def n_examples(self) -> int:
        return len(self.texts)

    def select(self, target: str | None = None, method: str | None = None,
               epsilon: float | None = None) -> list[Effect]:
        """The effects of one target / method / epsilon (``None``: any)."""
        return [e for e in self.effects
                if (target is None or e.target == target) and (method is None or e.method == method)
                and (epsilon is None or (e.epsilon is not None and math.isclose(e.epsilon, epsilon)))]

    def groups(self) -> list[dict[str, Any]]:
        """One dict per (target, method, epsilon) over the examples: ``n``, ``js_mean``, ``js_median``,
        ``tvd_median``, ``tvd_mean``, ``flip_rate``, ``ll_change_mean``, ``ll_change_median``, and for
        adversarial ``swappable`` (share with JS >= 0.5 and no decision changed) and ``checked``
        (every result within its bound on the re-run)."""
        keys: list[tuple[str, str, float | None]] = []
        for e in self.effects:
            k = (e.target, e.method, e.epsilon)
            if k not in keys:
                keys.append(k)
        out = []
        for target, method, eps in keys:
            es = [e for e in self.effects if (e.target, e.method, e.epsilon) == (target, method, eps)]
            row = {"target": target, "method": method, "epsilon": eps, "n": len(es),
                   "js_mean": _mean([e.js for e in es]), "js_median": _median([e.js for e in es]),
                   "tvd_median": _median([e.tvd for e in es]), "tvd_mean": _mean([e.tvd for e in es]),
                   "flip_rate": _mean([e.flipped for e in es]),
                   "ll_change_mean": _mean([e.ll_change for e in es]),
                   "ll_change_median": _median([e.ll_change for e in es])}
            if method == "adversarial":
                row["swappable"] = _mean([float(e.js >= 0.5 and e.flipped == 0) for e in es])
                row["checked"] = all(bool(e.within) for e in es)
                row["fallbacks"] = sum(e.fallback for e in es)
            out.append(row)
        return out

    def to_rows(self) -> list[dict[str, Any]]:
        """One dict per effect (example, target, method, epsilon), with the example's text."""
        return [{**asdict(e), "text": self.texts[e.example]} for e in self.effects]

    def table(self) -> str:
        """A readable table: one line per target, method and epsilon, averaged over the examples."""
        groups = self.groups()
        width = max([len("heads"), *(len(g["target"]) for g in groups)]) + 2  # head-set names in full
        lines = [f"counterfactual attention on {self.model_name} ({self.architecture}), {self.n_examples} "
                 f"example(s), rows: {self.rows}",
                 f"{'heads':<{width}}{'method':<16}{'JS mean':>9}{'TVD med':>9}{'TVD mean':>9}{'flips':>7}"
                 f"{'dLL mean':>10}{'JS>=.5 kept':>12}"]
        for g in groups:
            method = g["method"] if g["epsilon"] is None else f"adv e={g['epsilon']:g}"
            swap = f"{g['swappable']:>12.2f}" if "swappable" in g else f"{'':>12}"
            lines.append(f"{g['target']:<{width}}{method:<16}{g['js_mean']:>9.3f}{g['tvd_median']:>9.4f}"
                         f"{g['tvd_mean']:>9.4f}{g['flip_rate']:>7.2f}{g['ll_change_mean']:>10.3f}{swap}")
        return "\n".join(lines)

    def summary(self) -> str:
        """A few lines: what was swapped, how much the output moved, how much the adversary reached."""
        lines = [f"counterfactual attention on {self.model_name} ({self.architecture}): {self.n_examples} "
                 f"example(s) x {len(self.targets)} head set(s), methods {', '.join(self.methods)}; "
                 f"{self.seconds:.1f} s"]
        groups = self.groups()
        for method in ("uniform", "permute", "map"):
            gs = [g for g in groups if g["method"] == method]
            if gs:
                worst = max(gs, key=lambda g: g["tvd_median"])
                least = min(g["tvd_median"] for g in gs)
                lines.append(f"  {method}: median TVD {least:.4f}..{worst['tvd_median']:.4f} (largest: "
                             f"{worst['target']}), flip rate up to {max(g['flip_rate'] for g in gs):.2f}")
        for eps in self.epsilons:
            gs = [g for g in groups if g["method"] == "adversarial" and g["epsilon"] == eps]
            if gs:
                checked = all(g["checked"] for g in gs)
                lines.append(f"  adversarial, TVD <= {eps:g}: mean largest JS {min(g['js_mean'] for g in gs):.3f}.."
                             f"{max(g['js_mean'] for g in gs):.3f}; JS >= 0.5 with no decision changed in "
                             f"{min(g['swappable'] for g in gs):.0%}..{max(g['swappable'] for g in gs):.0%}"
                             f"{'' if checked else ' (SOME CHECKS FAILED)'}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()

    def __repr__(self) -> str:
        return (f"<CounterfactualResult {self.model_name}: {self.n_examples} examples x {len(self.targets)} "
                f"head sets, methods {self.methods}>")

    # -- saving --

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict of every field but ``maps`` (:meth:`from_dict` reads it back)."""
        return {"model_name": self.model_name, "architecture": self.architecture, "rows": self.rows,
                "texts": self.texts, "decisions": self.decisions, "targets": self.targets,
                "methods": self.methods, "epsilons": self.epsilons, "settings": self.settings,
                "seconds": self.seconds, "seconds_adversarial": self.seconds_adversarial,
                "n_forwards": self.n_forwards, "effects": [asdict(e) for e in self.effects]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "CounterfactualResult":
        """Inverse of :meth:`to_dict`."""
        d = dict(data)
        d["effects"] = [Effect(**e) for e in d["effects"]]
        return cls(**d)

    def save(self, path: str | os.PathLike) -> Path:
        """Write the folder ``path``: ``counterfactual.json`` and ``effects.csv`` (one row per effect),
        atomically. ``maps`` are not saved."""
        rows = self.to_rows()
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=list(rows[0]) if rows else ["example"], lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        return save_folder(path, {_FILE: dump_json(self.to_dict(), FORMAT_VERSION), _CSV: buf.getvalue()})

    @classmethod
    def load(cls, path: str | os.PathLike) -> "CounterfactualResult":
        """Read a folder written by :meth:`save` (its format version checked)."""
        data = read_json(path, _FILE, "counterfactual result", FORMAT_VERSION)
        try:
            return cls.from_dict(data)
        except (KeyError, TypeError, ValueError) as err:
            raise InputError(f"{Path(path) / _FILE}: fields do not make a counterfactual result ({err}); "
                             "save it again") from None


# ---- running ------------------------------------------------------------------------------------

def _methods(method: Any) -> tuple[list[str], Any]:
    """``(method names, given map or None)``."""
    if isinstance(method, str):
        names = [method]
    elif isinstance(method, (list, tuple)) and method and all(isinstance(m, str) for m in method):
        names = list(method)
    elif isinstance(method, (torch.Tensor, np.ndarray, list, tuple)):
        return ["map"], method
    else:
        raise InputError(f"method={method!r}: choose from {METHODS} (or a list of them), or give a map")
    bad = [m for m in names if m not in METHODS]
    if bad:
        raise InputError(f"unknown method(s) {bad}; choose from {METHODS}, or give a map (a tensor)")
    return list(dict.fromkeys(names)), None


def _effect(example: int, target: str, method: str, js: float, ch: Change, **extra: Any) -> Effect:
    return Effect(example, target, method, float(js), float(ch.tvd.max()), float(ch.tvd.mean()),
                  float(bool(ch.flips.any())), float(ch.flips.float().mean()), float(ch.ll_change), **extra)


def _strip(batch: Batch, b: int, key: Key, m: torch.Tensor) -> np.ndarray:
    """Example ``b``'s map ``[heads, Q, K]`` with padded rows and keys removed."""
    q = real_rows(batch, key, b)
    k = batch.allowed[key][b, 0].any(0).nonzero().flatten()
    return m[b].detach().index_select(-2, q).index_select(-1, k).numpy()


def counterfactual(model_or_inspection: Any, text: Any = None, *, target: Any = None, sites: Any = None,
                   method: Any = "uniform", epsilon: float | Sequence[float] = DEFAULT_EPSILONS,
                   rows: str = "all", permutations: int = 10, steps: int = 40, lr: float = 0.3,
                   penalty: float = 100.0, margin: float = 0.8, init_noise: float = 1.0,
                   tolerance: float = TOLERANCE,
                   seed: int = 0, batch_size: int = 16, keep_maps: bool = False,
                   progress: bool = False) -> CounterfactualResult:
    """Replace attention during the forward pass and measure how far the output moves.

    Parameters
    ----------
    model_or_inspection
        An :class:`~headscope.inspection.Inspection` (or a list), or a model (shipped name, folder,
        ``(model, tokenizer)``, LoadedModel) with ``text`` (a string or a list) and, for an
        encoder-decoder, optionally ``target`` (else the model's own greedy output is scored).
    sites
        The heads to replace, each entry one intervention: a head ``"cross.2.3"``, a layer
        ``"cross.2.mean"`` (or ``"cross.2"``, or ``Site("cross", 2)``), every head of a kind
        ``"cross.mean"``, or a list of these replaced together. Default: each layer of the
        decision kind (cross for encoder-decoders, the self-attention otherwise) and all its heads
        together.
    method
        ``"uniform"``, ``"permute"``, ``"adversarial"``, a list of them, or a map (``[q, k]`` or
        ``[heads, q, k]`` over one input's real query and key tokens, rows summing to 1).
    epsilon
        The TVD bound(s) of the adversarial search.
    rows
        ``"all"`` real query rows, or ``"decision"`` only the rows decisions are read from
        (the ``[CLS]`` row of an encoder's label; every target step of cross-attention).
    permutations, seed
        Draws of the random permutation (the median is reported) and the random seed.
    steps, lr, penalty, margin, init_noise, tolerance
        The adversarial search (:func:`headscope.faithful.adversarial.adversarial_search`).
    batch_size
        Examples per forward pass.
    keep_maps
        Keep the maps applied in ``result.maps`` (memory only).

    Returns
    -------
    CounterfactualResult
    """
    t0 = time.perf_counter()
    names, given = _methods(method)
    if rows not in ROWS:
        raise InputError(f"rows={rows!r}: choose from {ROWS}")
    if permutations < 1:
        raise InputError(f"permutations must be >= 1, got {permutations}")
    eps_list = sorted({float(e) for e in (epsilon if isinstance(epsilon, (list, tuple)) else [epsilon])})
    if "adversarial" in names and (not eps_list or eps_list[0] < 0):
        raise InputError(f"epsilon must be >= 0, got {epsilon}")
    examples = as_examples(model_or_inspection, text, target)
    loaded = examples[0].loaded
    blocks = {(s.kind, s.layer): s.heads for s in loaded.structure.sites}
    decision_kind = loaded.architecture.decision_kind()
    if sites is None:
        targets = default_targets(blocks, decision_kind)
    else:
        specs = [sites] if isinstance(sites, (str, Target)) or not isinstance(sites, (list, tuple)) else list(sites)
        targets = [Target.of(s) for s in specs]
    heads_of = {t.name: t.heads(blocks) for t in targets}
    gen = torch.Generator().manual_seed(seed)
    effects: list[Effect] = []
    maps_kept: dict[tuple, dict[str, np.ndarray]] | None = {} if keep_maps else None
    forwards, t_adv = 0, 0.0
    parts = chunked(len(examples), batch_size)
    for i, part in enumerate(parts):
        if progress:
            print(f"  counterfactual: batch {i + 1}/{len(parts)}", flush=True)
        # encoder-side heads need the full forward; decoder-side ones reuse the encoder states
        groups: dict[bool, list[Target]] = {}
        for t in targets:
            groups.setdefault("encoder" in t.kinds, []).append(t)
        for _, group in sorted(groups.items()):
            gkeys = sorted({k for t in group for k in heads_of[t.name]})
            batch = Batch(examples[part], gkeys, rows)
            offset = part.start
            for t in group:
                heads = heads_of[t.name]

                def keep(method: str, maps: dict[Key, torch.Tensor], eps: float | None = None,
                         t: Target = t, batch: Batch = batch, offset: int = offset) -> None:
                    if maps_kept is not None:
                        for b in range(batch.size):
                            maps_kept[(offset + b, t.name, method, eps)] = {
                                f"{k[0]}.{k[1]}": _strip(batch, b, k, m) for k, m in maps.items()}

                with torch.no_grad():
                    if "uniform" in names:
                        maps = uniform_maps(batch, heads)
                        changes = batch.changes(batch.run(maps, heads))
                        js = batch.js(maps, heads)
                        effects += [_effect(offset + b, t.name, "uniform", js[b], c) for b, c in enumerate(changes)]
                        keep("uniform", maps)
                    if "map" in names:
                        maps = given_maps(batch, heads, given)
                        changes = batch.changes(batch.run(maps, heads))
                        js = batch.js(maps, heads)
                        effects += [_effect(offset + b, t.name, "map", js[b], c) for b, c in enumerate(changes)]
                        keep("map", maps)
                    if "permute" in names:
                        draws = []
                        for p in range(permutations):
                            maps = permuted_maps(batch, heads, gen)
                            draws.append((batch.js(maps, heads), batch.changes(batch.run(maps, heads))))
                            if p == 0:
                                keep("permute", maps)
                        for b in range(batch.size):
                            chs = [d[1][b] for d in draws]
                            effects.append(Effect(
                                offset + b, t.name, "permute", _median([float(d[0][b]) for d in draws]),
                                _median([float(c.tvd.max()) for c in chs]), _median([float(c.tvd.mean()) for c in chs]),
                                _mean([float(bool(c.flips.any())) for c in chs]),
                                _median([float(c.flips.float().mean()) for c in chs]),
                                _median([float(c.ll_change) for c in chs])))
                if "adversarial" in names:
                    ta = time.perf_counter()
                    found = adversarial_search(batch, heads, eps_list, steps=steps, lr=lr, penalty=penalty,
                                               margin=margin, init_noise=init_noise, tolerance=tolerance, generator=gen)
                    t_adv += time.perf_counter() - ta
                    for f in found:
                        for b, c in enumerate(f.changes):
                            effects.append(_effect(offset + b, t.name, "adversarial", f.js[b], c, epsilon=f.epsilon,
                                                   checked_tvd=float(c.tvd.max()), within=bool(f.within[b]),
                                                   fallback=bool(f.fallback[b])))
                        keep("adversarial", f.maps, f.epsilon)
            forwards += batch.forwards
    order = {t.name: i for i, t in enumerate(targets)}
    effects.sort(key=lambda e: (order[e.target], e.example))
    return CounterfactualResult(
        model_name=loaded.name, architecture=loaded.architecture.name, rows=rows,
        texts=[_text(ex) for ex in examples], decisions=[list(ex.decision_names) for ex in examples],
        targets=[t.name for t in targets], methods=names,
        epsilons=eps_list if "adversarial" in names else [], effects=effects,
        settings=dict(permutations=permutations, steps=steps, lr=lr, penalty=penalty, margin=margin,
                      init_noise=init_noise,
                      tolerance=tolerance, seed=seed, batch_size=batch_size, js="bits (log base 2), 0..1",
                      tvd="largest over decisions (target steps, teacher-forced)"),
        seconds=time.perf_counter() - t0, seconds_adversarial=t_adv, n_forwards=forwards, maps=maps_kept)


def _text(ex: Any) -> str:
    text = ex.inspection.source_text
    return text if isinstance(text, str) else " ".join(map(str, text))
