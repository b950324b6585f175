"""A query's attention on the patch grid: the row of a reading's map, laid out as the patches.

An image encoder's tokens are special tokens (``[CLS]``, ``[DIST]``, ``[REG0]``...) and one token
per patch (:attr:`~headscope.inspection.Inspection.patch_grid`, word id ``row * cols + col``).
:func:`grid_map` takes any reading (``"encoder.2.1"``, ``"encoder.2.mean"``, ``"encoder.rollout"``,
``"encoder.flow"``, see :mod:`headscope.readings`) and returns the attention of one query token
(``[CLS]`` by default) on each patch, as a ``[rows, cols]`` array, with the mass the query puts on
the special tokens kept beside it (they have no place on the image).

>>> insp = headscope.inspect("headscope/shapes-vit", "shape.png")      # doctest: +SKIP
>>> grid_map(insp, "encoder.rollout").values.shape                     # doctest: +SKIP
(6, 6)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..aggregate import reading_map
from ..errors import InputError, NotApplicableError
from ..inspection import Inspection
from ..readings import Flow, Reading, Site, parse_reading

DEFAULT_QUERY = "[CLS]"


@dataclass(frozen=True)
class GridMap:
    """One query's attention over the patch grid.

    Attributes:
        values: ``[rows, cols]`` float64, the attention on each patch (a share of the query's row:
            ``values.sum() + sum(specials.values())`` is 1 for probability readings).
        specials: ``{token: attention}`` on each special token (``[CLS]``, ``[DIST]``, registers).
        name: the stable id of what the map shows: a reading's ``name`` (``"encoder.rollout"``) or a
            method's (``"gradient"``, ``"occlusion"``).
        label: the same for people (``"rollout"``, ``"gradient saliency"``).
        query: the query token's name (``"[CLS]"``, ``"p(2,3)"``).
        image_size: ``(height, width)`` of the image the model saw, in pixels.
    """

    values: np.ndarray
    specials: dict[str, float]
    name: str
    label: str
    query: str
    image_size: tuple[int, int]

    @property
    def grid(self) -> tuple[int, int]:
        """``(rows, cols)``."""
        return int(self.values.shape[0]), int(self.values.shape[1])

    @property
    def patch_size(self) -> tuple[float, float]:
        """``(height, width)`` of one patch in pixels."""
        return self.image_size[0] / self.grid[0], self.image_size[1] / self.grid[1]

    @property
    def patch_share(self) -> np.ndarray:
        """``values`` renormalised over the patches (the special tokens left out): sums to 1."""
        total = self.values.sum()
        return self.values / total if total > 0 else np.full_like(self.values, 1.0 / self.values.size)

    def __str__(self) -> str:
        rows, cols = self.grid
        top = np.unravel_index(int(np.argmax(self.values)), self.values.shape)
        specials = ", ".join(f"{k} {v:.3f}" for k, v in self.specials.items())
        return (f"{self.label} from {self.query}: {rows}x{cols} patches, peak p({top[0]},{top[1]}) "
                f"{self.values.max():.3f}" + (f"; special tokens: {specials}" if specials else ""))


def require_grid(insp: Inspection) -> tuple[int, int]:
    """The inspection's patch grid; :class:`NotApplicableError` for a text inspection."""
    if insp.patch_grid is None:
        raise NotApplicableError(f"{insp.model_name}: not an image inspection (no patch grid); inspect an image "
                                 "with an image classifier (e.g. headscope/shapes-vit)")
    return insp.patch_grid


def token_positions(insp: Inspection) -> list[tuple[int, int] | None]:
    """``(row, col)`` of each source token on the patch grid, ``None`` for special tokens.

    >>> token_positions(insp)[:3]                                          # doctest: +SKIP
    [None, (0, 0), (0, 1)]
    """
    _, cols = require_grid(insp)
    return [None if w is None else divmod(w, cols) for w in insp.source_word_ids]


def query_index(insp: Inspection, query: str | int | tuple[int, int] = DEFAULT_QUERY) -> int:
    """The token index of ``query``: a token name (``"[CLS]"``, ``"p(2,3)"``), a ``(row, col)`` patch or an index."""
    require_grid(insp)
    n = len(insp.source_tokens)
    if isinstance(query, bool):
        raise InputError(f"query={query!r}: pass a token name, a (row, col) patch or a token index")
    if isinstance(query, int):
        if not 0 <= query < n:
            raise InputError(f"query {query} out of range: the image has {n} tokens (0..{n - 1})")
        return query
    if isinstance(query, tuple):
        query = f"p({query[0]},{query[1]})"
    if query not in insp.source_tokens:
        specials = [t for t, w in zip(insp.source_tokens, insp.source_word_ids) if w is None]
        raise InputError(f"query {query!r} is not a token of this image; its special tokens are {specials} and its "
                         f"patches p(0,0)..p({insp.patch_grid[0] - 1},{insp.patch_grid[1] - 1})")
    return insp.source_tokens.index(query)


def grid_map(insp: Inspection, reading: str | Reading | Site, query: str | int | tuple[int, int] = DEFAULT_QUERY,
             **options) -> GridMap:
    """The attention of ``query`` (``[CLS]`` by default) under ``reading``, laid out on the patch grid.

    ``options`` go to :func:`headscope.aggregate.reading_map` (``residual=``, ``head_fusion=`` for
    rollout and flow). Flow is computed for the query's row alone.
    """
    rows, cols = require_grid(insp)
    r = parse_reading(reading)
    q = query_index(insp, query)
    if isinstance(r, Flow):
        row = reading_map(insp, r, rows=[q], **options)[0]
    else:
        row = reading_map(insp, r, **options)[q]
    row = row.double().numpy()
    values = np.zeros(rows * cols)
    specials: dict[str, float] = {}
    for token, word, a in zip(insp.source_tokens, insp.source_word_ids, row):
        if word is None:
            specials[token] = float(a)
        else:
            values[word] = a
    height, width = _image_size(insp)
    return GridMap(values.reshape(rows, cols), specials, r.name, r.label, insp.source_tokens[q], (height, width))


def _image_size(insp: Inspection) -> tuple[int, int]:
    if insp.pixel_values is not None:
        return int(insp.pixel_values.shape[-2]), int(insp.pixel_values.shape[-1])
    rows, cols = require_grid(insp)
    return rows, cols


def patch_values(values: np.ndarray, insp: Inspection, name: str, label: str, query: str = "") -> GridMap:
    """Wrap ``[rows, cols]`` values computed elsewhere (gradient saliency, occlusion) as a :class:`GridMap`."""
    grid = require_grid(insp)
    values = np.asarray(values, dtype=np.float64)
    if values.shape != tuple(grid):
        raise InputError(f"{name}: values of shape {values.shape} for a {grid[0]}x{grid[1]} patch grid")
    return GridMap(values, {}, name, label, query, _image_size(insp))


def image_for_display(insp: Inspection) -> np.ndarray:
    """The image the model saw, ``[height, width, 3]`` floats in 0..1, for drawing.

    The model's processor's normalisation is undone when the model is attached (``insp.loaded``);
    otherwise (a loaded inspection) the pixel values are rescaled to 0..1 together (one scale for all
    channels, so colours keep their order).
    """
    if insp.pixel_values is None:
        raise NotApplicableError(f"{insp.model_name}: this inspection keeps no image")
    x = insp.pixel_values.double().numpy()
    processor = getattr(insp.loaded, "tokenizer", None)
    mean, std = getattr(processor, "image_mean", None), getattr(processor, "image_std", None)
    if mean is not None and std is not None and getattr(processor, "do_normalize", True) and len(mean) == x.shape[0]:
        x = x * np.asarray(std)[:, None, None] + np.asarray(mean)[:, None, None]
        x = np.clip(x / 255 if x.max() > 1.5 else x, 0, 1)  # a processor that does not rescale works in 0..255
    else:
        lo, hi = x.min(), x.max()
        x = (x - lo) / (hi - lo) if hi > lo else np.zeros_like(x)
    if x.shape[0] == 1:
        x = np.repeat(x, 3, 0)
    return x[:3].transpose(1, 2, 0)
