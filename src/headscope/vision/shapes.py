"""Synthetic shapes where the answer is known: one shape over textured clutter, with its mask.

The data of the shipped ``headscope/shapes-vit`` (``training/train_vit_shapes.py``) and of the
localisation study (``examples/vision_study.py``). Each image holds one filled shape — circle,
square, triangle, cross or ring, upright — at a random position, size and colour, drawn over a
dim smooth random colour field with thin lines and dots in random dim colours (clutter). The shape's
colour is random too but bright (every channel at least ``90``, one at ``255``), so the object always
stands out from the clutter. The class is the shape; the object mask (the shape's own pixels) says
where the evidence is.

Everything is numpy and seeded: ``shapes_batch(n, seed)`` returns the same images on every machine.

>>> batch = shapes_batch(4, seed=0)
>>> batch.images.shape, batch.images.dtype, batch.masks.shape, batch.labels.tolist()[:2]
((4, 48, 48, 3), dtype('uint8'), (4, 48, 48), [4, 3])
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SHAPES = ("circle", "square", "triangle", "cross", "ring")
SIZE = 48
# Seeds of the shipped model's data: training draws its pool from TRAIN_SEED; validation and the
# held-out test set (the accuracy in its headscope.json, the study's images) never overlap it.
TRAIN_SEED, VALIDATION_SEED, TEST_SEED = 1, 10_000_019, 20_000_003
RADIUS = (8.0, 14.0)     # a shape's radius in pixels (circumradius; a square's half-side is 0.8 of it)
LINES, DOTS = (2, 5), (1, 4)  # how many clutter lines and dots (low inclusive, high exclusive)
DIM = 0.45               # the clutter's colours are scaled by this (into 0-115)


@dataclass(frozen=True)
class ShapesBatch:
    """``images`` uint8 ``[n, H, W, 3]``, ``masks`` bool ``[n, H, W]`` (the shape's pixels),
    ``labels`` int ``[n]`` (index into :data:`SHAPES`), ``boxes`` ``[n, 4]`` (top, left, bottom, right;
    inclusive pixel bounds of the mask)."""

    images: np.ndarray
    masks: np.ndarray
    labels: np.ndarray
    boxes: np.ndarray

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def names(self) -> list[str]:
        """The class name of each image."""
        return [SHAPES[i] for i in self.labels]


def shapes_batch(n: int, seed: int, size: int = SIZE) -> ShapesBatch:
    """``n`` images of :data:`SHAPES` (classes balanced in expectation), reproducible from ``seed``."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) + 0.5
    images = np.empty((n, size, size, 3), np.uint8)
    masks = np.empty((n, size, size), bool)
    labels = rng.integers(0, len(SHAPES), n)
    boxes = np.empty((n, 4), np.int64)
    for i in range(n):
        canvas = _background(rng, size, xx, yy)
        mask = _shape(rng, int(labels[i]), size, xx, yy)
        colour = _bright(rng)
        canvas[mask] = colour + rng.normal(0, 6, (int(mask.sum()), 3))
        images[i] = np.clip(canvas, 0, 255).astype(np.uint8)
        masks[i] = mask
        rows, cols = np.nonzero(mask)
        boxes[i] = (rows.min(), cols.min(), rows.max(), cols.max())
    return ShapesBatch(images, masks, labels, boxes)


def _background(rng: np.random.Generator, size: int, xx: np.ndarray, yy: np.ndarray) -> np.ndarray:
    """A dim smooth random colour field, pixel noise, thin lines and dots (every colour scaled by :data:`DIM`)."""
    cells = int(rng.integers(2, 6))
    coarse = rng.uniform(0, 255, (cells, cells, 3)).astype(np.float32)
    coarse = 0.5 * coarse + 0.5 * coarse.mean((0, 1))  # keep the field from spanning every colour
    pos = (np.arange(size, dtype=np.float32) + 0.5) / size * cells - 0.5
    lo = np.clip(np.floor(pos).astype(int), 0, cells - 1)
    hi = np.clip(lo + 1, 0, cells - 1)
    w = np.clip(pos - lo, 0, 1)[:, None]
    rows = coarse[lo] * (1 - w[:, :, None]) + coarse[hi] * w[:, :, None]            # [size, cells, 3]
    canvas = rows[:, lo] * (1 - w.T[:, :, None]) + rows[:, hi] * w.T[:, :, None]     # [size, size, 3]
    canvas = canvas + rng.normal(0, 10, canvas.shape)
    for _ in range(int(rng.integers(*LINES))):  # thin line segments
        p, q = rng.uniform(0, size, 2), rng.uniform(0, size, 2)
        d = _segment_distance(xx, yy, p, q)
        canvas[d < 0.6] = rng.uniform(0, 255, 3)
    for _ in range(int(rng.integers(*DOTS))):  # small dots
        c, r = rng.uniform(0, size, 2), rng.uniform(0.8, 1.8)
        canvas[(xx - c[0]) ** 2 + (yy - c[1]) ** 2 <= r * r] = rng.uniform(0, 255, 3)
    return canvas * DIM


def _segment_distance(xx: np.ndarray, yy: np.ndarray, p: np.ndarray, q: np.ndarray) -> np.ndarray:
    d = q - p
    t = np.clip(((xx - p[0]) * d[0] + (yy - p[1]) * d[1]) / max(float(d @ d), 1e-6), 0, 1)
    return np.hypot(xx - p[0] - t * d[0], yy - p[1] - t * d[1])


def _shape(rng: np.random.Generator, label: int, size: int, xx: np.ndarray, yy: np.ndarray) -> np.ndarray:
    """The boolean mask of one upright shape of class ``label`` (a triangle points up; a square and a
    cross are axis-aligned): the same under a left-right mirror, the training's only augmentation."""
    r = rng.uniform(*RADIUS)
    cx, cy = rng.uniform(r + 1, size - r - 1, 2)
    theta = -np.pi / 2
    x, y = xx - cx, yy - cy
    u = x * np.cos(theta) + y * np.sin(theta)
    v = -x * np.sin(theta) + y * np.cos(theta)
    name = SHAPES[label]
    if name == "circle":
        return x * x + y * y <= r * r
    if name == "ring":
        width = rng.uniform(2.2, max(2.6, 0.4 * r))
        d2 = x * x + y * y
        return (d2 <= r * r) & (d2 >= (r - width) ** 2)
    if name == "square":
        s = 0.8 * r
        return (np.abs(u) <= s) & (np.abs(v) <= s)
    if name == "cross":
        t = max(1.6, 0.3 * r)
        return ((np.abs(u) <= t) & (np.abs(v) <= r)) | ((np.abs(v) <= t) & (np.abs(u) <= r))
    if name == "triangle":  # equilateral, circumradius r
        inside = np.ones_like(u, dtype=bool)
        for k in range(3):
            a = theta + 2 * np.pi * k / 3 + np.pi  # outward normal of the side opposite vertex k
            inside &= x * np.cos(a) + y * np.sin(a) <= 0.5 * r
        return inside
    raise ValueError(f"unknown shape {label}")


def _bright(rng: np.random.Generator) -> np.ndarray:
    """A random bright colour: every channel at least 90, one at 255 (the clutter stays below about 115)."""
    colour = rng.uniform(90, 255, 3)
    colour[rng.integers(0, 3)] = 255
    return colour
