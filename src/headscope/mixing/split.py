"""ALTI+'s split of each target token's prediction into source and target contributions.

Ferrando et al. 2022, "Towards Opening the Black Box of Neural Machine Translation: Source and Target
Contributions to the Model's Predictions" (EMNLP): the rolled ALTI+ contributions of a target token's
row sum to 1 over the source tokens (``cross.alti``) and the target prefix (``decoder.alti``); the
source share is how much the prediction at that step draws on the source sentence.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..errors import InputError


@dataclass
class ContributionSplit:
    """Per target token: the source and target shares of its ALTI+ contributions (each pair sums to 1).

    >>> s = ContributionSplit(["▁le", "</s>"], [0.75, 0.5], [0.25, 0.5])
    >>> print(s.table().splitlines()[1])
    le           0.750   0.250
    """

    target_tokens: list[str]
    source: list[float]
    target: list[float]

    def __str__(self) -> str:
        mean = sum(self.source) / max(len(self.source), 1)
        return f"ALTI+ source/target split of {len(self.source)} target tokens: mean source share {mean:.3f}"

    summary = __str__

    def to_rows(self) -> list[dict[str, Any]]:
        """One row per target token: ``token``, ``source``, ``target``."""
        return [{"token": t, "source": s, "target": g} for t, s, g in zip(self.target_tokens, self.source, self.target)]

    def table(self) -> str:
        """A plain-text table, one line per target token."""
        lines = [f"{'token':<10}  {'source':>6}  {'target':>6}"]
        for row in self.to_rows():
            token = row["token"][1:] if row["token"].startswith(("▁", "Ġ")) and len(row["token"]) > 1 else row["token"]
            lines.append(f"{token:<10}  {row['source']:6.3f}  {row['target']:6.3f}")
        return "\n".join(lines)

    def save(self, path: str | os.PathLike) -> Path:
        """Write the split as JSON to ``path``."""
        path = Path(path)
        path.write_text(json.dumps(asdict(self), ensure_ascii=False), encoding="utf-8")
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> ContributionSplit:
        """Read a split written by :meth:`save`."""
        try:
            return cls(**json.loads(Path(path).read_text(encoding="utf-8")))
        except (OSError, ValueError, TypeError) as err:
            raise InputError(f"{path}: not a saved ContributionSplit ({err})") from None


def source_target_split(insp: Any) -> ContributionSplit:
    """The :class:`ContributionSplit` of an Inspection made with ``readings=["alti"]`` (an encoder-decoder's).

    >>> insp = headscope.inspect("headscope/en-fr", "A red car.", readings=["alti"])   # doctest: +SKIP
    >>> print(source_target_split(insp).table())                                        # doctest: +SKIP
    """
    mixing = getattr(insp, "mixing", {}) or {}
    if "cross.alti" not in mixing or "decoder.alti" not in mixing:
        raise InputError("this inspection has no ALTI+ contributions: inspect an encoder-decoder with "
                         "readings=['alti']")
    source = mixing["cross.alti"].sum(-1).tolist()
    target = mixing["decoder.alti"].sum(-1).tolist()
    return ContributionSplit(list(insp.target_tokens or []), source, target)
