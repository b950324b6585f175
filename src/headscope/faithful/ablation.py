"""Head ablation: how much the output changes when attention heads are removed.

A head is removed by multiplying its attention output by 0 before the layer's output
projection (headscope's registered attention function with ``head_gates``); this equals
zeroing the head's slice of the output-projection weight, and leaves the model untouched.
Many ablations run in one forward pass: the batch is expanded, each row with its own gates.

Effects (original minus ablated, so positive = the head helped the model's own decision):

* a classification head (any architecture): ``prob_drop`` (probability of the predicted class),
  ``kl`` = KL(original || ablated), ``logprob_drop``;
* an encoder-decoder's language-model head: ``ll_drop``, the drop of the teacher-forced target
  log-likelihood, summed over target tokens;
* a decoder-only language model: ``ll_drop`` of the text's own log-likelihood plus ``next_drop``,
  the drop of the log-probability of the predicted next token.

The drop of each scored log-probability is kept in :attr:`AblationResult.per_token`.

Cheaper proxies are computed alongside and rank-correlated with ``|effect|``: head
``confidence`` (mean over queries of the maximum attention weight, Voita et al. 2019),
``entropy`` (mean row entropy; low = focused) and ``gradient`` importance
``E_x |dL/d gate|`` at gates = 1 (Michel, Levy & Neubig 2019), with ``L`` the negative
log-probability of the model's own decision.

>>> res = head_ablation("headscope/en-fr", text="A man in a red shirt.")   # doctest: +SKIP
>>> res.effect("cross").shape                                               # doctest: +SKIP
(3, 4)
>>> print(res)                    # a few lines; res.table(5), res.to_rows()  # doctest: +SKIP
>>> res.save("ablation/"); AblationResult.load("ablation/")                 # doctest: +SKIP

References: Michel, Levy & Neubig 2019, "Are Sixteen Heads Really Better than One?";
Voita, Talbot, Moiseev, Sennrich & Titov 2019, "Analyzing Multi-Head Self-Attention".
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy import stats

from ..capture import AttentionCapture, split_examples
from ..errors import InputError
from ..readings import Site
from ._common import Example, Scores, as_examples, chunked, read_scores, run_gated, score, scoring_batch
from ._io import dump_json, read_json, save_folder

MODES = ("single", "leave_one_layer_out", "cumulative")


# ---- the heads of a model ---------------------------------------------------------------------

@dataclass(frozen=True)
class HeadSpace:
    """Every (kind, layer) attention block of a model with its number of heads, in a fixed order."""

    blocks: tuple[tuple[str, int, int], ...]

    @classmethod
    def of(cls, example: Example) -> "HeadSpace":
        """The blocks of ``example``'s model, from its described structure."""
        loaded = example.loaded
        blocks = tuple((s.kind, s.layer, s.heads) for s in loaded.structure.sites)
        if not blocks:
            raise InputError(f"no attention heads found in {loaded.name}")
        return cls(blocks)

    @property
    def size(self) -> int:
        """The number of heads."""
        return sum(h for _, _, h in self.blocks)

    def offset(self, kind: str, layer: int) -> int:
        """Position of the first head of block ``kind.layer`` in the flat head order."""
        pos = 0
        for k, l, h in self.blocks:
            if (k, l) == (kind, layer):
                return pos
            pos += h
        raise InputError(f"no attention block {kind}.{layer}; the model has {[f'{k}.{l}' for k, l, _ in self.blocks]}")

    def sites(self) -> list[Site]:
        """Every head, in the flat order."""
        return [Site(k, l, h) for k, l, n in self.blocks for h in range(n)]

    def index(self, site: Site | str) -> int:
        """Position of head ``site`` (``Site`` or ``"cross.2.3"``) in the flat order."""
        s = Site.parse(site) if isinstance(site, str) else site
        n = dict(((k, l), h) for k, l, h in self.blocks).get((s.kind, s.layer))
        if s.head is None or n is None or not 0 <= s.head < n:
            raise InputError(f"no head {s.name} in this model; heads are named like {self.sites()[0].name!r} "
                             f"and the model has blocks {[f'{k}.{l}x{h}' for k, l, h in self.blocks]}")
        return self.offset(s.kind, s.layer) + s.head

    def gates(self, matrix: torch.Tensor) -> dict[tuple[str, int], torch.Tensor]:
        """``[rows, size]`` gate matrix -> ``{(kind, layer): [rows, heads]}`` for AttentionCapture."""
        out, pos = {}, 0
        for k, l, h in self.blocks:
            out[(k, l)] = matrix[:, pos:pos + h]
            pos += h
        return out

    def by_kind(self, vector: np.ndarray) -> dict[str, np.ndarray]:
        """A flat per-head vector -> ``{kind: [layers, heads]}`` (layers of a kind in order)."""
        out: dict[str, list[np.ndarray]] = {}
        pos = 0
        for k, _, h in self.blocks:
            out.setdefault(k, []).append(np.asarray(vector[pos:pos + h], dtype=float))
            pos += h
        return {k: np.stack(v) for k, v in out.items()}

    def touches_encoder(self, row: np.ndarray) -> bool:
        """Whether gate row ``row`` changes an encoder head (so no encoder output can be reused)."""
        enc = [i for i, s in enumerate(self.sites()) if s.kind == "encoder"]
        return bool(enc) and bool((row[enc] != 1).any())


# ---- result -----------------------------------------------------------------------------------

FORMAT_VERSION = 1
_FILE = "ablation.json"


def _arrays(by: dict[str, Any]) -> dict[str, Any]:
    return {k: np.asarray(v, dtype=float) for k, v in by.items()}


@dataclass(repr=False)
class AblationResult:
    """Effects of head ablations on the model's own decision, averaged over the examples.

    Attributes
    ----------
    model_name, architecture : str
        The model (architecture name, e.g. ``"encoder-decoder"``).
    mode : str
        ``"single"``, ``"leave_one_layer_out"`` or ``"cumulative"``.
    measure : str
        The primary measure (``prob_drop`` for a label, ``ll_drop`` for a text).
    effects : dict
        ``effects[measure][kind]`` is ``[layers, heads]`` for ``"single"`` and ``"cumulative"``
        (the latter: the effect once this head and every head before it in ``order`` are
        removed), ``[layers, 1]`` for ``"leave_one_layer_out"``.
    per_example : dict of numpy.ndarray
        ``per_example[measure]`` is ``[ablations, examples]``.
    configs : list of list of str
        The heads (or layers) each ablation removes, as site names (``"cross.2.3"``).
    per_token : list of numpy.ndarray
        Per example, ``[ablations, scored tokens]``: the drop of each scored log-probability
        (the label's; each target token's; each text token's, then the next token's).
    proxies : dict
        ``proxies[name][kind]`` ``[layers, heads]``: confidence, entropy, gradient (``"single"``).
    correlations : dict
        Spearman and Kendall correlation of ``|effect|`` with each proxy.
    order, curve : list of str, dict, or None
        The removal order and the effect after each step (``"cumulative"``).
    n_examples, n_forwards : int
        Examples averaged over; forward passes the ablations took.

    Examples
    --------
    >>> res = head_ablation(insp)          # doctest: +SKIP
    >>> res.effect("encoder").shape         # doctest: +SKIP
    (6, 12)
    """

    model_name: str
    architecture: str
    mode: str
    measure: str
    effects: dict[str, dict[str, np.ndarray]]
    per_example: dict[str, np.ndarray]
    configs: list[list[str]]
    per_token: list[np.ndarray]
    proxies: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    correlations: dict[str, dict[str, float]] = field(default_factory=dict)
    order: list[str] | None = None
    curve: dict[str, np.ndarray] | None = None
    n_examples: int = 1
    n_forwards: int = 0

    def effect(self, kind: str | None = None, measure: str | None = None) -> Any:
        """``{kind: [layers, heads]}`` of ``measure`` (the primary one by default), or one kind's array."""
        by_kind = self.effects[measure or self.measure]
        if kind is None:
            return by_kind
        if kind not in by_kind:
            raise InputError(f"no {kind!r} heads in this result; kinds: {list(by_kind)}")
        return by_kind[kind]

    def ranking(self, measure: str | None = None) -> list[tuple[str, float]]:
        """``(ablation name, mean effect)`` from the largest effect down."""
        values = self.per_example[measure or self.measure].mean(axis=1)
        names = [",".join(c) for c in self.configs]
        return sorted(zip(names, values.tolist()), key=lambda kv: -kv[1])

    def _flat_proxies(self) -> dict[str, np.ndarray]:
        return {p: np.concatenate([v.ravel() for v in arrs.values()]) for p, arrs in self.proxies.items()}

    def to_rows(self) -> list[dict[str, Any]]:
        """One dict per ablation, in ablation order: ``ablated`` (site names joined by commas), ``step``
        (1, 2, ...), the mean of each measure over the examples and, for single heads, each proxy."""
        proxies = self._flat_proxies() if self.mode == "single" else {}
        return [{"ablated": ",".join(cfg), "step": g + 1,
                 **{m: float(v[g].mean()) for m, v in self.per_example.items()},
                 **{p: float(v[g]) for p, v in proxies.items()}} for g, cfg in enumerate(self.configs)]

    def table(self, top: int | None = None) -> str:
        """A readable table: the ``top`` ablations by effect (in removal order for ``"cumulative"``),
        with every measure and, for single heads, the proxies; then the rank correlations."""
        rows = self.to_rows()
        measures = list(self.per_example)
        proxies = list(self.proxies) if self.mode == "single" else []
        header = f"{'ablated':<24}" + "".join(f"{m:>14}" for m in measures) + "".join(f"{p:>12}" for p in proxies)
        lines = [f"head ablation ({self.mode}) of {self.model_name}, {self.n_examples} example(s); "
                 f"primary measure {self.measure}", header]
        if self.mode != "cumulative":
            rows = [rows[g] for g in np.argsort(-self.per_example[self.measure].mean(axis=1), kind="stable")]
        for row in rows[: top or len(rows)]:
            name = row["ablated"] if self.mode != "cumulative" else f"+{row['ablated'].split(',')[-1]} ({row['step']})"
            lines.append(f"{name[:24]:<24}" + "".join(f"{row[m]:>14.5f}" for m in measures)
                         + "".join(f"{row[p]:>12.4f}" for p in proxies))
        for proxy, corr in self.correlations.items():
            lines.append(f"rank correlation |{self.measure}| vs {proxy}: Spearman {corr['spearman']:+.3f}, "
                         f"Kendall {corr['kendall']:+.3f}")
        return "\n".join(lines)

    def summary(self) -> str:
        """A few lines: what was ablated, the largest effects, the proxies' rank correlations."""
        lines = [f"head ablation ({self.mode}) of {self.model_name} ({self.architecture}): {len(self.configs)} "
                 f"ablation(s) x {self.n_examples} example(s), {self.n_forwards} forward passes; "
                 f"primary measure {self.measure}"]
        if self.mode == "cumulative":
            curve = self.per_example[self.measure].mean(axis=1)
            lines.append(f"  after removing all {len(curve)} heads in order: {self.measure} {curve[-1]:.4f}")
        else:
            lines.append("  largest: " + ", ".join(f"{n} {v:.4f}" for n, v in self.ranking()[:3]))
        if self.correlations:
            lines.append(f"  Spearman with |{self.measure}|: " + ", ".join(
                f"{p} {c['spearman']:+.2f}" for p, c in self.correlations.items()))
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()

    def __repr__(self) -> str:
        return (f"<AblationResult {self.mode} of {self.model_name}: {len(self.configs)} ablations x "
                f"{self.n_examples} examples, measure {self.measure}>")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict of every field (:meth:`from_dict` reads it back exactly)."""
        return {
            "model_name": self.model_name, "architecture": self.architecture, "mode": self.mode,
            "measure": self.measure, "n_examples": self.n_examples, "n_forwards": self.n_forwards,
            "configs": self.configs,
            "effects": {m: {k: v.tolist() for k, v in by.items()} for m, by in self.effects.items()},
            "per_example": {m: v.tolist() for m, v in self.per_example.items()},
            "per_token": [v.tolist() for v in self.per_token],
            "proxies": {p: {k: v.tolist() for k, v in by.items()} for p, by in self.proxies.items()},
            "correlations": self.correlations, "order": self.order,
            "curve": None if self.curve is None else {m: v.tolist() for m, v in self.curve.items()},
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "AblationResult":
        """Inverse of :meth:`to_dict`."""
        d = dict(data)
        d["effects"] = {m: _arrays(by) for m, by in d["effects"].items()}
        d["per_example"] = _arrays(d["per_example"])
        d["per_token"] = [np.asarray(v, dtype=float).reshape(len(d["configs"]), -1) for v in d["per_token"]]
        d["proxies"] = {p: _arrays(by) for p, by in d["proxies"].items()}
        d["curve"] = None if d["curve"] is None else _arrays(d["curve"])
        return cls(**d)

    def save(self, path: str | os.PathLike) -> Path:
        """Write the folder ``path`` (``ablation.json``), atomically: written beside it, then renamed.

        >>> res.save("runs/ablation"); AblationResult.load("runs/ablation")   # doctest: +SKIP
        """
        return save_folder(path, {_FILE: dump_json(self.to_dict(), FORMAT_VERSION)})

    @classmethod
    def load(cls, path: str | os.PathLike) -> "AblationResult":
        """Read a folder written by :meth:`save` (its format version checked)."""
        data = read_json(path, _FILE, "head-ablation result", FORMAT_VERSION)
        try:
            return cls.from_dict(data)
        except (KeyError, TypeError, ValueError) as err:
            raise InputError(f"{Path(path) / _FILE}: fields do not make an ablation result ({err}); save it again") \
                from None


# ---- running ablations ------------------------------------------------------------------------

Effects = list[list[dict[str, float]]]
Drops = list[list[np.ndarray]]


@torch.no_grad()
def run_ablations(examples: Sequence[Example], space: HeadSpace, configs: np.ndarray, base: Sequence[Scores], *,
                  batched: bool = True, batch_size: int = 64, progress: bool = False) -> tuple[Effects, Drops, int]:
    """Score every (configuration, example) pair; ``configs`` is a ``[G, heads]`` 0/1 gate matrix.

    ``batched=True`` packs ``batch_size`` (configuration, example) rows into each forward
    (configurations gating no encoder head reuse the encoder output when the model has one);
    ``batched=False`` runs one forward per configuration (its examples batched by ``batch_size``).
    Returns ``effects[g][n]`` (the measures against ``base[n]``), ``drops[g][n]`` (the drop of each
    scored log-probability) and the number of forward passes.
    """
    loaded, scorer = examples[0].loaded, examples[0].scorer
    n_ex, n_cfg = len(examples), len(configs)
    gates_all = torch.as_tensor(np.asarray(configs), dtype=torch.float32)
    effects: Effects = [[{} for _ in range(n_ex)] for _ in range(n_cfg)]
    drops: Drops = [[np.zeros(0) for _ in range(n_ex)] for _ in range(n_cfg)]

    def keep(g: int, n: int, row: Scores) -> None:
        b = base[n]
        effects[g][n] = scorer.ablation_effects(b.logprobs, row.logprobs, b.logits, row.logits)
        drops[g][n] = (b.logprobs - row.logprobs).double().numpy()

    forwards = 0
    if not batched:
        for g in range(n_cfg):
            for part in chunked(n_ex, batch_size):
                exs = list(examples[part])
                out = run_gated(loaded, scoring_batch(exs), space.gates(gates_all[g].expand(len(exs), -1)))
                forwards += 1
                for j, row in enumerate(read_scores(exs, out.logits)):
                    keep(g, part.start + j, row)
        return effects, drops, forwards

    decoder_side = [g for g in range(n_cfg) if not space.touches_encoder(configs[g])]
    states = scorer.encoder_states(loaded.model, scoring_batch(list(examples))) if decoder_side else None
    if states is None:
        decoder_side = []
    else:
        forwards += 1
    whole = [g for g in range(n_cfg) if g not in set(decoder_side)]
    # example-major rows, examples by length: each forward pads to nearly its own examples' length
    lengths = [len(ex.source_ids) + len(ex.target_ids or []) for ex in examples]
    by_length = np.argsort(lengths, kind="stable").tolist()
    pairs_whole = [(g, n) for n in by_length for g in whole]
    pairs_dec = [(g, n) for n in by_length for g in decoder_side]
    jobs = [(pairs_whole[s], False) for s in chunked(len(pairs_whole), batch_size)]
    jobs += [(pairs_dec[s], True) for s in chunked(len(pairs_dec), batch_size)]
    if progress:
        from tqdm.auto import tqdm

        jobs = tqdm(jobs, desc="ablation batches", unit="batch")
    for chunk, reuse in jobs:
        exs = [examples[n] for _, n in chunk]
        inputs = scoring_batch(exs)
        if reuse:
            inputs = scorer.with_encoder_states(inputs, states.index_select(0, torch.tensor([n for _, n in chunk])))
        gate_rows = gates_all.index_select(0, torch.tensor([g for g, _ in chunk]))
        out = run_gated(loaded, inputs, space.gates(gate_rows))
        forwards += 1
        for (g, n), row in zip(chunk, read_scores(exs, out.logits)):
            keep(g, n, row)
    return effects, drops, forwards


@torch.no_grad()
def _baseline(examples: Sequence[Example], batch_size: int) -> list[Scores]:
    rows: list[Scores] = []
    for part in chunked(len(examples), batch_size):
        rows += score(list(examples[part]))
    return rows


# ---- proxies ----------------------------------------------------------------------------------

def attention_proxies(examples: Sequence[Example], space: HeadSpace, batch_size: int = 64) -> dict[str, np.ndarray]:
    """Per head (flat, in ``space`` order): mean max weight (confidence) and mean row entropy.

    Averages over every real (unpadded) query row of every example (Voita et al. 2019).
    """
    loaded = examples[0].loaded
    arch = loaded.architecture
    sums = {"confidence": np.zeros(space.size), "entropy": np.zeros(space.size)}
    counts = np.zeros(space.size)
    for part in chunked(len(examples), batch_size):
        inputs = scoring_batch(list(examples[part]))
        with torch.no_grad(), AttentionCapture(loaded.model, structure=loaded.structure) as cap:
            run_gated(loaded, inputs)
        for kind, maps in cap.maps.items():  # [batch, layers, heads, q, k]
            q_mask, k_mask = arch.masks(kind, inputs["attention_mask"], inputs.get("decoder_attention_mask"))
            for li, layer in enumerate(cap.layer_indices(kind)):
                pos = space.offset(kind, layer)
                for m in split_examples(maps[:, li:li + 1], q_mask, k_mask):
                    m = m[0].double()  # [heads, q, k]
                    sums["confidence"][pos:pos + m.shape[0]] += m.max(-1).values.sum(-1).numpy()
                    ent = -(m * m.clamp_min(1e-300).log()).sum(-1)
                    sums["entropy"][pos:pos + m.shape[0]] += ent.sum(-1).numpy()
                    counts[pos:pos + m.shape[0]] += m.shape[1]
    return {k: v / np.maximum(counts, 1) for k, v in sums.items()}


def gradient_importance(examples: Sequence[Example], space: HeadSpace, batch_size: int = 64) -> np.ndarray:
    """Michel et al. (2019) head importance ``E_x |dL(x)/d gate_h|`` at gates = 1 (flat, ``space`` order).

    ``L`` is the negative log-likelihood of the model's own output (the predicted class; the
    target sequence; a decoder's text).
    """
    loaded = examples[0].loaded
    total = np.zeros(space.size)
    for part in chunked(len(examples), batch_size):
        exs = list(examples[part])
        inputs = scoring_batch(exs)
        gates = torch.ones(len(exs), space.size, requires_grad=True)
        with torch.enable_grad():
            rows = read_scores(exs, run_gated(loaded, inputs, space.gates(gates)).logits)
            loss = -sum(ex.scorer.likelihood(r.logprobs) for ex, r in zip(exs, rows))
            (grad,) = torch.autograd.grad(loss, gates)
        total += grad.abs().sum(0).double().numpy()
    return total / len(examples)


# ---- the public function ----------------------------------------------------------------------

def _configs(space: HeadSpace, mode: str, order: list[int] | None) -> tuple[np.ndarray, list[list[str]]]:
    sites = space.sites()
    if mode == "single":
        configs = np.ones((space.size, space.size))
        np.fill_diagonal(configs, 0.0)
        return configs, [[s.name] for s in sites]
    if mode == "leave_one_layer_out":
        configs = np.ones((len(space.blocks), space.size))
        names = []
        for i, (k, l, h) in enumerate(space.blocks):
            pos = space.offset(k, l)
            configs[i, pos:pos + h] = 0.0
            names.append([Site(k, l).name])
        return configs, names
    assert order is not None
    configs = np.ones((len(order), space.size))
    for i in range(len(order)):
        configs[i:, order[i]] = 0.0
    return configs, [[sites[j].name for j in order[: i + 1]] for i in range(len(order))]


def head_ablation(
    source: Any,
    text: Any = None,
    target: Any = None,
    *,
    mode: str = "single",
    order: Sequence[Site | str] | None = None,
    batched: bool = True,
    batch_size: int = 64,
    proxies: bool = True,
    progress: bool = False,
) -> AblationResult:
    """Ablate attention heads and measure the change of the model's own decision.

    Parameters
    ----------
    source : Inspection, list of Inspection, or model
        Inspection(s) with their model attached, or a model (shipped name, folder,
        ``(model, tokenizer)``, LoadedModel) together with ``text``.
    text, target : str or list of str, optional
        Text(s), and forced target(s) of an encoder-decoder, when ``source`` is a model.
    mode : str
        ``"single"`` (each head alone), ``"leave_one_layer_out"`` (each whole layer) or
        ``"cumulative"`` (heads removed one after the other in ``order``; default order: least
        important single head first, as in Michel et al.'s pruning curves).
    order : sequence of Site or str, optional
        Heads (``Site`` or ``"cross.2.3"``) for ``"cumulative"``.
    batched : bool
        Many ablations per forward pass (default); ``False``: one forward per ablation.
    batch_size : int
        Rows (ablation x example) per forward pass.
    proxies : bool
        Also compute confidence, entropy and gradient importance with rank correlations
        (``mode="single"`` only).
    progress : bool
        Show a tqdm progress bar over batches.

    Returns
    -------
    AblationResult
        Effects per head; the model's weights, attention implementation and hooks are unchanged.

    Examples
    --------
    >>> insp = headscope.inspect("headscope/sentiment", "A dull film.")   # doctest: +SKIP
    >>> head_ablation(insp).effect("encoder").shape    # drop of p(predicted class)   # doctest: +SKIP
    (6, 12)
    """
    if mode not in MODES:
        raise InputError(f"unknown ablation mode {mode!r}; choose from {MODES}")
    if order is not None and mode != "cumulative":
        raise InputError("order= is only used with mode='cumulative'; drop it or set mode='cumulative'")
    examples = as_examples(source, text, target)
    loaded = examples[0].loaded
    space = HeadSpace.of(examples[0])
    order_idx: list[int] | None = None
    if mode == "cumulative":
        if order is None:
            single = head_ablation(examples, mode="single", batched=batched, batch_size=batch_size, proxies=False)
            order_idx = list(np.argsort(single.per_example[single.measure].mean(axis=1), kind="stable"))
        else:
            order_idx = [space.index(s) for s in order]
            if len(set(order_idx)) != len(order_idx):
                raise InputError("order= names a head twice; list each head once")
    configs, names = _configs(space, mode, order_idx)
    base = _baseline(examples, batch_size)
    effects_gn, drops, forwards = run_ablations(examples, space, configs, base, batched=batched,
                                                batch_size=batch_size, progress=progress)
    per_example = {m: np.array([[effects_gn[g][n][m] for n in range(len(examples))] for g in range(len(configs))])
                   for m in effects_gn[0][0]}
    primary = next(iter(per_example))
    means = {m: v.mean(axis=1) for m, v in per_example.items()}
    if mode == "leave_one_layer_out":
        effects = {m: _by_layer(space, v) for m, v in means.items()}
    elif mode == "cumulative":
        flat = {m: np.zeros(space.size) for m in means}
        for i, j in enumerate(order_idx or []):
            for m in means:
                flat[m][j] = means[m][i]
        effects = {m: space.by_kind(v) for m, v in flat.items()}
    else:
        effects = {m: space.by_kind(v) for m, v in means.items()}
    result = AblationResult(
        model_name=loaded.name, architecture=loaded.architecture.name, mode=mode, measure=primary, effects=effects,
        per_example=per_example, configs=names,
        per_token=[np.stack([drops[g][n] for g in range(len(configs))]) for n in range(len(examples))],
        n_examples=len(examples), n_forwards=forwards,
    )
    if mode == "cumulative":
        result.order = [space.sites()[j].name for j in order_idx or []]
        result.curve = dict(means)
    if proxies and mode == "single":
        flat_proxies = attention_proxies(examples, space, batch_size)
        flat_proxies["gradient"] = gradient_importance(examples, space, batch_size)
        result.proxies = {p: space.by_kind(v) for p, v in flat_proxies.items()}
        result.correlations = rank_correlations(np.abs(means[primary]), flat_proxies)
    return result

def _by_layer(space: HeadSpace, values: np.ndarray) -> dict[str, np.ndarray]:
    out: dict[str, list[float]] = {}
    for (k, _, _), v in zip(space.blocks, values):
        out.setdefault(k, []).append(float(v))
    return {k: np.asarray(v)[:, None] for k, v in out.items()}


def rank_correlations(effect: np.ndarray, proxies: dict[str, np.ndarray]) -> dict[str, dict[str, float]]:
    """Spearman rho and Kendall tau-b between ``effect`` and each proxy (flat per-head vectors).

    >>> rank_correlations(np.array([1.0, 2, 3]), {"p": np.array([10.0, 20, 30])})["p"]["kendall"]
    1.0
    """
    out = {}
    for name, values in proxies.items():
        rho = stats.spearmanr(effect, values).statistic
        tau = stats.kendalltau(effect, values).statistic
        out[name] = {"spearman": float(rho), "kendall": float(tau)}
    return out
