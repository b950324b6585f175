"""Value zeroing: how much a token's representation changes when another token's value vector is removed.

Mohebbi, Zuidema, Chrupała & Alishahi 2023, "Quantifying Context Mixing in Transformers" (EACL).
For layer ``l`` and tokens ``i``, ``j``: run layer ``l`` on its original input with token ``j``'s value
vector set to zero in every head, and measure the cosine distance between token ``i``'s output and
its original output; each row is normalised to sum to 1. Rolled through the layers by multiplying
the per-layer matrices (``R = V_L ... V_1``, no identity added: the residual is inside each ``V``),
as the paper does.

The layer module is called again with the arguments it got in the model's forward (its input, masks,
position embeddings, the encoder output of a decoder layer; no cache), for a batch of ``tokens``
copies of the example, copy ``j`` with token ``j``'s values zeroed (through the registered attention
function): one layer's cost per token, as in the paper, not a whole forward.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import torch
from torch import nn
from transformers.cache_utils import Cache

from ..capture import AttentionCapture
from ..capture.extras import Extras
from ..errors import UnsupportedModelError
from ..models.structure import ModelStructure
from ..readings import ValueZeroing
from .alti import rollout
from .families import block_of

CHUNK_ELEMENTS = 2 ** 25
"""At most about this many attention probabilities per re-run batch (copies are run in chunks)."""


def cosine_distance_rows(changed: torch.Tensor, original: torch.Tensor) -> torch.Tensor:
    """``1 - cos(changed_i, original_i)`` for each row of two ``[..., width]`` tensors, in float64: a token
    barely changed has a cosine within float32's spacing of 1 (6e-8), which would leave nothing of its distance.

    >>> cosine_distance_rows(torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 1.0]])).tolist()
    [1.0]
    """
    changed, original = changed.cpu().double(), original.cpu().double()  # on the CPU: MPS has no float64
    return (1.0 - torch.nn.functional.cosine_similarity(changed, original, dim=-1)).float()


def normalise_rows(scores: torch.Tensor) -> torch.Tensor:
    """Rows scaled to sum to 1 (a row of zeros stays zero).

    >>> normalise_rows(torch.tensor([[1.0, 3.0], [0.0, 0.0]])).tolist()
    [[0.25, 0.75], [0.0, 0.0]]
    """
    total = scores.sum(-1, keepdim=True)
    return torch.where(total > 0, scores / total.clamp(min=torch.finfo(scores.dtype).tiny), scores)


def _repeat(value: Any, copies: int) -> Any:
    """Tensors with a batch axis of 1 repeated ``copies`` times (inside tuples, lists and dicts too); caches dropped."""
    if isinstance(value, Cache):  # a decoder's key/value cache: the copies run without one
        return None
    if isinstance(value, torch.Tensor):
        return value.repeat(copies, *[1] * (value.ndim - 1)) if value.ndim and value.shape[0] == 1 else value
    if isinstance(value, (tuple, list)):
        return type(value)(_repeat(v, copies) for v in value)
    if isinstance(value, dict):
        return {k: _repeat(v, copies) for k, v in value.items()}
    return value


def _again(args: tuple[Any, ...], kwargs: dict[str, Any], copies: int) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """A layer call's arguments for ``copies`` copies of the example, without a cache to write into."""
    kwargs = {k: (None if k in ("past_key_value", "past_key_values", "layer_past") else
                  False if k == "use_cache" else _repeat(v, copies)) for k, v in kwargs.items()}
    return _repeat(args, copies), kwargs


def _zeroed_layer(model: nn.Module, structure: ModelStructure, layer_module: nn.Module,
                  call: tuple[tuple[Any, ...], dict[str, Any]], kind: str, layer: int, zero: torch.Tensor) -> torch.Tensor:
    """The layer's output for ``len(zero)`` copies of its original call, copy ``c`` with the values of the keys
    ``zero[c]`` marks set to zero."""
    args, kwargs = _again(*call, zero.shape[0])
    zeroed = Extras(zero={(kind, layer): zero})
    run = AttentionCapture(model, kinds=[kind], layers=[], structure=structure, device=None)
    run.recording.extras = zeroed
    with torch.no_grad(), run:
        after = layer_module(*args, **kwargs)
    return after[0] if isinstance(after, (tuple, list)) else after


def value_zeroing_maps(model: nn.Module, inputs: Mapping[str, Any], structure: ModelStructure,
                       kinds: Iterable[str]) -> dict[str, torch.Tensor]:
    """``{"kind.l.valuezeroing": [n, n], "kind.valuezeroing": [n, n]}`` for the self-attention ``kinds``
    of one example (batch of one); Mohebbi et al. 2023.

    >>> loaded = headscope.load("headscope/sentiment")                                    # doctest: +SKIP
    >>> maps = value_zeroing_maps(loaded.model, loaded.tokenizer("A dull film.", return_tensors="pt"),
    ...                           loaded.structure, ["encoder"])                          # doctest: +SKIP
    >>> maps["encoder.0.valuezeroing"].sum(-1)                                            # doctest: +SKIP
    tensor([1., 1., 1., 1., 1., 1.])
    """
    kinds = [k for k in kinds if k in structure.kinds and k != "cross"]
    sites = [s for s in structure.sites if s.kind in kinds]
    layer_modules = {f"layer {s.kind}.{s.layer}": block_of(model, s.module).layer for s in sites}
    original = Extras(outputs=layer_modules, calls=layer_modules)
    cap = AttentionCapture(model, kinds=kinds, structure=structure, device=None)
    cap.recording.extras = original
    with torch.no_grad(), cap, original.watching(cap.recording):
        model(**inputs)
    out: dict[str, torch.Tensor] = {}
    for kind in kinds:
        layers = cap.layer_indices(kind)
        _check_layers(structure, kind, cap.maps.get(kind), layers, layer_modules, original)
        first = cap.maps[kind][:, 0] if isinstance(cap.maps[kind], torch.Tensor) else cap.maps[kind][0]
        n = int(first.shape[-1])
        chunk = max(1, CHUNK_ELEMENTS // first.numel())
        per_layer = []
        for layer in layers:  # the layer alone on its original input, n copies: copy j zeroes token j's values
            name = f"layer {kind}.{layer}"
            after = torch.cat([_zeroed_layer(model, structure, layer_modules[name], original.kept_calls[name][0],
                                             kind, layer, torch.eye(n, dtype=torch.bool)[start:start + chunk])
                               for start in range(0, n, chunk)])                # copy j: [n, width]
            before = original.kept_outputs[name][0][0]                        # [n, width]
            scores = cosine_distance_rows(after, before[None]).transpose(0, 1)  # [i, j], on the CPU
            per_layer.append(normalise_rows(scores.clamp(min=0)))
            out[ValueZeroing(kind, layer).name] = per_layer[-1]
        out[ValueZeroing(kind).name] = rollout(per_layer)
    return out


def _check_layers(structure: ModelStructure, kind: str, maps: Any, layers: list[int],
                  layer_modules: dict[str, nn.Module], original: Extras) -> None:
    """Refuse, by name, what value zeroing as defined cannot re-run: a kind whose attention bypasses the
    interface, layer modules applied more than once (cycled layers), maps that are not square (pooled keys),
    a layer whose input or output is not one ``[tokens, width]`` stream of the example."""
    label = f"{structure.label}: value zeroing of its {kind} attention"
    if maps is None:
        raise UnsupportedModelError(f"{label}: the attention does not call transformers' attention interface")
    missing = [layer for layer in layers if f"layer {kind}.{layer}" not in original.kept_calls]
    if missing or len(layers) > sum(name.startswith(f"layer {kind}.") for name in layer_modules):
        raise UnsupportedModelError(f"{label}: its layer modules are applied more than once (shared or cycled "
                                    "layers), so one layer cannot be re-run alone")
    for layer in layers:
        name = f"layer {kind}.{layer}"
        (args, kwargs), output = original.kept_calls[name][0], original.kept_outputs[name][0]
        hidden = args[0] if args else kwargs.get("hidden_states")
        square = all(m.shape[-1] == m.shape[-2] for m in (maps if isinstance(maps, list) else [maps]))
        if not square or not isinstance(hidden, torch.Tensor) or hidden.ndim != 3 or hidden.shape[0] != 1 \
                or output.ndim != 3:
            raise UnsupportedModelError(f"{label}: layer {layer} does not map one [tokens, width] stream to one "
                                        "(several residual streams, pooled keys or a stacked input), so token "
                                        "outputs cannot be compared")
