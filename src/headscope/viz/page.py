"""The report page: its style, the claim sections' frame, the header, and the page around them.

Each claim section (``headscope.viz.sections``) fills a :class:`Section` with HTML; this module
knows what a section looks like and how a page is put together, and nothing about readings.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field

from matplotlib.figure import Figure

from headscope import __version__
from headscope.inspection import Inspection

from .figures import to_data_uri

__all__ = ["CLAIMS", "Section", "escape", "page_html"]

#: Format of the report page, in its ``<meta name="headscope-format">`` (with the headscope version
#: in ``<meta name="generator">``): the page is written whole, atomically, and never read back.
PAGE_FORMAT = 1

CSS = """
body{font-family:Helvetica,Arial,sans-serif;margin:0;color:#222;background:#fafafa}
header{background:#1f2d3d;color:#fff;padding:1em 1.5em}
header h1{margin:0 0 .3em 0;font-size:1.35em}
header .io{font-size:1.05em;line-height:1.6}
header .io b{display:inline-block;width:6.5em;color:#9fb3c8;font-weight:normal}
nav{padding:.5em 1.5em;background:#e9eef3;font-size:.9em}
nav a{margin-right:1.2em}
main{padding:0 1.5em 2em 1.5em}
section.claim{background:#fff;border:1px solid #ddd;border-left:6px solid #999;margin:1.2em 0;padding:.6em 1.2em}
section.alignment{border-left-color:#2b8cbe}section.plausible{border-left-color:#d95f0e}
section.faithful{border-left-color:#31a354}section.fragmentation{border-left-color:#756bb1}
section.localisation{border-left-color:#2b8cbe}
.claimtag{display:inline-block;font-size:.75em;text-transform:uppercase;letter-spacing:.06em;padding:.15em .5em;
border-radius:3px;background:#eee;margin-right:.5em;vertical-align:middle}
.question{color:#555;font-style:italic;margin-top:-.4em}
figure{display:inline-table;margin:.6em 1.2em .6em 0;vertical-align:top}
figure img{max-width:100%;border:1px solid #eee}
figcaption{display:table-caption;caption-side:bottom;font-size:.85em;color:#555}
header table{border:none;font-size:.85em;color:#c8d6e5}header td,header th{border:none;padding:.05em .8em .05em 0}
.note{background:#fff8e1;border:1px solid #f0d98a;padding:.4em .8em;font-size:.9em}
table{border-collapse:collapse;font-size:.9em;margin:.5em 0}
td,th{border:1px solid #ddd;padding:.2em .6em;text-align:left}
.hs-caption{color:#555;font-size:.85em;max-width:60em}
pre{font-size:.8em;background:#f4f4f4;padding:.5em;overflow-x:auto}
"""

#: claim -> (title, the question the section answers, tag); in page order.
CLAIMS: dict[str, tuple[str, str, str]] = {
    "alignment": ("Alignment", "Do the weights mark real correspondences? Scored against gold links.", "claim"),
    "localisation": ("Localisation", "Do the weights mark the object? Scored against its mask on the patch grid.",
                     "claim"),  # images (issue 18): the alignment claim of vision
    "plausible": ("Plausible", "Does it look right to a person? Shown, not measured.", "claim"),
    "faithful": ("Faithful", "Did those inputs drive the output? Ablation, erasure, gradients.", "claim"),
    "fragmentation": ("Fragmentation", "How far do the readings (heads, layers, aggregates) disagree?",
                      "across claims"),
}


def escape(text: object) -> str:
    """``str(text)`` with ``&``, ``<``, ``>`` and quotes escaped for HTML."""
    return html.escape(str(text))


@dataclass
class Section:
    """One claim section of the page: a list of HTML parts under the claim's title and question.

    Parameters
    ----------
    claim
        A key of :data:`CLAIMS`.
    parts
        HTML fragments, in order.
    """

    claim: str
    parts: list[str] = field(default_factory=list)

    def add(self, fragment: str) -> None:
        """Append an HTML fragment (already escaped)."""
        self.parts.append(fragment)

    def note(self, fragment: str) -> None:
        """Append a highlighted note (``fragment`` is HTML, already escaped)."""
        self.parts.append(f'<p class="note">{fragment}</p>')

    def figure(self, fig: Figure, caption: str) -> None:
        """Append ``fig`` as an embedded PNG with ``caption`` (HTML, already escaped) under it."""
        alt = html.escape(html.unescape(caption), quote=True)
        self.parts.append(f'<figure><img src="{to_data_uri(fig, "png", dpi=100)}" alt="{alt}">'
                          f"<figcaption>{caption}</figcaption></figure>")

    @classmethod
    def not_applicable(cls, claim: str, reason: str) -> "Section":
        """A section that only says why its claim does not apply to this input.

        Parameters
        ----------
        claim
            A key of :data:`CLAIMS`.
        reason
            Plain text, e.g. the message of a :class:`~headscope.errors.NotApplicableError`.

        Returns
        -------
        Section
            The section.
        """
        section = cls(claim)
        section.note(f"<b>Not applicable</b>: {escape(reason)}")
        return section

    def html(self) -> str:
        """The ``<section>`` element."""
        title, question, tag = CLAIMS[self.claim]
        return (f'<section class="claim {self.claim}" id="{self.claim}" data-claim="{self.claim}">'
                f'<h2><span class="claimtag">{tag}</span>{escape(title)}</h2>'
                f'<p class="question">{escape(question)}</p>\n' + "\n".join(self.parts) + "\n</section>")


def _output_rows(insp: Inspection) -> list[tuple[str, str]]:
    """What happened, for the header: the architecture, the output or prediction, the captured maps."""
    rows = [("architecture", insp.architecture.name)]
    if insp.target_text is not None:
        rows.append(("output is", "forced (teacher forcing)" if insp.forced else "generated by the model"))
    if "label" in insp.prediction:
        probs = ", ".join(f"{k}: {v:.3f}" for k, v in insp.prediction.get("probabilities", {}).items())
        rows.append(("prediction", f"{insp.prediction['label']}  ({probs})"))
    elif "next_token" in insp.prediction:
        rows.append(("next token", f"{insp.prediction['next_token']!r} (p={insp.prediction['probability']:.3f})"))
    rows.append(("captured", ", ".join(f"{k}: {insp.shape(k)[0]} layers x {insp.shape(k)[1]} heads"
                                       for k in insp.kinds)))
    return rows


def _header(insp: Inspection) -> str:
    """The page header: model, input, output (or prediction) and the captured-maps table."""
    if insp.target_text is not None:
        io = (f'<b>input</b>{escape(insp.source_text)}<br><b>output</b>{escape(insp.target_text)}'
              f'{" (forced)" if insp.forced else ""}')
    else:
        pred = insp.prediction.get("label", insp.prediction.get("next_token", ""))
        io = f"<b>input</b>{escape(insp.source_text)}<br><b>prediction</b>{escape(pred)}"
    table = "".join(f"<tr><th>{escape(a)}</th><td>{escape(b)}</td></tr>" for a, b in _output_rows(insp))
    return (f"<header><h1>headscope report: {escape(insp.model_name)}</h1>"
            f'<div class="io">{io}</div><table class="captured">{table}</table></header>')


def page_html(insp: Inspection, sections: list[Section], scripts: str = "") -> str:
    """The whole self-contained page.

    Parameters
    ----------
    insp
        The inspection the page is about (for the title and header).
    sections
        The claim sections, in page order.
    scripts
        ``<script>`` elements the sections need (the offline bertviz scripts), placed first.

    Returns
    -------
    str
        The HTML document.
    """
    nav = "".join(f'<a href="#{s.claim}">{escape(CLAIMS[s.claim][0])}</a>' for s in sections)
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            f'<meta name="generator" content="headscope {__version__}">\n'
            f'<meta name="headscope-format" content="{PAGE_FORMAT}">\n'
            f"<title>headscope report: {escape(insp.source_text)}</title>\n<style>{CSS}</style>\n</head>\n<body>\n"
            + (scripts + "\n" if scripts else "")
            + _header(insp) + f"\n<nav>{nav}</nav>\n<main>\n"
            + "\n".join(s.html() for s in sections) + "\n</main>\n</body>\n</html>\n")
