"""The layered attention graph of attention flow, as a networkx DiGraph.

Abnar & Zuidema 2020 ("Quantifying Attention Flow in Transformers", ACL) turn
a stack of attention maps into a flow network: one node per (layer, position),
with layer 0 the input embeddings and layer ``L`` the output of the last layer,
and an edge from every position of layer ``l`` to every position of layer
``l - 1`` it reads from, with capacity ``A'_l[i, j]``, the layer's head-fused
attention mixed with the identity for the residual connection (see
:func:`headscope.aggregate.rollout.fuse_layers`). Attention flow from output
``i`` to input ``j`` is the maximum flow from node ``(L, i)`` down to node
``(0, j)``.

Example
-------
>>> import numpy as np
>>> from headscope.aggregate import attention_graph
>>> att = np.full((2, 1, 2, 2), 0.5)               # 2 layers, 1 head, 2 tokens
>>> G = attention_graph(att)
>>> G.number_of_nodes(), G.number_of_edges()
(6, 8)
>>> G.edges[(2, 0), (1, 1)]["capacity"]     # 0.5 * 0.5 + 0.5 * 0 (residual)
0.25
>>> import networkx as nx
>>> round(nx.maximum_flow_value(G, (2, 0), (0, 1)), 6)
0.5
"""

from __future__ import annotations

from typing import Any

import networkx as nx

from .rollout import fuse_layers

__all__ = ["attention_graph"]


def attention_graph(
    att: Any,
    residual: float = 0.5,
    head_fusion: str = "mean",
    discard_ratio: float = 0.0,
) -> nx.DiGraph:
    """Build the attention-flow graph of Abnar & Zuidema 2020.

    Parameters
    ----------
    att : array ``[layers, heads, n, n]`` (numpy or torch)
        Self-attention probabilities, layer 0 first.
    residual, head_fusion, discard_ratio
        As in :func:`headscope.aggregate.rollout`.

    Returns
    -------
    networkx.DiGraph
        Nodes ``(layer, position)`` for ``layer`` in ``0..L`` (0 = input
        embeddings, ``L`` = last layer output), with node attributes ``layer``
        and ``position``. An edge ``(l, i) -> (l - 1, j)`` with attribute
        ``capacity = A'_l[i, j]`` (a Python float) for every non-zero entry;
        zero capacities are left out. Graph attributes ``layers``, ``n``,
        ``residual`` and ``head_fusion`` record how it was built.

    Flow runs from an output node ``(L, i)`` down to an input node ``(0, j)``:
    ``networkx.maximum_flow_value(G, (L, i), (0, j), capacity="capacity")`` is
    the (unnormalised) attention flow that :func:`headscope.aggregate.flow`
    computes much faster.
    """
    layers = fuse_layers(att, residual, head_fusion, discard_ratio)
    n_layers, n, _ = layers.shape
    G = nx.DiGraph(layers=n_layers, n=n, residual=float(residual), head_fusion=head_fusion)
    for layer in range(n_layers + 1):
        G.add_nodes_from(((layer, p), {"layer": layer, "position": p}) for p in range(n))
    for layer in range(1, n_layers + 1):
        m = layers[layer - 1]
        G.add_edges_from(
            ((layer, i), (layer - 1, j), {"capacity": float(m[i, j])})
            for i in range(n)
            for j in range(n)
            if m[i, j] > 0
        )
    return G
