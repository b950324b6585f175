"""``fragmentation(insp)``: how the single-map reading breaks apart, for one input.

Collects, per attention kind, the disagreement between heads (JS divergence, rank
correlation, effective number of distinct maps) and the head taxonomy with sink mass; and,
across *readings* of the input (single heads, layer means, the all-heads mean, rollout, flow,
gradient, leave-one-out), the Kendall τ agreement matrix. ``summary()`` phrases the result in
headscope's three claims: alignment, plausibility, faithfulness.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError
from .agreement import agreement_matrix
from .disagreement import effective_maps, pairwise_js, pairwise_rank_correlation
from .taxonomy import classify_heads

MAX_SINGLE_HEADS = 24
FAITHFUL_METHODS = ("gradient", "loo")


@dataclass
class KindFragmentation:
    """Disagreement and behaviours of the heads of one attention kind."""

    kind: str
    n_heads: int
    js: np.ndarray  # [N, N], heads flattened layer-major
    rank_correlation: np.ndarray  # [N, N] Spearman, mean over rows
    effective_maps: float
    labels: np.ndarray  # [layers, heads] behaviour labels
    sink_mass: np.ndarray  # [layers, heads]
    shares: dict[str, float]

    @property
    def mean_js(self) -> float:
        """Mean JS divergence over distinct head pairs."""
        off = ~np.eye(self.n_heads, dtype=bool)
        return float(self.js[off].mean()) if off.any() else 0.0


@dataclass
class Fragmentation:
    """The fragmentation of one inspection; see :func:`fragmentation`."""

    model_name: str
    family: str
    kinds: dict[str, KindFragmentation]
    reading_names: list[str]
    tau: np.ndarray  # [R, R] Kendall τ between readings
    alignment: dict[str, float] = field(default_factory=dict)

    def tau_with(self, reference: str) -> dict[str, float]:
        """τ of every other reading with ``reference`` (e.g. ``"loo"``), best first."""
        if reference not in self.reading_names:
            raise InputError(f"no reading {reference!r}; readings: {self.reading_names}")
        i = self.reading_names.index(reference)
        pairs = {n: float(self.tau[i, j]) for j, n in enumerate(self.reading_names) if j != i}
        return dict(sorted(pairs.items(), key=lambda kv: -kv[1]))

    def summary(self) -> str:
        """The result phrased in the three claims, each with its number."""
        lines = [f"Fragmentation of {self.model_name} ({self.family})"]
        main = "cross" if "cross" in self.kinds else next(iter(self.kinds))
        k = self.kinds[main]
        lines.append("Alignment — what the maps support as alignment:")
        if self.alignment:
            parts = ", ".join(f"{name} AER {value:.3f}" for name, value in self.alignment.items())
            lines.append(f"  scored against gold: {parts}")
        elif main == "cross":
            n_align = int((k.labels == "alignment-like").sum())
            lines.append(f"  not scored (no gold given): {n_align} of {k.n_heads} cross-attention heads are "
                         "alignment-like by shape — a shape, not evidence; score them with headscope align")
        else:
            lines.append("  not applicable: a classifier's self-attention is not an input/output alignment")
        lines.append("Plausible — what the maps only appear to show:")
        for kind, kf in self.kinds.items():
            shares = ", ".join(f"{label} {share:.0%}" for label, share in sorted(kf.shares.items(), key=lambda x: -x[1]))
            lines.append(f"  {kind}: {kf.n_heads} heads make {kf.effective_maps:.1f} effective distinct maps "
                         f"(mean pairwise JS {kf.mean_js:.3f}); behaviours: {shares}; "
                         f"mean sink mass {kf.sink_mass.mean():.2f}")
        lines.append("Faithful — what the faithfulness tests confirmed:")
        refs = [m for m in FAITHFUL_METHODS if m in self.reading_names]
        if not refs:
            lines.append("  not measured (pass faithful=True with a loaded model)")
        for ref in refs:
            taus = self.tau_with(ref)
            others = {n: t for n, t in taus.items() if n not in FAITHFUL_METHODS}
            best = next(iter(others))
            agg = ", ".join(f"{n} {taus[n]:+.2f}" for n in ("all-heads mean", "rollout", "flow")
                            if n in taus and n != best)
            lines.append(f"  Kendall τ with {ref}: best reading {best} {others[best]:+.2f}; {agg}")
        return "\n".join(lines)

    def save(self, path: str | os.PathLike) -> Path:
        """Write ``fragmentation.json`` into folder ``path``."""
        folder = Path(path)
        folder.mkdir(parents=True, exist_ok=True)
        data = {
            "model_name": self.model_name,
            "family": self.family,
            "readings": self.reading_names,
            "tau": self.tau.round(6).tolist(),
            "alignment": self.alignment,
            "kinds": {
                kind: {
                    "n_heads": kf.n_heads, "effective_maps": kf.effective_maps, "mean_js": kf.mean_js,
                    "js": kf.js.round(6).tolist(), "rank_correlation": kf.rank_correlation.round(6).tolist(),
                    "labels": kf.labels.tolist(), "sink_mass": kf.sink_mass.round(6).tolist(), "shares": kf.shares,
                }
                for kind, kf in self.kinds.items()
            },
        }
        (folder / "fragmentation.json").write_text(json.dumps(data, indent=1), encoding="utf-8")
        return folder


def kind_fragmentation(att: Any, kind: str, key_tokens: list[str] | None = None) -> KindFragmentation:
    """Disagreement and taxonomy of the heads in ``att`` ``[layers, heads, q, k]``."""
    arr = att.detach().float().cpu().numpy() if hasattr(att, "detach") else np.asarray(att, dtype=np.float64)
    flat = arr.reshape(-1, *arr.shape[-2:])
    js = pairwise_js(flat)
    labels, sink, shares = classify_heads(arr, kind, key_tokens=key_tokens)
    return KindFragmentation(kind, flat.shape[0], js, pairwise_rank_correlation(flat), effective_maps(1 - js),
                             labels, sink, shares)


def attention_readings(insp: Any) -> dict[str, np.ndarray]:
    """Readings from the maps alone: single heads, layer means, the all-heads mean, rollout, flow.

    Encoder-decoders: cross-attention rows ``[T, S]``. Classifiers: the first-token ([CLS]) row
    of the encoder maps ``[S]``; decoder-only: the last position's row.
    """
    from ..aggregate import encoder_decoder_rollout, flow, rollout

    readings: dict[str, np.ndarray] = {}
    if insp.family == "encoder-decoder":
        att = insp.attentions["cross"].float().numpy()
        row = slice(None)
    else:
        kind = insp.kinds[0]
        att = insp.attentions[kind].float().numpy()
        row = 0 if insp.family == "classifier" else att.shape[-2] - 1
    n_layers, n_heads = att.shape[:2]
    layers = range(n_layers) if n_layers * n_heads <= MAX_SINGLE_HEADS else [n_layers - 1]
    kind = insp.kinds[-1] if insp.family != "encoder-decoder" else "cross"
    for layer in layers:
        for head in range(n_heads):
            readings[f"{kind}.{layer}.{head}"] = att[layer, head, row]
    for layer in range(n_layers):
        readings[f"layer {layer} mean"] = att[layer, :, row].mean(0)
    readings["all-heads mean"] = att[:, :, row].mean((0, 1))
    if insp.family == "encoder-decoder" and {"encoder", "decoder"} <= set(insp.attentions):
        readings["rollout"] = encoder_decoder_rollout(insp.attentions["encoder"], insp.attentions["decoder"],
                                                      insp.attentions["cross"])
    elif insp.family != "encoder-decoder":
        readings["rollout"] = rollout(att)[row]
        readings["flow"] = flow(att, rows=[row])[0]
    return readings


def fragmentation(insp: Any, *, faithful: bool = True, extra_readings: dict[str, Any] | None = None,
                  alignment: dict[str, float] | None = None) -> Fragmentation:
    """How the single-map reading breaks apart for one inspection.

    ``faithful=True`` adds gradient and leave-one-out importance as readings (needs the model:
    ``insp.loaded``). ``extra_readings`` adds named ``[rows, keys]`` arrays; ``alignment`` passes
    AER numbers (e.g. from ``headscope.align.evaluate``) to be reported under the alignment claim.
    Kendall τ is computed over the source tokens that belong to a word (special tokens excluded).
    """
    kinds = {kind: kind_fragmentation(insp.attentions[kind], kind, insp.key_tokens(kind)) for kind in insp.kinds}
    readings = attention_readings(insp)
    if faithful:
        if insp.loaded is None:
            raise InputError("faithful=True needs the model, but this inspection has none attached (it was loaded "
                             "from disk); pass faithful=False or re-run headscope.inspect")
        from ..faithful import token_importance

        for method in FAITHFUL_METHODS:
            readings[method] = np.asarray(token_importance(insp, method).scores, dtype=np.float64)
    for name, value in (extra_readings or {}).items():
        readings[name] = np.asarray(value.detach().cpu().numpy() if hasattr(value, "detach") else value)
    keep = np.array([w is not None for w in insp.source_word_ids])
    if keep.sum() < 2:
        raise InputError("need at least two source words to rank; give a longer text")
    rows = {name: np.atleast_2d(r)[..., keep] for name, r in readings.items()}
    shapes = {name: r.shape for name, r in rows.items()}
    if len(set(shapes.values())) != 1:
        raise InputError(f"readings have different shapes: {shapes}")
    names, tau = agreement_matrix(rows)
    return Fragmentation(insp.model_name, insp.family, kinds, names, tau, dict(alignment or {}))
