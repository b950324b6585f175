"""The report's fragmentation section: how far the readings of one input disagree, drawn.

:func:`headscope.fragment.fragmentation` computes the numbers; this section prints its summary
(the three claims, one number each) and draws the Kendall τ matrix between the readings (each
labelled by its reading's label: ``cross.1.3``, ``layer 1 mean``, ``all-heads mean``,
``rollout``, or a token-importance method), the sink mass per head and the head behaviours.
"""

from __future__ import annotations

import numpy as np

from headscope import fragment
from headscope.inspection import Inspection

from ..figures import fragmentation_summary, kendall_matrix, layer_head_heatmap
from ..page import Section, escape

__all__ = ["fragmentation_section"]


def fragmentation_section(insp: Inspection, *, faithful: bool) -> Section:
    """The fragmentation section of ``insp``'s report.

    Parameters
    ----------
    insp
        The inspection.
    faithful
        Add gradient and leave-one-out importance as readings (only when the model is attached).

    Returns
    -------
    Section
        The summary, the τ matrix between readings, and per kind the sink mass and behaviour shares.
    """
    frag = fragment.fragmentation(insp, faithful=faithful and insp.loaded is not None)
    section = Section("fragmentation")
    section.add(f"<pre>{escape(frag.summary())}</pre>")
    section.figure(kendall_matrix(np.asarray(frag.tau, dtype=float), frag.reading_labels,
                                  title="Kendall τ between readings"),
                   "Rank agreement between readings of the input (heads, layer means, aggregates, and "
                   "gradient / leave-one-out importance when the model is attached).")
    for kind, kf in frag.kinds.items():
        section.figure(layer_head_heatmap(kf.sink_mass, layers=kf.layers, cmap="Purples", vmin=0.0, vmax=1.0,
                                          title=f"{kind}: attention mass on sink tokens"),
                       f"{escape(kind)}: share of each head's attention on special / sink tokens.")
        section.figure(fragmentation_summary(kf.shares, title=f"{kind}: head behaviours"),
                       f"{escape(kind)}: share of heads by behaviour.")
    return section
