"""The :class:`Inspection`: what headscope captured for one input, as data that saves and loads.

It holds the maps, the tokens and their word ids, the prediction and the model's description;
it computes no reading (those are functions in ``headscope.aggregate``, ``align``, ``faithful``,
``fragment`` and ``viz`` that take an Inspection). :func:`headscope.inspect` makes one.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from . import storage
from .capture.reductions import Reductions, reduce_maps
from .errors import InputError
from .models.architectures import Architecture, architecture_named
from .models.loading import LoadedModel
from .readings import KINDS, Site

FORMAT_VERSION = 2
_MAPS, _META = "attentions.safetensors", "inspection.json"
_PIXELS = "pixel_values"  # the image of an image input, kept beside the maps
_MIXING = "mixing/"  # issue 16: readings beyond the raw weights, one tensor per reading name
_REDUCED = "reduced"  # reductions computed during the capture (issue 17), as "reduced/<kind>/<name>"


@dataclass(eq=False)
class Inspection:
    """Everything headscope captured for one input.

    Attributes:
        model_name: what the model was loaded from.
        architecture: the architecture-kind strategy (``.name`` is ``"encoder"``, ``"decoder"`` or
            ``"encoder-decoder"``).
        source_text: the input text (words joined by spaces when given pre-split).
        source_tokens: input subword tokens, special tokens included.
        source_word_ids: for each source token, the index of its word (``None`` for special tokens).
        attentions: ``{kind: tensor[layers, heads, query, key]}``; kinds ``encoder``, ``decoder``,
            ``cross``. Where a model's layers differ in map shape (pooling, windows), a list of
            per-layer ``[heads, query, key]`` maps instead (see :meth:`layer_maps`). For encoder-decoders, query row ``t`` of ``decoder``/``cross`` is the decoder
            step whose *output* is ``target_tokens[t]`` (its input is ``target_tokens[t-1]``, or the
            start token for ``t = 0``).
        layers: ``{kind: [layer indices]}`` when only some layers were kept.
        target_text: the output (generated, or forced with ``target=``); ``None`` without a decoder side.
        target_tokens / target_word_ids: as for the source; ``None`` without a decoder side.
        prediction: generated text: ``{"text": ...}``; a label head: ``{"label", "probabilities"}``;
            a causal LM: ``{"next_token", "probability"}``.
        forced: whether the target was given (teacher forcing) rather than generated.
        model_description: the model's attention structure, e.g. ``"encoder-decoder (marian): ..."``.
        patch_grid: ``(rows, cols)`` of an image encoder's patch grid, ``None`` for text. Patch tokens
            are named ``p(row,col)`` and their word id is the patch index ``row * cols + col``; special
            tokens (``[CLS]``, ``[DIST]``, ``[REG0]``...) have word id ``None``.
        pixel_values: the image as the model saw it, ``[channels, height, width]`` (its processor's
            output), ``None`` for text.
        loaded: the model it came from (``None`` after :meth:`load`); readings that re-run the model need it.
        mixing: ``{reading name: [query, key] map}`` of the readings beyond the raw weights computed with
            ``headscope.inspect(..., readings=[...])`` (norm, ALTI, value zeroing, gradient rollout; see
            :mod:`headscope.mixing`); empty unless asked for.
        reduced: ``{kind: {name: tensor}}`` computed during the capture when ``reduce=`` was given
            (``entropy``/``sink``/``max`` ``[layers, heads, query]``, ``topk.values``/``topk.indices``
            ``[layers, heads, query, k]``, ``rows`` ``[layers, heads, rows, key]`` and ``rows.index``);
            read them with :meth:`reduction`. See :mod:`headscope.capture.reductions`.
        reductions: what was asked for (a :class:`~headscope.capture.Reductions`), ``None`` if nothing.
        streamed_to: the folder the full maps were streamed to (``stream_to=``), ``None`` if not.

    >>> insp = headscope.inspect("headscope/en-fr", "A red car.")     # doctest: +SKIP
    >>> insp.map("cross", 2, 1).shape                                  # doctest: +SKIP
    """

    model_name: str
    architecture: Architecture
    source_text: str
    source_tokens: list[str]
    source_word_ids: list[int | None]
    attentions: dict[str, torch.Tensor | list[torch.Tensor]]
    layers: dict[str, list[int]] = field(default_factory=dict)
    target_text: str | None = None
    target_tokens: list[str] | None = None
    target_word_ids: list[int | None] | None = None
    prediction: dict[str, Any] = field(default_factory=dict)
    forced: bool = False
    model_description: str = ""
    patch_grid: tuple[int, int] | None = None  # issue 18: image inputs
    pixel_values: torch.Tensor | None = field(default=None, repr=False)
    loaded: LoadedModel | None = field(default=None, repr=False, compare=False)
    mixing: dict[str, torch.Tensor] = field(default_factory=dict, repr=False)  # issue 16
    reduced: dict[str, dict[str, torch.Tensor]] = field(default_factory=dict, repr=False)  # issue 17
    reductions: Reductions | None = None
    streamed_to: str | None = None

    # ---- access -------------------------------------------------------------------------
    @property
    def kinds(self) -> list[str]:
        """The captured kinds, in the order encoder, decoder, cross."""
        return [k for k in KINDS if k in self.attentions]

    def shape(self, kind: str) -> tuple[int, int]:
        """``(layers, heads)`` captured for ``kind`` (heads of its first layer)."""
        if kind not in self.attentions and kind in self.reduced:  # only reductions kept (issue 17)
            first = next(t for name, t in self.reduced[kind].items() if name != "rows.index")
            return int(first.shape[0]), int(first.shape[1])
        layers = self.layer_maps(kind)
        return len(layers), int(layers[0].shape[0])

    def layer_indices(self, kind: str) -> list[int]:
        """The model's layer index of each captured layer of ``kind``."""
        if kind not in self.attentions and kind in self.reduced:  # only reductions kept (issue 17)
            first = next(t for name, t in self.reduced[kind].items() if name != "rows.index")
            return self.layers.get(kind, list(range(first.shape[0])))
        return self.layers.get(kind, list(range(len(self.layer_maps(kind)))))

    def layer_maps(self, kind: str) -> list[torch.Tensor]:
        """The maps of ``kind`` layer by layer, each ``[heads, query, key]`` (shapes may differ by layer)."""
        if kind not in self.attentions:
            if self.streamed_to is not None or kind in self.reduced:
                where = (f"they were streamed to {self.streamed_to} (read them with "
                         f"headscope.capture.load_streamed({self.streamed_to!r}, {kind!r}))"
                         if self.streamed_to is not None else "only reductions were kept (insp.reduction(kind, name))")
                raise InputError(f"no {kind!r} maps in memory: {where}; inspect without reduce=/stream_to= to keep "
                                 "the maps")
            raise InputError(f"no {kind!r} attention in this inspection; captured kinds: {self.kinds}")
        return list(self.attentions[kind])

    def reduction(self, kind: str, name: str) -> torch.Tensor:
        """One reduction of ``kind`` (see :attr:`reduced`): the one computed during the capture, or,
        when only full maps were kept, the same computed from them now
        (:func:`~headscope.capture.reductions.reduce_maps`).

        >>> insp.reduction("encoder", "entropy").shape    # doctest: +SKIP
        torch.Size([6, 12, 9])
        """
        if name in self.reduced.get(kind, {}):
            return self.reduced[kind][name]
        if kind in self.attentions and self.stacked(kind):
            spec = self.reductions or Reductions()
            if name.startswith("topk.") and not spec.topk:
                raise InputError(f"reduction {name!r}: no k was given; inspect with reduce=['topk=K']")
            found = reduce_maps(self.attentions[kind], spec, kind)
            if name in found:
                return found[name]
        have = sorted(self.reduced.get(kind, {}))
        raise InputError(f"no reduction {name!r} of {kind!r} in this inspection (kept: {have or 'none'}); "
                         "inspect with reduce=[...] naming it (see headscope.capture.Reductions)")

    def stacked(self, kind: str) -> bool:
        """Whether the layers of ``kind`` share one map shape (kept as one ``[layers, heads, q, k]`` tensor)."""
        return isinstance(self.attentions.get(kind), torch.Tensor)

    def kind_maps(self, kind: str) -> torch.Tensor:
        """All maps of ``kind``: ``[layers, heads, query, key]``.

        Models whose layers differ in map shape (Funnel, Swin, ...) keep per-layer maps: read them
        with :meth:`layer_maps` or :meth:`map`; readings that need one tensor refuse them.
        """
        layers = self.layer_maps(kind)
        if not self.stacked(kind):
            shapes = sorted({tuple(t.shape) for t in layers})
            raise InputError(f"the layers of {kind!r} have maps of different shapes {shapes}: there is no one "
                             f"[layers, heads, query, key] tensor; read them per layer with insp.map({kind!r}, layer)")
        return self.attentions[kind]

    def map(self, kind: str, layer: int, head: int | None = None) -> torch.Tensor:
        """The ``[query, key]`` map of one head (or ``[heads, query, key]`` of a layer).

        ``layer`` is the model's layer index, also when only some layers were kept.
        """
        layers = self.layer_maps(kind)
        index = self.layer_indices(kind)
        if layer not in index:
            raise InputError(f"layer {layer} of {kind!r} was not captured; captured layers: {index}")
        layer_maps = layers[index.index(layer)]
        if head is None:
            return layer_maps
        if not 0 <= head < layer_maps.shape[0]:
            raise InputError(f"head {head} out of range: {kind!r} has {layer_maps.shape[0]} heads "
                             f"(0..{layer_maps.shape[0] - 1})")
        return layer_maps[head]

    def sites(self, kind: str | None = None) -> list[Site]:
        """Every captured head as a :class:`~headscope.readings.Site`, e.g. ``Site("cross", 2, 3)``."""
        out = []
        for k in [kind] if kind else self.kinds:
            n_heads = self.shape(k)[1]
            out += [Site(k, layer, head) for layer in self.layer_indices(k) for head in range(n_heads)]
        return out

    def query_tokens(self, kind: str) -> list[str]:
        """Tokens labelling the rows of ``kind`` maps."""
        target = self.architecture.query_is_target(kind) and self.target_tokens is not None
        return self.target_tokens if target else self.source_tokens

    def key_tokens(self, kind: str) -> list[str]:
        """Tokens labelling the columns of ``kind`` maps."""
        target = self.architecture.key_is_target(kind) and self.target_tokens is not None
        return self.target_tokens if target else self.source_tokens

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Inspection):
            return NotImplemented
        same_image = (self.pixel_values is None) == (other.pixel_values is None) and (
            self.pixel_values is None or torch.equal(self.pixel_values, other.pixel_values))
        same_mixing = self.mixing.keys() == other.mixing.keys() and all(
            torch.equal(m, other.mixing[k]) for k, m in self.mixing.items())
        return self._metadata() == other._metadata() and self.kinds == other.kinds and same_image and same_mixing and all(
            self.stacked(k) == other.stacked(k) and len(self.layer_maps(k)) == len(other.layer_maps(k))
            and all(torch.equal(a, b) for a, b in zip(self.layer_maps(k), other.layer_maps(k))) for k in self.kinds) \
            and self.reduced.keys() == other.reduced.keys() and all(
                self.reduced[k].keys() == other.reduced[k].keys()
                and all(torch.equal(t, other.reduced[k][n]) for n, t in self.reduced[k].items()) for k in self.reduced)

    # ---- display ------------------------------------------------------------------------
    def summary(self) -> str:
        """A readable multi-line summary: input, output, captured maps."""
        lines = [f"headscope inspection of {self.model_name} ({self.architecture.name})"]
        lines.append(f"  input : {self.source_text}")
        if self.target_text is not None:
            lines.append(f"  output: {self.target_text}" + ("  (forced)" if self.forced else "  (generated)"))
        if "label" in self.prediction:
            probs = ", ".join(f"{k} {v:.3f}" for k, v in self.prediction["probabilities"].items())
            lines.append(f"  prediction: {self.prediction['label']}  ({probs})")
        elif "next_token" in self.prediction:
            lines.append(f"  next token: {self.prediction['next_token']!r} (p={self.prediction['probability']:.3f})")
        lines.append(f"  tokens: {len(self.source_tokens)} source" +
                     (f", {len(self.target_tokens)} target" if self.target_tokens is not None else "") +
                     (f" ({self.patch_grid[0]}x{self.patch_grid[1]} patch grid)" if self.patch_grid else ""))
        for kind in self.kinds:
            n_layers, n_heads = self.shape(kind)
            sizes = sorted({"x".join(map(str, t.shape[-2:])) for t in self.layer_maps(kind)})
            lines.append(f"  {kind:<7} attention: {n_layers} layers x {n_heads} heads, maps {' / '.join(sizes)}"
                         + ("" if self.stacked(kind) else " (per layer)"))
        for kind, found in self.reduced.items():  # issue 17
            lines.append(f"  {kind:<7} reductions: {', '.join(found)}")
        if self.streamed_to is not None:
            lines.append(f"  maps streamed to {self.streamed_to}")
        if self.mixing:  # issue 16
            methods = sorted({name.rsplit(".", 1)[1] for name in self.mixing})
            lines.append(f"  readings beyond the weights: {', '.join(methods)} ({len(self.mixing)} maps)")
        if "cross" in self.attentions and self.target_tokens is not None:
            mean = self.attentions["cross"].float().mean(dim=(0, 1))
            pairs = [f"{display_token(tgt)}->{display_token(self.source_tokens[int(mean[t].argmax())])}"
                     for t, tgt in enumerate(self.target_tokens)]
            lines.append("  cross-attention argmax, all heads averaged (a reading to be scored, not a fact):")
            lines.append("    " + "  ".join(pairs))
        return "\n".join(lines)

    def __repr__(self) -> str:
        shapes = ", ".join(f"{k}={tuple(v.shape)}" if self.stacked(k) else f"{k}={len(v)} layers of varying shape"
                           for k, v in self.attentions.items())
        out = f", target={self.target_text!r}" if self.target_text is not None else ""
        return f"Inspection(model={self.model_name!r}, source={self.source_text!r}{out}, {shapes})"

    # ---- persistence --------------------------------------------------------------------
    def save(self, path: str | os.PathLike) -> Path:
        """Write ``attentions.safetensors`` and ``inspection.json`` into folder ``path``.

        The folder is written beside its destination and renamed into place, so an interrupted
        save leaves either the old complete folder or the new one. An existing folder is replaced
        only when it is a saved inspection or empty (never an unrelated folder).
        """
        folder = Path(path)
        storage.check_destination(folder, marker=_META, what="inspection")
        with storage.staging_folder(folder) as staging:
            tensors = {}
            for kind in self.kinds:  # per-layer maps as "kind.0", "kind.1", ...
                if self.stacked(kind):
                    tensors[kind] = self.attentions[kind]
                else:
                    tensors.update({f"{kind}.{i}": t for i, t in enumerate(self.attentions[kind])})
            if self.pixel_values is not None:
                tensors[_PIXELS] = self.pixel_values
            tensors.update({_MIXING + name: m for name, m in self.mixing.items()})  # issue 16
            for kind, found in self.reduced.items():  # issue 17: "reduced/<kind>/<name>"
                tensors.update({f"{_REDUCED}/{kind}/{name}": t for name, t in found.items()})
            save_file({k: v.contiguous() for k, v in tensors.items()}, str(staging / _MAPS))
            meta = {"format": FORMAT_VERSION, **self._metadata()}
            (staging / _META).write_text(json.dumps(meta, ensure_ascii=False, indent=1), encoding="utf-8")
            _replace_folder(staging, folder)
        return folder

    def _metadata(self) -> dict[str, Any]:
        return {
            "model_name": self.model_name,
            "architecture": self.architecture.name,
            "model_description": self.model_description,
            "source_text": self.source_text,
            "source_tokens": self.source_tokens,
            "source_word_ids": self.source_word_ids,
            "layers": self.layers,
            "target_text": self.target_text,
            "target_tokens": self.target_tokens,
            "target_word_ids": self.target_word_ids,
            "prediction": self.prediction,
            "forced": self.forced,
            **({"patch_grid": list(self.patch_grid)} if self.patch_grid else {}),
            **({"reductions": self.reductions.to_dict()} if self.reductions is not None else {}),
            **({"streamed_to": self.streamed_to} if self.streamed_to is not None else {}),
        }

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Inspection":
        """Read an inspection written by :meth:`save` (exact round trip; no model attached).

        Checks the format version and that the maps agree with the tokens; raises
        :class:`~headscope.errors.InputError` naming the file and the problem otherwise.
        """
        folder = Path(path)
        meta_file, maps_file = folder / _META, folder / _MAPS
        if not meta_file.is_file() or not maps_file.is_file():
            raise InputError(f"{folder} is not a saved inspection (it needs {_META} and {_MAPS}); "
                             "pass a folder written by Inspection.save")
        try:
            meta = json.loads(meta_file.read_text(encoding="utf-8"))
            tensors = load_file(str(maps_file))
        except (ValueError, UnicodeDecodeError, SafetensorError) as err:
            raise InputError(f"{folder}: unreadable inspection files ({err}); save the inspection again") from None
        version = meta.pop("format", None) if isinstance(meta, dict) else None
        storage.check_format(version, (1, FORMAT_VERSION), meta_file, "inspection")
        try:
            if version == 1:
                meta["architecture"] = meta.pop("family")
            meta["architecture"] = architecture_named(meta["architecture"])
            if meta.get("patch_grid") is not None:
                meta["patch_grid"] = tuple(meta["patch_grid"])
            if meta.get("reductions") is not None:
                meta["reductions"] = Reductions.from_dict(meta["reductions"])
            mixing = {k[len(_MIXING):]: t for k, t in sorted(tensors.items()) if k.startswith(_MIXING)}  # issue 16
            insp = cls(attentions=_maps_from_file(tensors), pixel_values=tensors.get(_PIXELS), mixing=mixing,
                       reduced=_reduced_from_file(tensors), **meta)
        except (TypeError, KeyError) as err:
            raise InputError(f"{meta_file}: fields do not match an inspection ({type(err).__name__}: {err}); "
                             "save it again") from None
        insp._check(meta_file)
        return insp

    def _check(self, where: Path) -> None:
        """Shapes of the maps against the tokens; every row a distribution."""
        for kind, att in self.attentions.items():
            if not self.stacked(kind):  # per-layer maps of pooled or windowed tokens: shapes vary by design
                if any(t.ndim != 3 or not torch.isfinite(t).all() for t in att):
                    raise InputError(f"{where}: {kind!r} per-layer maps must be finite [heads, query, key] tensors")
                continue
            rows = len(self.query_tokens(kind))
            cols = len(self.key_tokens(kind))
            if att.ndim != 4 or tuple(att.shape[-2:]) != (rows, cols):
                raise InputError(f"{where}: {kind!r} maps have shape {tuple(att.shape)} but the tokens call for "
                                 f"[layers, heads, {rows}, {cols}]; the files do not belong together")
            if kind in self.layers and len(self.layers[kind]) != att.shape[0]:
                raise InputError(f"{where}: {kind!r} has {att.shape[0]} layers of maps but lists layers "
                                 f"{self.layers[kind]}")
            if not torch.isfinite(att).all():
                raise InputError(f"{where}: {kind!r} maps hold NaN or infinite values")
        for kind, found in self.reduced.items():  # issue 17: rows are the kind's query tokens
            rows = len(self.query_tokens(kind)) if kind in KINDS else -1
            for name, t in found.items():
                bad = not torch.isfinite(t.float()).all() or (
                    name in ("entropy", "sink", "max") and (t.ndim != 3 or t.shape[-1] != rows))
                if bad:
                    raise InputError(f"{where}: reduction {name!r} of {kind!r} has shape {tuple(t.shape)} or "
                                     f"non-finite values; the tokens call for [layers, heads, {rows}]")
        for name, m in self.mixing.items():  # issue 16
            if m.ndim != 2 or not torch.isfinite(m).all():
                raise InputError(f"{where}: reading {name!r} must be a finite [query, key] map, got {tuple(m.shape)}")
        if len(self.source_word_ids) != len(self.source_tokens):
            raise InputError(f"{where}: {len(self.source_tokens)} source tokens but "
                             f"{len(self.source_word_ids)} word ids")
        if self.target_tokens is not None and len(self.target_word_ids or []) != len(self.target_tokens):
            raise InputError(f"{where}: {len(self.target_tokens)} target tokens but "
                             f"{len(self.target_word_ids or [])} target word ids")
        if self.patch_grid is not None and sorted(w for w in self.source_word_ids if w is not None) != list(
                range(self.patch_grid[0] * self.patch_grid[1])):
            raise InputError(f"{where}: the patch tokens do not fill the {self.patch_grid} patch grid once each")


def _reduced_from_file(tensors: dict[str, torch.Tensor]) -> dict[str, dict[str, torch.Tensor]]:
    out: dict[str, dict[str, torch.Tensor]] = {}
    for key, t in tensors.items():
        if key.startswith(f"{_REDUCED}/") and key.count("/") == 2:
            _, kind, name = key.split("/")
            out.setdefault(kind, {})[name] = t
    return out


def _maps_from_file(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor | list[torch.Tensor]]:
    maps: dict[str, torch.Tensor | list[torch.Tensor]] = {k: tensors[k] for k in KINDS if k in tensors}
    for kind in KINDS:
        layers = sorted((int(key.split(".")[1]), t) for key, t in tensors.items()
                        if key.startswith(f"{kind}.") and key.split(".")[1].isdigit())
        if layers:
            maps[kind] = [t for _, t in layers]
    return maps


_WORD_START = ("▁", "Ġ")


def display_token(token: str) -> str:
    """A subword as a reader would write it: ``▁homme`` -> ``homme``, ``##ing`` -> ``-ing``, ``Ġdog`` -> ``dog``.

    >>> [display_token(t) for t in ["▁homme", "##ing", "Ġdog", "</s>"]]
    ['homme', '-ing', 'dog', '</s>']
    """
    if token.startswith(_WORD_START) and len(token) > 1:
        return token[1:]
    if token.startswith("##") and len(token) > 2:
        return "-" + token[2:]
    return token


def _replace_folder(staging: Path, folder: Path) -> None:
    """Put ``staging`` at ``folder`` in one step where the system can (an existing ``folder`` is
    exchanged with it, then removed with the staging folder): :func:`headscope.storage.replace_folder`."""
    storage.replace_folder(staging, folder)
