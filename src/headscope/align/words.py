"""From subword cross attention to word-level maps, and the decoder-step conventions.

Attention is computed between subword tokens; gold alignments link words. A word map pools the
subword map with the tokenizers' word mapping (a fast tokenizer's ``word_ids()``: one word index
per token, ``None`` for special tokens such as EOS, padding or language tags, which are left
out). Following common practice for attention-based aligners (e.g. Zenkel et al. 2019; Garg et
al. 2019, "Jointly Learning to Align and Translate with Transformer Models"), source subwords are
summed (the attention mass a target position puts on a word) and target subwords averaged (each
target word gets one distribution); ``max`` is available on either side.

Which decoder step's attention belongs to a target word is a convention (Chen et al. 2020,
"Accurate Word Alignment Induction from Neural Machine Translation", EMNLP):
:func:`select_rows` picks ``naive`` or ``shift`` rows before pooling.

Example
-------
>>> import numpy as np
>>> att = np.array([[0.2, 0.3, 0.5],      # 2 target subwords x 3 source subwords
...                 [0.6, 0.2, 0.2]])
>>> subword_to_word(att, src_word_ids=[0, 0, None], tgt_word_ids=[0, 0]).round(2).tolist()
[[0.65]]
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, Optional, TypeVar

import numpy as np
import torch

from headscope.align.options import CONVENTIONS, DEFAULT_CONVENTION, POOLINGS
from headscope.errors import InputError, ShapeError

__all__ = ["subword_to_word", "select_rows", "CONVENTIONS", "DEFAULT_CONVENTION", "POOLINGS"]

Array = TypeVar("Array", np.ndarray, torch.Tensor)
Pool = Literal["sum", "mean", "max"]
Convention = Literal["naive", "shift"]


def _groups(
    word_ids: Sequence[Optional[int]], n_words: int | None, side: str
) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Kept token positions, their word index, and the number of words."""
    keep, groups = [], []
    for pos, w in enumerate(word_ids):
        if w is None:
            continue
        if isinstance(w, bool) or not isinstance(w, (int, np.integer)) or w < 0:
            raise InputError(
                f"{side} word ids must be non-negative integers or None, got {w!r} at position {pos}"
            )
        keep.append(pos)
        groups.append(int(w))
    needed = max(groups) + 1 if groups else 0
    if n_words is None:
        n_words = needed
    elif n_words < needed:
        raise InputError(f"n_{side}_words={n_words} but the {side} word ids go up to {needed - 1}")
    return torch.tensor(keep, dtype=torch.long), torch.tensor(groups, dtype=torch.long), n_words


def _pool(x: torch.Tensor, keep: torch.Tensor, groups: torch.Tensor, n: int, how: str, dim: int) -> torch.Tensor:
    """Pool dimension ``dim`` (negative) of ``x`` from tokens to ``n`` words."""
    x = x.index_select(dim, keep)
    shape = list(x.shape)
    shape[dim] = n
    counts = torch.bincount(groups, minlength=n)
    bshape = [1] * x.ndim
    bshape[dim] = n
    if how == "max":
        ishape = [1] * x.ndim
        ishape[dim] = len(groups)
        index = groups.view(ishape).expand_as(x)
        out = x.new_full(shape, float("-inf")).scatter_reduce_(dim, index, x, reduce="amax")
        return out.masked_fill((counts == 0).view(bshape), 0.0)  # words without tokens: 0
    out = x.new_zeros(shape).index_add_(dim, groups, x)
    if how == "mean":
        out = out / counts.clamp(min=1).to(out.dtype).view(bshape)
    return out


def subword_to_word(
    att: Array,
    src_word_ids: Sequence[Optional[int]],
    tgt_word_ids: Sequence[Optional[int]],
    src_pool: Pool = "sum",
    tgt_pool: Pool = "mean",
    *,
    n_src_words: int | None = None,
    n_tgt_words: int | None = None,
) -> Array:
    """Pool subword attention ``[..., T_sub, S_sub]`` into a word map ``[..., T_words, S_words]``.

    ``src_word_ids`` / ``tgt_word_ids`` give each subword's word index (``None``: a special token,
    dropped). Source subwords are pooled first (``src_pool``: ``sum``, ``mean`` or ``max``), then
    target subwords (``tgt_pool``). Leading dimensions (layers, heads, ...) are kept, so one call
    pools every head of a sentence. The number of words is ``max(word id) + 1`` unless
    ``n_src_words`` / ``n_tgt_words`` say more; a word with no subword gets 0. Returns the input's
    type (numpy or torch; integer input becomes float).

    >>> import torch
    >>> att = torch.tensor([[0.1, 0.4, 0.5], [0.3, 0.3, 0.4], [0.9, 0.05, 0.05]], dtype=torch.float64)
    >>> subword_to_word(att, [0, 1, 1], [0, 0, None], src_pool="max").tolist()
    [[0.2, 0.45]]
    """
    for name, how in (("src_pool", src_pool), ("tgt_pool", tgt_pool)):
        if how not in POOLINGS:
            raise InputError(f"{name} must be one of {POOLINGS}, not {how!r}")
    is_numpy = isinstance(att, np.ndarray)
    if not is_numpy and not isinstance(att, torch.Tensor):
        raise InputError(f"attention must be a numpy array or torch tensor, not {type(att).__name__}")
    x = torch.from_numpy(np.ascontiguousarray(att)) if is_numpy else att
    if x.ndim < 2 or x.shape[-1] != len(src_word_ids) or x.shape[-2] != len(tgt_word_ids):
        raise ShapeError(
            f"attention of shape {tuple(x.shape)} does not match {len(tgt_word_ids)} target and "
            f"{len(src_word_ids)} source word ids: expected [..., {len(tgt_word_ids)}, "
            f"{len(src_word_ids)}]"
        )
    if not x.is_floating_point():
        x = x.float()
    s_keep, s_groups, n_s = _groups(src_word_ids, n_src_words, "src")
    t_keep, t_groups, n_t = _groups(tgt_word_ids, n_tgt_words, "tgt")
    dev = x.device
    x = _pool(x, s_keep.to(dev), s_groups.to(dev), n_s, src_pool, -1)
    x = _pool(x, t_keep.to(dev), t_groups.to(dev), n_t, tgt_pool, -2)
    return x.numpy() if is_numpy else x


def select_rows(att: Array, convention: Convention = DEFAULT_CONVENTION) -> Array:
    """Pick, for each target token, the decoder step whose cross attention stands for it.

    ``att`` is ``[..., T, S]`` with one row per decoder step of a teacher-forced target of
    ``T`` label tokens: row ``t`` has decoder *input* token ``t-1`` (the start token for
    ``t = 0``) and *outputs* label token ``t``. Returns ``[..., T, S]`` with row ``t`` for label
    token ``t``:

    - ``naive``: row ``t``, the step that outputs token ``t`` (``att`` itself).
    - ``shift``: row ``t+1``, the step where token ``t`` is the decoder input (Chen et al. 2020,
      "Accurate Word Alignment Induction from Neural Machine Translation"). The last real word
      is the input of the final step, the one that outputs EOS, so labels must end with EOS (as
      Hugging Face tokenizers produce with ``text_target``) for every word to have its row. The
      last label token (EOS) is input at no step; it keeps its own (naive) row, and as a special
      token (word id ``None``) it is dropped by :func:`subword_to_word` anyway.

    >>> import numpy as np
    >>> att = np.arange(6).reshape(3, 2)   # 3 steps: outputs "a", "b", EOS
    >>> select_rows(att, "shift").tolist()  # "a" -> step 1, "b" -> step 2, EOS -> step 2
    [[2, 3], [4, 5], [4, 5]]
    """
    if convention not in CONVENTIONS:
        raise InputError(f"convention must be one of {CONVENTIONS}, not {convention!r}")
    if att.ndim < 2 or att.shape[-2] == 0:
        raise ShapeError(f"attention of shape {tuple(att.shape)}: expected [..., T >= 1, S]")
    if convention == "naive":
        return att
    if isinstance(att, np.ndarray):
        return np.concatenate([att[..., 1:, :], att[..., -1:, :]], axis=-2)
    return torch.cat([att[..., 1:, :], att[..., -1:, :]], dim=-2)
