"""Head ablation: how much the output changes when attention heads are removed.

A head is removed by multiplying its attention output by 0 before the layer's output
projection (headscope's registered attention function with ``head_gates``); this equals
zeroing the head's slice of the output-projection weight, and leaves the model untouched.
Many ablations run in one forward pass: the batch is expanded, each row with its own gates.

Effects (original minus ablated, so positive = the head helped the model's own decision):

* classifier: ``prob_drop`` (probability of the predicted class), ``kl`` = KL(original || ablated),
  ``logprob_drop``;
* encoder-decoder: ``ll_drop``, the drop of the teacher-forced target log-likelihood, summed over
  target tokens (per token in :attr:`AblationResult.per_token`);
* decoder-only: ``ll_drop`` of the text's own log-likelihood plus ``next_drop``, the drop of the
  log-probability of the predicted next token.

Cheaper proxies are computed alongside and rank-correlated with ``|effect|``: head
``confidence`` (mean over queries of the maximum attention weight, Voita et al. 2019),
``entropy`` (mean row entropy; low = focused) and ``gradient`` importance
``E_x |dL/d gate|`` at gates = 1 (Michel, Levy & Neubig 2019), with ``L`` the negative
log-probability of the model's own decision.

>>> res = head_ablation("headscope/en-fr", text="A man in a red shirt.")   # doctest: +SKIP
>>> res.effect("cross").shape                                               # doctest: +SKIP
(3, 4)
>>> print(res.table(5))                                                     # doctest: +SKIP

References: Michel, Levy & Neubig 2019, "Are Sixteen Heads Really Better than One?";
Voita, Talbot, Moiseev, Sennrich & Titov 2019, "Analyzing Multi-Head Self-Attention".
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from scipy import stats

from ..capture import AttentionCapture, split_examples
from ..readings import KINDS, Site
from ..errors import InputError
from ._common import Example, as_examples, chunked, model_inputs, run_gated, token_logprobs

MODES = ("single", "leave_one_layer_out", "cumulative")
PROXIES = ("confidence", "entropy", "gradient")


# ---- the heads of a model ---------------------------------------------------------------------

@dataclass(frozen=True)
class HeadSpace:
    """Every (kind, layer) attention block of a model with its number of heads, in a fixed order."""

    blocks: tuple[tuple[str, int, int], ...]

    @classmethod
    def of(cls, example: Example) -> "HeadSpace":
        """Find the blocks by running one capture forward on ``example``."""
        loaded = example.loaded
        inputs = model_inputs(loaded, [example])
        with torch.no_grad(), AttentionCapture(loaded.model) as cap:
            run_gated(loaded, inputs)
        blocks = sorted(((s.kind, s.layer, int(t.shape[1])) for s, t in cap.records.items()),
                        key=lambda b: (KINDS.index(b[0]), b[1]))
        if not blocks:
            raise InputError(f"no attention heads found in {loaded.name}")
        return cls(tuple(blocks))

    @property
    def size(self) -> int:
        return sum(h for _, _, h in self.blocks)

    def offset(self, kind: str, layer: int) -> int:
        pos = 0
        for k, l, h in self.blocks:
            if (k, l) == (kind, layer):
                return pos
            pos += h
        raise InputError(f"no attention block {kind}.{layer}; the model has {[f'{k}.{l}' for k, l, _ in self.blocks]}")

    def sites(self) -> list[Site]:
        return [Site(k, l, h) for k, l, n in self.blocks for h in range(n)]

    def index(self, site: Site | str) -> int:
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
        enc = [i for i, s in enumerate(self.sites()) if s.kind == "encoder"]
        return bool(enc) and bool((row[enc] != 1).any())


# ---- result -----------------------------------------------------------------------------------

@dataclass
class AblationResult:
    """Effects of head ablations, averaged over the examples (per example in ``per_example``).

    ``effects[measure][kind]`` is ``[layers, heads]`` for ``mode="single"`` and ``"cumulative"``
    (the latter: the effect once this head and every head before it in ``order`` are removed),
    ``[layers, 1]`` for ``"leave_one_layer_out"`` (a whole layer removed).
    """

    model_name: str
    family: str
    mode: str
    measure: str
    effects: dict[str, dict[str, np.ndarray]]
    per_example: dict[str, np.ndarray]
    configs: list[list[str]]
    per_token: list[np.ndarray] | None = None
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
        """``(config name, effect)`` from the largest effect down."""
        values = self.per_example[measure or self.measure].mean(axis=1)
        names = [",".join(c) for c in self.configs]
        return sorted(zip(names, values.tolist()), key=lambda kv: -kv[1])

    def table(self, top: int | None = None) -> str:
        """A readable table: each ablation with its effects and, for single heads, the proxies."""
        measures = list(self.per_example)
        flat_proxies = {p: np.concatenate([v.ravel() for v in arrs.values()]) for p, arrs in self.proxies.items()}
        header = f"{'ablated':<24}" + "".join(f"{m:>14}" for m in measures)
        if self.mode == "single":
            header += "".join(f"{p:>12}" for p in flat_proxies)
        lines = [f"head ablation ({self.mode}) of {self.model_name}, {self.n_examples} example(s); "
                 f"primary measure {self.measure}", header]
        order = np.argsort(-self.per_example[self.measure].mean(axis=1), kind="stable") if self.mode != "cumulative" \
            else np.arange(len(self.configs))
        for g in order[: top or len(order)]:
            name = ",".join(self.configs[g]) if self.mode != "cumulative" else f"+{self.configs[g][-1]} ({g + 1})"
            row = f"{name[:24]:<24}" + "".join(f"{self.per_example[m][g].mean():>14.5f}" for m in measures)
            if self.mode == "single":
                row += "".join(f"{v[g]:>12.4f}" for v in flat_proxies.values())
            lines.append(row)
        for proxy, corr in self.correlations.items():
            lines.append(f"rank correlation |{self.measure}| vs {proxy}: Spearman {corr['spearman']:+.3f}, "
                         f"Kendall {corr['kendall']:+.3f}")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return {
            "model_name": self.model_name, "family": self.family, "mode": self.mode, "measure": self.measure,
            "n_examples": self.n_examples,
            "effects": {m: {k: v.tolist() for k, v in by.items()} for m, by in self.effects.items()},
            "configs": self.configs,
            "proxies": {p: {k: v.tolist() for k, v in by.items()} for p, by in self.proxies.items()},
            "correlations": self.correlations, "order": self.order,
            "curve": None if self.curve is None else {m: v.tolist() for m, v in self.curve.items()},
        }


# ---- running ablations ------------------------------------------------------------------------

def _measures(family: str, base: dict[str, torch.Tensor], abl: dict[str, torch.Tensor]) -> dict[str, float]:
    if family == "classifier":
        p, q = base["probs"].double(), abl["probs"].double()
        c = int(p.argmax())
        kl = float((p * (p.clamp_min(1e-300).log() - q.clamp_min(1e-300).log())).sum())
        return {"prob_drop": float(p[c] - q[c]), "kl": kl,
                "logprob_drop": float(base["logprobs"][0] - abl["logprobs"][0])}
    drop = (base["logprobs"] - abl["logprobs"]).double()
    if family == "encoder-decoder":
        return {"ll_drop": float(drop.sum())}
    return {"ll_drop": float(drop[:-1].sum()), "next_drop": float(drop[-1])}


def _primary(family: str) -> str:
    return "prob_drop" if family == "classifier" else "ll_drop"


def _slim(rows: list[dict[str, torch.Tensor]]) -> list[dict[str, torch.Tensor]]:
    return [{k: v.detach() for k, v in r.items() if k != "logits"} for r in rows]


@torch.no_grad()
def run_ablations(examples: Sequence[Example], space: HeadSpace, configs: np.ndarray, *, batched: bool = True,
                  batch_size: int = 64, progress: bool = False) -> tuple[list[list[dict[str, torch.Tensor]]], int]:
    """Score every (configuration, example) pair; ``configs`` is a ``[G, heads]`` 0/1 gate matrix.

    ``batched=True`` packs ``batch_size`` (configuration, example) rows into each forward
    (encoder-decoders reuse the encoder output for configurations gating no encoder head);
    ``batched=False`` runs one forward per configuration (its examples batched by ``batch_size``).
    Returns ``rows[g][n]`` and the number of forward passes.
    """
    loaded = examples[0].loaded
    model = loaded.model
    n_ex, n_cfg = len(examples), len(configs)
    gates_all = torch.as_tensor(np.asarray(configs), dtype=torch.float32)
    results: list[list[Any]] = [[None] * n_ex for _ in range(n_cfg)]
    forwards = 0
    if not batched:
        for g in range(n_cfg):
            for part in chunked(n_ex, batch_size):
                exs = list(examples[part])
                inputs = model_inputs(loaded, exs)
                out = run_gated(loaded, inputs, space.gates(gates_all[g].expand(len(exs), -1)))
                forwards += 1
                for j, row in enumerate(_slim(token_logprobs(loaded, out.logits, inputs, exs))):
                    results[g][part.start + j] = row
        return results, forwards

    reuse = loaded.family == "encoder-decoder"
    groups: dict[bool, list[int]] = {True: [], False: []}
    for g in range(n_cfg):
        groups[not reuse or space.touches_encoder(configs[g])].append(g)
    full_inputs = model_inputs(loaded, list(examples))
    # example-major rows, examples by length: each forward pads to nearly its own examples' length
    lengths = full_inputs["attention_mask"].sum(1) + full_inputs.get("decoder_attention_mask", torch.zeros(1)).sum(-1)
    by_length = torch.argsort(lengths, stable=True).tolist()
    pairs_full = [(g, n) for n in by_length for g in groups[True]]
    pairs_dec = [(g, n) for n in by_length for g in groups[False]]
    jobs = [(pairs_full[s], False) for s in chunked(len(pairs_full), batch_size)]
    jobs += [(pairs_dec[s], True) for s in chunked(len(pairs_dec), batch_size)]
    if progress:
        from tqdm.auto import tqdm

        jobs = tqdm(jobs, desc="ablation batches", unit="batch")
    encoder_states = None
    if pairs_dec:
        enc_out = model.get_encoder()(input_ids=full_inputs["input_ids"], attention_mask=full_inputs["attention_mask"])
        encoder_states = enc_out.last_hidden_state
        forwards += 1
    for chunk, use_cache in jobs:
        idx = torch.tensor([n for _, n in chunk])
        inputs = _trimmed({k: v.index_select(0, idx) for k, v in full_inputs.items()})
        if use_cache:
            inputs.pop("input_ids")
            width = inputs["attention_mask"].shape[1]
            inputs["encoder_outputs"] = (encoder_states.index_select(0, idx)[:, :width],)
        gate_rows = gates_all.index_select(0, torch.tensor([g for g, _ in chunk]))
        out = run_gated(loaded, inputs, space.gates(gate_rows))
        forwards += 1
        exs = [examples[n] for _, n in chunk]
        for (g, n), row in zip(chunk, _slim(token_logprobs(loaded, out.logits, inputs, exs))):
            results[g][n] = row
    return results, forwards


def _trimmed(inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Cut right padding that no row of this batch needs."""
    src = int(inputs["attention_mask"].sum(1).max())
    out = {k: inputs[k][:, :src] for k in ("input_ids", "attention_mask")}
    if "decoder_attention_mask" in inputs:
        tgt = int(inputs["decoder_attention_mask"].sum(1).max())
        out.update({k: inputs[k][:, :tgt] for k in ("decoder_input_ids", "decoder_attention_mask", "labels_")})
    return out


def _baseline(examples: Sequence[Example], batch_size: int) -> list[dict[str, torch.Tensor]]:
    loaded = examples[0].loaded
    rows: list[dict[str, torch.Tensor]] = []
    with torch.no_grad():
        for part in chunked(len(examples), batch_size):
            exs = list(examples[part])
            inputs = model_inputs(loaded, exs)
            rows += _slim(token_logprobs(loaded, run_gated(loaded, inputs).logits, inputs, exs))
    return rows


# ---- proxies ----------------------------------------------------------------------------------

def attention_proxies(examples: Sequence[Example], space: HeadSpace, batch_size: int = 64) -> dict[str, np.ndarray]:
    """Per head (flat, in ``space`` order): mean max weight (confidence) and mean row entropy.

    Averages over every real (unpadded) query row of every example (Voita et al. 2019).
    """
    loaded = examples[0].loaded
    sums = {"confidence": np.zeros(space.size), "entropy": np.zeros(space.size)}
    counts = np.zeros(space.size)
    for part in chunked(len(examples), batch_size):
        exs = list(examples[part])
        inputs = model_inputs(loaded, exs)
        with torch.no_grad(), AttentionCapture(loaded.model) as cap:
            run_gated(loaded, inputs)
        src_mask = inputs["attention_mask"]
        tgt_mask = inputs.get("decoder_attention_mask")
        for site, maps in cap.records.items():
            q_mask = src_mask if site.kind == "encoder" or tgt_mask is None else tgt_mask
            k_mask = tgt_mask if site.kind == "decoder" and tgt_mask is not None else src_mask
            pos = space.offset(site.kind, site.layer)
            for m in split_examples(maps[:, None], q_mask, k_mask):
                m = m[0].double()  # [heads, q, k]
                sums["confidence"][pos:pos + m.shape[0]] += m.max(-1).values.sum(-1).numpy()
                ent = -(m * m.clamp_min(1e-300).log()).sum(-1)
                sums["entropy"][pos:pos + m.shape[0]] += ent.sum(-1).numpy()
                counts[pos:pos + m.shape[0]] += m.shape[1]
    return {k: v / np.maximum(counts, 1) for k, v in sums.items()}


def gradient_importance(examples: Sequence[Example], space: HeadSpace, batch_size: int = 64) -> np.ndarray:
    """Michel et al. (2019) head importance ``E_x |dL(x)/d gate_h|`` at gates = 1 (flat, ``space`` order).

    ``L`` is the negative log-probability of the model's own decision (classifier: predicted
    class; encoder-decoder: the target sequence; decoder-only: the text).
    """
    loaded = examples[0].loaded
    total = np.zeros(space.size)
    for part in chunked(len(examples), batch_size):
        exs = list(examples[part])
        inputs = model_inputs(loaded, exs)
        gates = torch.ones(len(exs), space.size, requires_grad=True)
        with torch.enable_grad():
            out = run_gated(loaded, inputs, space.gates(gates))
            rows = token_logprobs(loaded, out.logits, inputs, exs)
            loss = -sum(r["logprobs"][:-1].sum() if loaded.family == "decoder" else r["logprobs"].sum() for r in rows)
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
            names.append([f"{k}.{l}"])
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

    >>> res = head_ablation(insp)                                         # doctest: +SKIP
    >>> res.effect("encoder")        # [layers, heads] drop of p(predicted class)  # doctest: +SKIP

    Args:
        source: an :class:`~headscope.inspection.Inspection` (or a list of them), or a model
            (shipped name, folder, ``(model, tokenizer)``, LoadedModel) together with ``text``.
        text, target: text(s) and optional forced target(s) when ``source`` is a model.
        mode: ``"single"`` (each head alone), ``"leave_one_layer_out"`` (each whole layer) or
            ``"cumulative"`` (heads removed one after the other in ``order``; default order:
            least important single head first, as in Michel et al.'s pruning curves).
        order: sites (``Site`` or ``"cross.2.3"``) for ``"cumulative"``.
        batched: many ablations per forward pass (default); ``False``: one forward per ablation.
        batch_size: rows (ablation x example) per forward pass.
        proxies: also compute confidence, entropy and gradient importance with rank
            correlations (``mode="single"`` only).
        progress: show a tqdm progress bar over batches.

    The model's weights, attention implementation and hooks are the same afterwards.
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
            single = head_ablation(examples, mode="single", batched=batched,
                                   batch_size=batch_size, proxies=False)
            values = single.per_example[single.measure].mean(axis=1)
            order_idx = list(np.argsort(values, kind="stable"))
        else:
            order_idx = [space.index(s) for s in order]
            if len(set(order_idx)) != len(order_idx):
                raise InputError("order= names a head twice; list each head once")
    configs, names = _configs(space, mode, order_idx)
    base = _baseline(examples, batch_size)
    rows, forwards = run_ablations(examples, space, configs, batched=batched, batch_size=batch_size,
                                   progress=progress)
    family = loaded.family
    per_example: dict[str, np.ndarray] = {}
    for g in range(len(configs)):
        for n in range(len(examples)):
            for m, v in _measures(family, base[n], rows[g][n]).items():
                per_example.setdefault(m, np.zeros((len(configs), len(examples))))[g, n] = v
    per_token = None
    if family != "classifier":
        per_token = [np.stack([(base[n]["logprobs"] - rows[g][n]["logprobs"]).double().numpy()
                               for g in range(len(configs))]) for n in range(len(examples))]
    primary = _primary(family)
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
        model_name=loaded.name, family=family, mode=mode, measure=primary, effects=effects,
        per_example=per_example, configs=names, per_token=per_token, n_examples=len(examples), n_forwards=forwards,
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
