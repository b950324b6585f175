"""The :class:`Inspection`: what headscope captured for one input, as data that saves and loads.

It holds the maps, the tokens and their word ids, the prediction and the model's description;
it computes no reading (those are functions in ``headscope.aggregate``, ``align``, ``faithful``,
``fragment`` and ``viz`` that take an Inspection). :func:`headscope.inspect` makes one.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from .errors import InputError
from .models.architectures import Architecture, architecture_named
from .models.loading import LoadedModel
from .readings import KINDS, Site

FORMAT_VERSION = 2
_MAPS, _META = "attentions.safetensors", "inspection.json"


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
            ``cross``. For encoder-decoders, query row ``t`` of ``decoder``/``cross`` is the decoder
            step whose *output* is ``target_tokens[t]`` (its input is ``target_tokens[t-1]``, or the
            start token for ``t = 0``).
        layers: ``{kind: [layer indices]}`` when only some layers were kept.
        target_text: the output (generated, or forced with ``target=``); ``None`` without a decoder side.
        target_tokens / target_word_ids: as for the source; ``None`` without a decoder side.
        prediction: generated text: ``{"text": ...}``; a label head: ``{"label", "probabilities"}``;
            a causal LM: ``{"next_token", "probability"}``.
        forced: whether the target was given (teacher forcing) rather than generated.
        model_description: the model's attention structure, e.g. ``"encoder-decoder (marian): ..."``.
        loaded: the model it came from (``None`` after :meth:`load`); readings that re-run the model need it.

    >>> insp = headscope.inspect("headscope/en-fr", "A red car.")     # doctest: +SKIP
    >>> insp.map("cross", 2, 1).shape                                  # doctest: +SKIP
    """

    model_name: str
    architecture: Architecture
    source_text: str
    source_tokens: list[str]
    source_word_ids: list[int | None]
    attentions: dict[str, torch.Tensor]
    layers: dict[str, list[int]] = field(default_factory=dict)
    target_text: str | None = None
    target_tokens: list[str] | None = None
    target_word_ids: list[int | None] | None = None
    prediction: dict[str, Any] = field(default_factory=dict)
    forced: bool = False
    model_description: str = ""
    loaded: LoadedModel | None = field(default=None, repr=False, compare=False)

    # ---- access -------------------------------------------------------------------------
    @property
    def kinds(self) -> list[str]:
        """The captured kinds, in the order encoder, decoder, cross."""
        return [k for k in KINDS if k in self.attentions]

    def shape(self, kind: str) -> tuple[int, int]:
        """``(layers, heads)`` captured for ``kind``."""
        att = self.kind_maps(kind)
        return int(att.shape[0]), int(att.shape[1])

    def layer_indices(self, kind: str) -> list[int]:
        """The model's layer index of each captured layer of ``kind``."""
        return self.layers.get(kind, list(range(self.kind_maps(kind).shape[0])))

    def kind_maps(self, kind: str) -> torch.Tensor:
        """All maps of ``kind``: ``[layers, heads, query, key]``."""
        if kind not in self.attentions:
            raise InputError(f"no {kind!r} attention in this inspection; captured kinds: {self.kinds}")
        return self.attentions[kind]

    def map(self, kind: str, layer: int, head: int | None = None) -> torch.Tensor:
        """The ``[query, key]`` map of one head (or ``[heads, query, key]`` of a layer).

        ``layer`` is the model's layer index, also when only some layers were kept.
        """
        att = self.kind_maps(kind)
        index = self.layer_indices(kind)
        if layer not in index:
            raise InputError(f"layer {layer} of {kind!r} was not captured; captured layers: {index}")
        layer_maps = att[index.index(layer)]
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
        return self._metadata() == other._metadata() and self.kinds == other.kinds and all(
            torch.equal(self.attentions[k], other.attentions[k]) for k in self.kinds)

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
                     (f", {len(self.target_tokens)} target" if self.target_tokens is not None else ""))
        for kind in self.kinds:
            n_layers, n_heads = self.shape(kind)
            q, k = self.attentions[kind].shape[-2:]
            lines.append(f"  {kind:<7} attention: {n_layers} layers x {n_heads} heads, maps {q}x{k}")
        if "cross" in self.attentions and self.target_tokens is not None:
            mean = self.attentions["cross"].float().mean(dim=(0, 1))
            pairs = [f"{display_token(tgt)}->{display_token(self.source_tokens[int(mean[t].argmax())])}"
                     for t, tgt in enumerate(self.target_tokens)]
            lines.append("  cross-attention argmax, all heads averaged (a reading to be scored, not a fact):")
            lines.append("    " + "  ".join(pairs))
        return "\n".join(lines)

    def __repr__(self) -> str:
        shapes = ", ".join(f"{k}={tuple(v.shape)}" for k, v in self.attentions.items())
        out = f", target={self.target_text!r}" if self.target_text is not None else ""
        return f"Inspection(model={self.model_name!r}, source={self.source_text!r}{out}, {shapes})"

    # ---- persistence --------------------------------------------------------------------
    def save(self, path: str | os.PathLike) -> Path:
        """Write ``attentions.safetensors`` and ``inspection.json`` into folder ``path``.

        The folder is written beside its destination and renamed into place, so an interrupted
        save leaves either the old complete folder or the new one.
        """
        folder = Path(path)
        folder.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
        try:
            save_file({k: v.contiguous() for k, v in self.attentions.items()}, str(staging / _MAPS))
            meta = {"format": FORMAT_VERSION, **self._metadata()}
            (staging / _META).write_text(json.dumps(meta, ensure_ascii=False, indent=1), encoding="utf-8")
            _replace_folder(staging, folder)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
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
        if version == 1:
            meta["architecture"] = meta.pop("family")
        elif version != FORMAT_VERSION:
            raise InputError(f"{meta_file}: format {version!r} is not one this headscope reads "
                             f"(1 or {FORMAT_VERSION}); save the inspection again with this version")
        try:
            meta["architecture"] = architecture_named(meta["architecture"])
            insp = cls(attentions={k: tensors[k] for k in KINDS if k in tensors}, **meta)
        except TypeError as err:
            raise InputError(f"{meta_file}: fields do not match an inspection ({err}); save it again") from None
        insp._check(meta_file)
        return insp

    def _check(self, where: Path) -> None:
        """Shapes of the maps against the tokens; every row a distribution."""
        for kind, att in self.attentions.items():
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
        if len(self.source_word_ids) != len(self.source_tokens):
            raise InputError(f"{where}: {len(self.source_tokens)} source tokens but "
                             f"{len(self.source_word_ids)} word ids")


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
    """Rename ``staging`` to ``folder``; an existing ``folder`` is swapped out first, then removed."""
    if folder.exists():
        old = staging.with_name(staging.name + ".old")
        folder.rename(old)
        staging.rename(folder)
        shutil.rmtree(old, ignore_errors=True)
    else:
        staging.rename(folder)
