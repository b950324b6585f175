"""Aggregates that turn many heads and layers back into one map.

* :func:`rollout` - attention rollout (Abnar & Zuidema 2020);
* :func:`flow` - attention flow, max-flow through the layered attention graph
  (Abnar & Zuidema 2020), exact and fast;
* :func:`attention_graph` - that layered graph as a ``networkx.DiGraph``;
* :func:`encoder_decoder_rollout` - target-over-source relevance for
  encoder-decoder models (Chefer, Gur & Wolf 2021 rules on raw attention);
* :func:`reading_map` - the map of any named reading of an Inspection (``"cross.rollout"``...).
"""

from __future__ import annotations

from .flow import flow
from .graph import attention_graph
from .maps import map_readings, reading_map
from .rollout import encoder_decoder_rollout, fuse_layers, rollout

__all__ = ["attention_graph", "encoder_decoder_rollout", "flow", "fuse_layers", "map_readings", "reading_map",
           "rollout"]
