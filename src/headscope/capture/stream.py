"""Where each layer's maps go as the forward runs: one preallocated tensor, reductions, or disk.

A capture used to keep every layer's probabilities, stack them into a second copy and cut a
third and fourth per example (about 5x the kept size at the peak). :class:`Keeper` writes each
layer's probabilities into one ``[batch, layers, heads, query, key]`` tensor allocated when the
kind's first layer arrives (the layer's own tensor is then freed by the model), so the peak is the
kept maps plus the one layer the model is computing. With :class:`~headscope.capture.reductions.Reductions`
it keeps only what a reading needs; with ``stream_to`` it writes each layer to a safetensors shard
in a staging folder renamed into place when the capture ends (:mod:`headscope.storage`), so a
killed capture leaves no half-written folder.

Shards: ``<kind>.<layer>.safetensors`` holding ``maps`` ``[batch, heads, query, key]``, and
``index.json`` listing them; :func:`load_streamed` reads them back.

>>> import tempfile, pathlib
>>> out = pathlib.Path(tempfile.mkdtemp()) / "maps"
>>> keeper = Keeper({"encoder": 2}, stream_to=out)
>>> for layer in range(2):
...     _ = keeper.keep("encoder", layer, torch.full((1, 3, 4, 4), 0.25))
>>> keeper.finish()
>>> load_streamed(out)["encoder"].shape
torch.Size([1, 2, 3, 4, 4])
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from .. import storage
from ..errors import InputError
from ..readings import KINDS
from .reductions import Reductions, reduce_layer, stack_reductions

STREAM_FORMAT = 1
_INDEX = "index.json"
BLOCK_ROWS = 512
"""Query rows per block when a long input's layers are reduced or streamed block by block: inputs
longer than this never hold a whole layer's map (see :func:`~headscope.capture.interface.attention_in_blocks`)."""


class Keeper:
    """Keeps one capture's maps: into a preallocated tensor per kind, as reductions, or on disk.

    Args:
        expected: ``{kind: number of layers the capture will keep}``; a kind whose layers arrive
            in other numbers or shapes (pooled, windowed layers) is kept as a list of layers instead.
        dtype / device: how to keep maps in memory (``None``: as the model gives them).
        reductions: compute these from each layer (see :mod:`headscope.capture.reductions`); the
            maps themselves are then kept only when ``reductions.maps`` is true.
        stream_to: write the maps to this folder as safetensors shards instead of keeping them.
    """

    def __init__(self, expected: dict[str, int], dtype: torch.dtype | None = None,
                 device: str | torch.device | None = "cpu", reductions: Reductions | None = None,
                 stream_to: str | os.PathLike | None = None) -> None:
        self.expected = {k: n for k, n in expected.items() if n > 0}
        self.dtype, self.device = dtype, device
        self.reductions = reductions
        self.keep_maps = stream_to is None and (reductions is None or reductions.maps)
        self.buffers: dict[str, torch.Tensor] = {}
        self.filled: dict[str, int] = {}
        self.reduced: dict[str, list[dict[str, torch.Tensor]]] = {}
        self.reduced_layers: dict[str, list[int]] = {}
        self.stream_to = None if stream_to is None else Path(stream_to)
        self.shards: list[dict[str, Any]] = []
        self._staging: Path | None = None
        self._stack: contextlib.ExitStack | None = None
        self._blocks: dict[tuple[str, int], list[dict[str, Any]]] = {}
        if self.stream_to is not None:
            storage.check_destination(self.stream_to, marker=_INDEX, what="streamed maps folder")
            self._stack = contextlib.ExitStack()
            self._staging = self._stack.enter_context(storage.staging_folder(self.stream_to))

    def keep(self, kind: str, layer: int, probs: torch.Tensor) -> torch.Tensor | None:
        """Take one layer's probabilities ``[batch, heads, query, key]``; returns what the recording
        keeps in memory for it (a view of the kind's tensor, the converted tensor, or ``None``)."""
        if self.reductions is not None:
            self.reduced.setdefault(kind, []).append(reduce_layer(probs, self.reductions, kind))
            self.reduced_layers.setdefault(kind, []).append(layer)
        if self._staging is not None:
            name = f"{kind}.{layer}.safetensors"
            kept = probs.detach().to(self.dtype or probs.dtype).to("cpu").contiguous()
            write_shard(self._staging / name, kept)
            self.shards.append({"kind": kind, "layer": layer, "file": name, "shape": list(kept.shape)})
            return None
        if not self.keep_maps:
            return None
        return self._into_buffer(kind, probs)

    def block_rows(self, rows: int) -> int | None:
        """Query rows per block for a layer of ``rows`` query rows; ``None``: take the layer whole
        (maps kept in memory, or an input no longer than :data:`BLOCK_ROWS`)."""
        return BLOCK_ROWS if not self.keep_maps and rows > BLOCK_ROWS else None

    def keep_block(self, kind: str, layer: int, start: int, rows: int, block: torch.Tensor) -> None:
        """Take query rows ``start ..`` of one layer's probabilities (``[batch, heads, block, key]``) of
        ``rows`` rows in all; a layer's blocks arrive in order."""
        stop = start + block.shape[-2]
        if self.reductions is not None:
            spec = self.reductions
            found = reduce_layer(block, Reductions(stats=spec.stats, topk=spec.topk), kind)
            wanted = spec.rows_for(kind)
            if wanted:
                positions = [r + rows if r < 0 else r for r in wanted]
                if any(not 0 <= p < rows for p in positions):
                    reduce_layer(block.new_zeros(1, 1, rows, 1), spec, kind)  # raises, naming the row
                found["rows"] = {i: block[..., p - start, :].float() for i, p in enumerate(positions) if start <= p < stop}
                found["rows.index"] = torch.tensor(positions, dtype=torch.long)
            self._blocks.setdefault((kind, layer), []).append(found)
            if stop == rows:
                self._join(kind, layer, self._blocks.pop((kind, layer)))
        if self._staging is not None:
            name = f"{kind}.{layer}.{start}.safetensors"
            kept = block.to(self.dtype or block.dtype).to("cpu").contiguous()
            write_shard(self._staging / name, kept)
            self.shards.append({"kind": kind, "layer": layer, "file": name, "shape": list(kept.shape),
                                "rows": [start, stop]})

    def _join(self, kind: str, layer: int, blocks: list[dict[str, Any]]) -> None:
        """One layer's reductions from its blocks' (query rows are the last axis of the statistics)."""
        out: dict[str, torch.Tensor] = {}
        for name in blocks[0]:
            if name == "rows":
                parts = {i: t for b in blocks for i, t in b["rows"].items()}
                out["rows"] = torch.stack([parts[i] for i in sorted(parts)], dim=-2)
            elif name == "rows.index":
                out[name] = blocks[0][name]
            elif name == "links":  # counts over query rows: the blocks' counts add up
                out[name] = torch.stack([b[name] for b in blocks]).sum(0)
            else:
                out[name] = torch.cat([b[name] for b in blocks], dim=-1 if name in ("entropy", "sink", "max") else -2)
        self.reduced.setdefault(kind, []).append(out)
        self.reduced_layers.setdefault(kind, []).append(layer)

    def _into_buffer(self, kind: str, probs: torch.Tensor) -> torch.Tensor:
        n = self.filled.get(kind, 0)
        buffer = self.buffers.get(kind)
        if buffer is None and n == 0 and kind in self.expected:
            device = probs.device if self.device is None else self.device
            buffer = probs.new_empty((probs.shape[0], self.expected[kind], *probs.shape[1:]),
                                     dtype=self.dtype or probs.dtype, device=device)
            self.buffers[kind] = buffer
        if buffer is not None and n < buffer.shape[1] and buffer.shape[2:] == probs.shape[1:] \
                and buffer.shape[0] == probs.shape[0]:
            slot = buffer[:, n]
            slot.copy_(probs)
            self.filled[kind] = n + 1
            return slot
        self.filled[kind] = n + 1
        kept = probs.to(self.dtype) if self.dtype is not None else probs
        return kept.to(self.device) if self.device is not None else kept

    def stacked(self, kind: str, kept: list[torch.Tensor]) -> torch.Tensor | None:
        """The kind's maps as the one preallocated tensor when every kept layer is its slot in
        order (no copy), else ``None``."""
        buffer = self.buffers.get(kind)
        if buffer is None or not kept or len(kept) > buffer.shape[1]:
            return None
        for i, t in enumerate(kept):
            if t.data_ptr() != buffer[:, i].data_ptr() or t.shape != buffer[:, i].shape:
                return None
        return buffer if len(kept) == buffer.shape[1] else buffer[:, :len(kept)]

    def reductions_of(self) -> dict[str, dict[str, torch.Tensor]]:
        """``{kind: {name: [batch, layers, heads, ...]}}`` of the reductions computed."""
        return {kind: stack_reductions(layers) for kind, layers in self.reduced.items()}

    def finish(self) -> None:
        """Write the index and put the streamed folder in place (nothing without ``stream_to``)."""
        if self._staging is None or self._stack is None:
            return
        with self._stack:
            index = {"format": STREAM_FORMAT, "shards": self.shards}
            (self._staging / _INDEX).write_text(json.dumps(index, indent=1), encoding="utf-8")
            storage.replace_folder(self._staging, self.stream_to)
        self._staging = self._stack = None

    def abandon(self) -> None:
        """Remove the staging folder of a capture that failed (the destination is left as it was)."""
        if self._stack is not None:
            self._stack.close()
        self._staging = self._stack = None


_DTYPES = {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16", torch.float64: "F64"}


def write_shard(path: Path, maps: torch.Tensor) -> None:
    """Write ``maps`` (contiguous, on the CPU) as a safetensors file holding one tensor ``maps``,
    straight from the tensor's memory (``safetensors.torch.save_file`` first copies it into bytes)."""
    if maps.dtype not in _DTYPES:
        raise InputError(f"cannot stream maps of dtype {maps.dtype}; keep them as {sorted(map(str, _DTYPES))}")
    size = maps.numel() * maps.element_size()
    header = json.dumps({"maps": {"dtype": _DTYPES[maps.dtype], "shape": list(maps.shape),
                                  "data_offsets": [0, size]}}).encode("utf-8")
    header += b" " * (-len(header) % 8)
    with open(path, "wb") as f:
        f.write(len(header).to_bytes(8, "little"))
        f.write(header)
        if size:
            f.write(memoryview(maps.view(torch.uint8).reshape(-1).numpy()))


def load_streamed(path: str | os.PathLike, kind: str | None = None,
                  layers: list[int] | None = None) -> dict[str, torch.Tensor]:
    """Read maps streamed by a capture: ``{kind: [batch, layers, heads, query, key]}``.

    ``kind`` / ``layers`` read only those shards (a 4,096-token layer of 12 heads is 768 MB in float32).
    Raises :class:`~headscope.errors.InputError` naming the folder when it is not a streamed capture.
    """
    folder = Path(path)
    index_file = folder / _INDEX
    if not index_file.is_file():
        raise InputError(f"{folder} holds no streamed maps (no {_INDEX}); pass the folder given as stream_to=")
    try:
        index = json.loads(index_file.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as err:
        raise InputError(f"{index_file}: unreadable ({err}); capture the maps again") from None
    storage.check_format(index.get("format") if isinstance(index, dict) else None, (STREAM_FORMAT,), index_file,
                         "streamed maps")
    out: dict[str, dict[int, list[torch.Tensor]]] = {}
    for shard in index["shards"]:  # a layer's shards: the whole layer, or its blocks of query rows in order
        if (kind is not None and shard["kind"] != kind) or (layers is not None and shard["layer"] not in layers):
            continue
        try:
            maps = load_file(str(folder / shard["file"]))["maps"]
        except (OSError, SafetensorError, KeyError) as err:
            raise InputError(f"{folder / shard['file']}: unreadable shard ({err}); capture the maps again") from None
        out.setdefault(shard["kind"], {}).setdefault(shard["layer"], []).append(maps)
    return {k: torch.stack([torch.cat(out[k][layer], dim=-2) for layer in out[k]], dim=1) for k in KINDS if k in out}


__all__ = ["STREAM_FORMAT", "Keeper", "load_streamed"]
