"""The report's faithful section: interventions on the model, drawn.

Head ablation (:func:`headscope.faithful.head_ablation`: each head removed alone, the change of
the model's own output) as a layer x head heatmap per kind; token importance by several methods
(:func:`headscope.faithful.token_importance`) as bars or a target x source heatmap, and the
Kendall τ between their rankings (:func:`headscope.faithful.kendall_tau_rows`). Needs the model:
an inspection loaded from disk says *not computed*.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from headscope import faithful
from headscope.errors import NotApplicableError
from headscope.fragment.measure import explained_rows
from headscope.inspection import Inspection, display_token

from ..figures import ablation_heatmap, bars, heatmap, kendall_matrix
from ..page import Section, escape

__all__ = ["faithful_section"]


def _mean_tau(a: np.ndarray, b: np.ndarray, keep: np.ndarray | None) -> float:
    """Kendall τ of two importance rankings ``[decisions, S]``, averaged over the decisions where it is defined."""
    taus = np.asarray(faithful.kendall_tau_rows(a, b, keep), dtype=float)
    finite = taus[np.isfinite(taus)]
    return float(finite.mean()) if finite.size else float("nan")


def _name(importance: faithful.TokenImportance) -> str:
    """The method, with the attention reading it read when it read one: ``"attention (layer 1 mean)"``."""
    if importance.reading is None or importance.reading.label == importance.method:
        return importance.method
    return f"{importance.method} ({importance.reading.label})"


def _importance(section: Section, importances: Sequence[faithful.TokenImportance],
                explained: np.ndarray | slice) -> None:
    """The Kendall τ matrix between the methods' rankings (over the ``explained`` decisions, the rows
    ``headscope faithful`` and ``headscope fragment`` average over too) and one figure per method."""
    first = importances[0]
    keep = None if first.special is None else ~np.asarray(first.special, dtype=bool)
    scores = [np.asarray(imp.scores, dtype=float) for imp in importances]
    tau = np.array([[_mean_tau(a[explained], b[explained], keep) for b in scores] for a in scores])
    several = len(first.decisions) > 1
    section.add("<p>Token importance by several methods; agreement of their rankings as Kendall τ "
                "(Jain &amp; Wallace 2019), special tokens left out"
                + (", mean over the output tokens that are words (a final &lt;/s&gt; is not explained, as in "
                   "<code>headscope faithful</code>)" if several else "") + ".</p>")
    section.figure(kendall_matrix(tau, [_name(imp) for imp in importances]),
                   "Kendall τ between token-importance readings: attention-based readings agreeing with gradient / "
                   "leave-one-out ones is evidence (not proof) that the attention tracks what drove the output.")
    for imp, values in zip(importances, scores):
        sources = [display_token(t) for t in imp.source_tokens]
        decisions = [display_token(d) for d in imp.decisions]
        if several:
            fig = heatmap(values, decisions, sources, cmap="RdBu_r", center=0.0,
                          title=f"{_name(imp)} importance", xlabel="source token", ylabel="output token",
                          annotate=False, colorbar_label="importance")
        else:
            fig = bars(values[0].tolist(), sources, xlabel="score",
                       title=f"{_name(imp)} importance for {decisions[0]}")
        section.figure(fig, f"Importance of each source token by <code>{escape(_name(imp))}</code>"
                            + (" for each output token (teacher forcing)." if several
                               else f" for the decision {escape(decisions[0])}."))


def faithful_section(insp: Inspection, *, run: bool, methods: Sequence[str]) -> Section:
    """The faithful section of ``insp``'s report.

    Parameters
    ----------
    insp
        The inspection; ablation and importance re-run its model (``insp.loaded``).
    run
        Compute the interventions (``False``: the section says they were not computed).
    methods
        Token-importance methods (:func:`headscope.faithful.list_methods`); one that is not
        defined for this model (:class:`~headscope.errors.NotApplicableError`) is noted and skipped.

    Returns
    -------
    Section
        The ablation heatmaps, the Kendall τ matrix and the importance figures.
    """
    section = Section("faithful")
    if not run:
        section.note("<b>Not computed</b> for this report (<code>faithful=False</code>).")
        return section
    if insp.loaded is None:
        section.note("<b>Not computed</b>: this inspection has no model attached (it was loaded from disk); "
                     "inspect the model again to ablate heads or erase tokens.")
        return section
    ablation = faithful.head_ablation(insp, proxies=False)
    section.add(f"<p>Head ablation: each head removed alone; the effect is the <code>{escape(ablation.measure)}</code> "
                "of the model's own output (positive: the output got less likely without the head).</p>")
    for kind, effect in ablation.effect().items():
        section.figure(ablation_heatmap(effect, layers=insp.layer_indices(kind),
                                        title=f"{kind}: effect of ablating each head"),
                       f"{escape(kind)} heads: change of {escape(ablation.measure)} when the head is removed.")
    importances: list[faithful.TokenImportance] = []
    for method in methods:
        try:
            importances.append(faithful.token_importance(insp, method))
        except NotApplicableError as err:
            section.note(f"Token importance by <code>{escape(method)}</code>: <b>not applicable</b> ({escape(err)}).")
    if importances:
        _importance(section, importances, explained_rows(insp))
    return section
