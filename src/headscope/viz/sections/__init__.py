"""The claim sections of the report, one module each.

Each module has one function that takes an inspection (and the report's options) and returns a
filled :class:`~headscope.viz.page.Section`. A section whose claim does not apply to the input
raises :class:`~headscope.errors.NotApplicableError` (the report then marks it "not applicable");
every other error propagates.

* :mod:`.alignment` - attention read as word links, scored against gold links;
* :mod:`.plausible` - pictures of the weights: bipartite links, word maps, rollout, bertviz;
* :mod:`.faithful` - head ablation and token importance, with Kendall τ between readings;
* :mod:`.fragmentation` - how far the readings disagree.
"""
