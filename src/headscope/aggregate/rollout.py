"""Attention rollout: how much each output position draws on each input position.

Attention rollout (Abnar & Zuidema 2020, "Quantifying Attention Flow in
Transformers", ACL) follows the attention weights down through every layer.
Each layer's heads are fused into one map ``A`` (mean by default), the residual
connection is modelled by mixing in the identity,

    A' = (1 - residual) * A + residual * I        (rows renormalised)

and the per-layer maps are multiplied, top layer first::

    rollout = A'_L @ A'_{L-1} @ ... @ A'_1

Row ``i`` of the result says how much output position ``i`` (after the last
layer) draws on input position ``j`` (the embeddings); every row sums to 1.
``residual=0.5`` is the paper's ``0.5 * A + 0.5 * I``.

:func:`encoder_decoder_rollout` extends this to encoder-decoder models with the
rules of Chefer, Gur & Wolf 2021 ("Generic Attention-model Explainability for
Interpreting Bi-Modal and Encoder-Decoder Transformers", ICCV), applied to raw
attention instead of gradient-weighted attention.

All functions are pure: plain ``numpy`` or ``torch`` arrays in, ``numpy``
float64 out.

Example
-------
>>> import numpy as np
>>> from headscope.aggregate import rollout
>>> att = np.full((2, 1, 2, 2), 0.5)          # 2 layers, 1 head, 2 tokens, uniform
>>> rollout(att)                              # A' = [[.75, .25], [.25, .75]], squared
array([[0.625, 0.375],
       [0.375, 0.625]])
>>> rollout(att, residual=1.0)                # all residual: nothing mixes
array([[1., 0.],
       [0., 1.]])
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import InputError, ShapeError

__all__ = ["rollout", "encoder_decoder_rollout", "fuse_layers", "HEAD_FUSIONS"]

HEAD_FUSIONS = ("mean", "max", "min")


# ----------------------------------------------------------------------------
# validation and per-layer fusion (shared with graph.py and flow.py)
# ----------------------------------------------------------------------------


def _as_array(att: Any, name: str = "att") -> np.ndarray:
    """Return ``att`` as a float64 numpy array (torch tensors are detached/moved to CPU)."""
    if hasattr(att, "detach") and hasattr(att, "cpu"):  # torch.Tensor without importing torch
        att = att.detach().cpu()
        if hasattr(att, "double"):
            att = att.double()
        att = att.numpy()
    try:
        arr = np.asarray(att, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ShapeError(
            f"{name} must be a numeric array [layers, heads, n, n] (numpy or torch); "
            f"could not convert a {type(att).__name__}: {exc}. Pass the stacked attention "
            "weights, e.g. np.stack(per_layer_maps)."
        ) from None
    return arr


def _check_4d(arr: np.ndarray, name: str, square: bool = True) -> None:
    if arr.ndim != 4:
        hint = ""
        if arr.ndim == 5:
            hint = f" It has 5 dims: if the first is a batch, select one example ({name}[0])."
        elif arr.ndim == 3:
            hint = (
                f" It has 3 dims: if heads are already fused, add a head axis "
                f"({name}[:, None]); if it is a single layer, add a layer axis ({name}[None])."
            )
        raise ShapeError(
            f"{name} must have 4 dims [layers, heads, n_out, n_in], got shape "
            f"{tuple(arr.shape)}.{hint}"
        )
    if min(arr.shape) == 0:
        raise ShapeError(
            f"{name} has an empty axis (shape {tuple(arr.shape)}); it needs at least one "
            "layer, one head and one token."
        )
    if square and arr.shape[-1] != arr.shape[-2]:
        raise ShapeError(
            f"{name} must hold square self-attention maps [layers, heads, n, n], got "
            f"{arr.shape[-2]} x {arr.shape[-1]} maps. For cross-attention use "
            "encoder_decoder_rollout(encoder, decoder, cross)."
        )
    if not np.all(np.isfinite(arr)):
        bad = "NaN" if np.isnan(arr).any() else "infinite"
        raise ShapeError(
            f"{name} contains {bad} values; attention weights must be finite. Check the "
            "capture (fp16 overflow, fully masked rows) or replace them, e.g. np.nan_to_num."
        )
    if (arr < 0).any():
        raise ShapeError(
            f"{name} contains negative weights (min {arr.min():.3g}); attention maps must be "
            "non-negative. Pass softmax probabilities, not scores or logits."
        )


def _fraction(value: Any, name: str, meaning: str, *, below_one: bool = False) -> float:
    """``value`` as a float in [0, 1] (in [0, 1) when ``below_one``), else :class:`InputError`."""
    interval = "[0, 1)" if below_one else "[0, 1]"
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{name} must be a number in {interval}, got {value!r}.") from None
    if not (0.0 <= x < 1.0 if below_one else 0.0 <= x <= 1.0):  # NaN fails both
        raise InputError(f"{name} must be in {interval} ({meaning}), got {value!r}.")
    return x


def _check_params(residual: Any, head_fusion: Any, discard_ratio: Any) -> float:
    if head_fusion not in HEAD_FUSIONS:
        raise InputError(
            f"head_fusion must be one of {', '.join(map(repr, HEAD_FUSIONS))}, got "
            f"{head_fusion!r}."
        )
    r = _fraction(residual, "residual", "the identity's share of each row; the paper uses 0.5")
    _fraction(discard_ratio, "discard_ratio", "the fraction of each row's weights to drop", below_one=True)
    return r


def _row_normalise(m: np.ndarray) -> np.ndarray:
    """Divide each row by its sum; all-zero rows stay zero."""
    s = m.sum(axis=-1, keepdims=True)
    return np.divide(m, s, out=np.zeros_like(m), where=s > 0)


def _fuse(arr: np.ndarray, residual: float, head_fusion: str, discard_ratio: float) -> np.ndarray:
    """``[layers, heads, a, b]`` -> fused, discarded, row-normalised ``[layers, a, b]`` (no residual)."""
    if head_fusion == "mean":
        a = arr.mean(axis=1)
    elif head_fusion == "max":
        a = arr.max(axis=1)
    else:
        a = arr.min(axis=1)
    if discard_ratio > 0:
        a = _discard(a, discard_ratio)
    return _row_normalise(a)


def _discard(a: np.ndarray, discard_ratio: float) -> np.ndarray:
    """Zero the ``int(discard_ratio * n_in)`` smallest weights of each row, never the diagonal."""
    a = a.copy()
    n_out, n_in = a.shape[-2:]
    k = int(discard_ratio * n_in)
    if k <= 0:
        return a
    keyed = a.copy()
    if n_out == n_in:  # self-attention: the token's own weight is never dropped
        idx = np.arange(n_in)
        keyed[..., idx, idx] = np.inf
        k = min(k, n_in - 1)
    order = np.argsort(keyed, axis=-1, kind="stable")[..., :k]
    np.put_along_axis(a, order, 0.0, axis=-1)
    return a


def fuse_layers(
    att: Any,
    residual: float = 0.5,
    head_fusion: str = "mean",
    discard_ratio: float = 0.0,
) -> np.ndarray:
    """The per-layer maps ``A'`` of rollout and flow, ``[layers, n, n]`` float64.

    Steps, per layer: fuse heads (``mean``/``max``/``min``); optionally zero the
    ``int(discard_ratio * n)`` smallest weights of each row (never the diagonal);
    renormalise rows; mix with the identity, ``A' = (1 - residual) * A + residual * I``.
    Rows of ``A'`` sum to 1. A row that is all zero after fusion/discard becomes the
    identity row (the token keeps its own state).

    >>> import numpy as np
    >>> fuse_layers(np.array([[[[0.0, 1.0], [1.0, 0.0]]]]))
    array([[[0.5, 0.5],
            [0.5, 0.5]]])
    """
    r = _check_params(residual, head_fusion, discard_ratio)
    arr = _as_array(att)
    _check_4d(arr, "att")
    a = _fuse(arr, r, head_fusion, float(discard_ratio))
    n = a.shape[-1]
    eye = np.eye(n)
    out = (1.0 - r) * a + r * eye
    s = out.sum(axis=-1, keepdims=True)
    zero = s[..., 0] <= 0
    if zero.any():
        li, ri = np.nonzero(zero)
        out[li, ri, ri] = 1.0
        s = out.sum(axis=-1, keepdims=True)
    return out / s


# ----------------------------------------------------------------------------
# rollout
# ----------------------------------------------------------------------------


def rollout(
    att: Any,
    residual: float = 0.5,
    head_fusion: str = "mean",
    discard_ratio: float = 0.0,
) -> np.ndarray:
    """Attention rollout (Abnar & Zuidema 2020): ``A'_L @ ... @ A'_1``.

    Parameters
    ----------
    att : array ``[layers, heads, n, n]`` (numpy or torch)
        Self-attention probabilities, layer 0 first (closest to the embeddings);
        ``att[l, h, i, j]`` is how much query ``i`` attends to key ``j``.
    residual : float in [0, 1]
        Weight of the identity in each layer's map, modelling the residual
        connection. ``0.5`` is the paper's ``0.5 A + 0.5 I``; ``0`` is raw
        attention; ``1`` leaves every token on itself.
    head_fusion : ``"mean"`` (paper), ``"max"`` or ``"min"``
        How the heads of one layer become one map.
    discard_ratio : float in [0, 1)
        As in the widely used ViT rollout code: drop (zero) the smallest
        ``int(discard_ratio * n)`` weights of each fused row before adding the
        residual. Unlike that code the drop is per row, the diagonal (a token's
        weight on itself) is never dropped, and rows (not columns) are
        renormalised afterwards, so every row still sums to 1.

    Returns
    -------
    numpy.ndarray ``[n, n]`` float64
        Row ``i``: how much output position ``i`` draws on input position ``j``.
        Rows are non-negative and sum to 1.

    Raises
    ------
    ShapeError
        ``att`` not 4-D, maps not square, NaN/inf or negative weights.
    InputError
        Unknown ``head_fusion``, ``residual`` outside [0, 1], ``discard_ratio``
        outside [0, 1).

    Examples
    --------
    >>> import numpy as np
    >>> att = np.array([[[[1.0, 0.0], [1.0, 0.0]]]])   # 1 layer: both tokens read token 0
    >>> rollout(att)
    array([[1. , 0. ],
           [0.5, 0.5]])
    """
    layers = fuse_layers(att, residual, head_fusion, discard_ratio)
    out = layers[0].copy()
    for m in layers[1:]:
        out = m @ out
    return out


# ----------------------------------------------------------------------------
# encoder-decoder rollout (Chefer, Gur & Wolf 2021, raw-attention variant)
# ----------------------------------------------------------------------------


def _handle_residual(r: np.ndarray) -> np.ndarray:
    """Chefer et al. 2021, eqs. 8-9: ``R_bar = rownorm(R - I) + I`` (zero rows stay zero)."""
    eye = np.eye(r.shape[0])
    return _row_normalise(r - eye) + eye


def encoder_decoder_rollout(
    encoder: Any,
    decoder: Any,
    cross: Any,
    residual: float = 0.5,
    head_fusion: str = "mean",
    discard_ratio: float = 0.0,
) -> np.ndarray:
    """Target-over-source relevance for an encoder-decoder model, ``[T, S]``.

    Follows the relevance-update rules of Chefer, Gur & Wolf 2021, "Generic
    Attention-model Explainability for Interpreting Bi-Modal and Encoder-Decoder
    Transformers" (ICCV 2021, eqs. 6-11), with the gradient-weighted head
    average ``E_h[(grad * A)^+]`` replaced by the fused raw attention ``Ā`` (no
    gradients: heads fused by ``head_fusion``, optional ``discard_ratio``, rows
    normalised, as in :func:`rollout`). With ``w = (1 - residual) / residual``
    (``w = 1`` at the default ``residual=0.5``, which reproduces the paper's rules
    exactly):

    1. Encoder, ``R_ss = I`` (S x S); for each encoder layer
       ``R_ss += w * Ā_ss @ R_ss``.
    2. Decoder, ``R_tt = I`` (T x T), ``R_ts = 0`` (T x S); for each decoder layer
       ``l``, first its self-attention ``R_tt += w * Ā_tt @ R_tt``,
       ``R_ts += w * Ā_tt @ R_ts``; then its cross-attention
       ``R_ts += w * R̄_ttᵀ @ Ā_ts @ R̄_ss`` where ``R̄ = rownorm(R - I) + I``
       (eqs. 8-9; a zero row of ``R - I`` stays zero).
       The rule's other update, ``R_tt += Ā_ts @ R_st``, vanishes because the
       encoder never attends to the decoder (``R_st = 0``).
    3. Rows of ``R_ts`` are normalised to sum to 1 (a row with no relevance at all,
       e.g. from all-zero cross attention, stays zero).

    For example, with identity self-attention everywhere ``R̄_ss = R̄_tt = 2 I``
    and each decoder self-attention layer multiplies ``R_ts`` by ``1 + w``, so the
    result is ``rownorm(sum_l (1 + w) ** (L_dec - 1 - l) * Ā_ts[l])`` (layers
    counted from 0): with one decoder layer, just the row-normalised fused cross
    attention.

    Parameters
    ----------
    encoder : ``[L_enc, H, S, S]`` encoder self-attention.
    decoder : ``[L_dec, H, T, T]`` decoder self-attention (causal or not).
    cross : ``[L_dec, H, T, S]`` decoder-over-encoder cross-attention.
    residual : float in (0, 1]
        Weight of the identity (residual path); ``1`` means no mixing, and then
        no relevance reaches the source (the result is all zeros).
    head_fusion, discard_ratio : as in :func:`rollout` (for the non-square cross
        attention no weight is protected from the discard).

    Returns
    -------
    numpy.ndarray ``[T, S]`` float64, rows summing to 1.

    Examples
    --------
    >>> import numpy as np
    >>> enc = np.ones((1, 1, 2, 2)) / 2
    >>> dec = np.ones((1, 1, 1, 1))
    >>> cross = np.array([[[[0.75, 0.25]]]])
    >>> encoder_decoder_rollout(enc, dec, cross)   # source mixing pulls towards uniform
    array([[0.625, 0.375]])
    """
    r = _check_params(residual, head_fusion, discard_ratio)
    if r == 0.0:
        raise InputError(
            "encoder_decoder_rollout needs residual in (0, 1]: the rule adds "
            "w = (1 - residual) / residual times the attention to the identity. "
            "Use a small positive residual (e.g. 1e-3) for almost raw attention."
        )
    w = (1.0 - r) / r
    d = float(discard_ratio)
    enc = _as_array(encoder, "encoder")
    dec = _as_array(decoder, "decoder")
    crs = _as_array(cross, "cross")
    _check_4d(enc, "encoder")
    _check_4d(dec, "decoder")
    _check_4d(crs, "cross", square=False)
    S, T = enc.shape[-1], dec.shape[-1]
    if crs.shape[-2:] != (T, S):
        raise ShapeError(
            f"cross must be [layers, heads, T, S] = [.., .., {T}, {S}] to match decoder "
            f"(T={T}) and encoder (S={S}), got maps of {crs.shape[-2]} x {crs.shape[-1]}. "
            "Check the order of the arguments: (encoder, decoder, cross)."
        )
    if crs.shape[0] != dec.shape[0]:
        raise ShapeError(
            f"decoder has {dec.shape[0]} layers but cross has {crs.shape[0]}; every "
            "decoder layer needs its self- and cross-attention."
        )
    a_ss = _fuse(enc, r, head_fusion, d)
    a_tt = _fuse(dec, r, head_fusion, d)
    a_ts = _fuse(crs, r, head_fusion, d)

    r_ss = np.eye(S)
    for a in a_ss:
        r_ss = r_ss + w * (a @ r_ss)
    rbar_ss = _handle_residual(r_ss)

    r_tt = np.eye(T)
    r_ts = np.zeros((T, S))
    for a_self, a_cross in zip(a_tt, a_ts):
        r_tt, r_ts = r_tt + w * (a_self @ r_tt), r_ts + w * (a_self @ r_ts)
        r_ts = r_ts + w * (_handle_residual(r_tt).T @ a_cross @ rbar_ss)
    return _row_normalise(r_ts)
