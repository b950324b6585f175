"""Static figures (matplotlib): word-level alignment matrices, bipartite link pictures, and
layer x head heatmaps of scores.

Every function returns a :class:`matplotlib.figure.Figure` built without ``pyplot`` (an Agg
canvas; the user's backend is left alone), so it works in scripts, tests and notebooks alike.

Honest pictures:

* **no smoothing**: matrices are drawn with ``pcolormesh`` in flat blocks, one block per cell
  (also in SVG, where a raster ``imshow`` would be smoothed by the viewer);
* **deterministic files**: :func:`save` writes PNG / SVG with no date or software stamp and a
  fixed SVG hash salt, so the same input gives the same bytes;
* **testable structure**: the artists carry ``gid`` labels (``"cell-mesh"``, ``"link"``,
  ``"gold-sure"``, ``"gold-possible"``, ``"predicted"``, ``"best-head"``, ``"bar"``), so tests
  count curves and cells instead of pixels.

Figures take plain arrays and labels; word-level maps of an inspection's readings come from
:func:`headscope.viz.words.word_map`. The reading packages (``align``, ``faithful``,
``fragment``) compute numbers and draw nothing: their figures are here (e.g. :func:`aer_heatmap`
for an alignment evaluation's AER per head).

Which claim a figure supports depends on what is drawn: a matrix with gold links overlaid and
an AER heatmap are **alignment** evidence; a bare matrix or bipartite picture is a
**plausibility** view; an ablation heatmap is **faithfulness** evidence.
"""

from .canvas import save, to_bytes, to_data_uri, to_svg
from .charts import bars, fragmentation_summary
from .counterfactual import swap_by_layer, swap_scatter
from .grids import ablation_heatmap, aer_heatmap, heatmap, kendall_matrix, layer_head_heatmap
from .links import alignment_matrix, bipartite
from .scale import scale_study

__all__ = [
    "ablation_heatmap",
    "aer_heatmap",
    "alignment_matrix",
    "bars",
    "bipartite",
    "fragmentation_summary",
    "heatmap",
    "kendall_matrix",
    "layer_head_heatmap",
    "save",
    "scale_study",
    "swap_by_layer",
    "swap_scatter",
    "to_bytes",
    "to_data_uri",
    "to_svg",
]
