"""Arguments shared by the verbs of the ``headscope`` command, and where their files go.

Every verb takes the model the same way: an optional first positional ``[MODEL]`` (a shipped
name such as ``headscope/sentiment``, a folder, or a hub name; default :data:`DEFAULT_MODEL`),
then what the verb reads (``TEXT``, ``TEXT_OR_FILE``). A verb that needs a text and gets only a
model name stops with exit status 2 and its usage (:func:`check`), instead of reading the model's
name as the text.

Files a verb writes without ``--out`` go under one folder in the working directory,
:data:`OUT_ROOT` (``headscope-out/<verb>/<model>/<what>``, :func:`default_out`).

Nothing here imports torch: ``headscope --help`` stays fast.
"""

from __future__ import annotations

import argparse
import os
import re
from pathlib import Path

from ..errors import InputError
from ..models import DEFAULT_MODEL  # imports no model stack until a model is loaded

#: The folder (in the working directory) that holds what verbs write when ``--out`` is not given.
OUT_ROOT = "headscope-out"

#: Suffixes that make a lone word look like a file name (``headscope faithful MODEL missing.txt``).
TEXT_FILE_SUFFIXES = (".txt", ".text", ".tsv", ".csv", ".json", ".jsonl", ".lst", ".tok", ".src", ".tgt")

_HUB_NAME = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def add_model(p: argparse.ArgumentParser, what: str = "model") -> None:
    """The optional ``[MODEL]`` positional, the same for every verb."""
    p.add_argument("model", nargs="?", default=None, metavar="MODEL",
                   help=f"{what}: a shipped name (headscope models lists them), a folder saved with "
                   f"save_pretrained, or a hub name (default {DEFAULT_MODEL})")


def add_model_and_text(p: argparse.ArgumentParser, metavar: str = "TEXT",
                       text_help: str = "the input text (quote it)", what: str = "model") -> None:
    """``[MODEL] TEXT``: the optional model, then the required text (``metavar`` names it in the usage)."""
    add_model(p, what)
    p.add_argument("text", metavar=metavar, help=text_help)
    p.set_defaults(usage_parser=p, text_metavar=metavar)


def add_threads(p: argparse.ArgumentParser) -> None:
    """``--threads N`` (default 1), applied by :func:`check` before the verb runs."""
    p.add_argument("--threads", type=int, default=1, metavar="N",
                   help="torch threads (default 1: the small shipped models on a few busy cores run fastest "
                   "on one; raise it for large models)")


def names_model(arg: str) -> bool:
    """Whether ``arg`` reads as a model rather than a text: a model folder (with a ``config.json``)
    or a shipped or hub name (``owner/name``, no spaces), decided without loading anything.

    >>> [names_model(a) for a in ("headscope/sentiment", "Helsinki-NLP/opus-mt-en-fr", "A red car.", "yes")]
    [True, True, False, False]
    """
    if os.path.isdir(arg) and os.path.isfile(os.path.join(arg, "config.json")):
        return True
    return bool(_HUB_NAME.match(arg))


def add_corpus_options(p: argparse.ArgumentParser) -> None:
    """The options of a verb that takes ``TEXT_OR_FILE`` and runs a file as a resumable corpus run
    (``faithful``, ``fragment``): ``--text``, ``--limit``, ``--chunk-size``, ``--processes``, ``--no-progress``."""
    p.add_argument("--text", dest="as_text", action="store_true",
                   help="analyse TEXT_OR_FILE as a text even when it looks like a file name")
    p.add_argument("--limit", type=int, default=None, help="use only the first N lines of a file")
    p.add_argument("--chunk-size", type=int, default=16,
                   help="texts of a file computed (and saved for resuming) together (default 16)")
    p.add_argument("--processes", type=int, default=None, metavar="N",
                   help="compute the chunks of a file in N processes (one GPU each where there are GPUs) with "
                   "accelerate; the result equals a one-process run (docs/scale.md)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def looks_like_path(arg: str) -> bool:
    """Whether ``arg`` reads as a file name rather than a text: no whitespace, and a path separator
    or a text-file suffix.

    >>> [looks_like_path(a) for a in ("missing.txt", "data/texts", "A dull film.", "Great!", "U.S.A.")]
    [True, True, False, False, False]
    """
    if not arg or any(c.isspace() for c in arg):
        return False
    return "/" in arg or os.sep in arg or Path(arg).suffix.lower() in TEXT_FILE_SUFFIXES


def read_texts(arg: str, limit: int | None = None, as_text: bool = False) -> tuple[list[str], bool]:
    """``(texts, from_file)``: the non-empty lines of file ``arg``, or ``[arg]`` itself (a text, or an image
    file for an image classifier)."""
    from ..run import IMAGE_SUFFIXES

    if limit is not None and limit < 1:
        raise InputError(f"--limit {limit}: pass a positive number of lines")
    if as_text or arg.lower().endswith(IMAGE_SUFFIXES):
        return [arg], False
    if os.path.isdir(arg):
        raise InputError(f"{arg} is a folder; give a file with one text per line, or add --text to analyse "
                         f"{arg!r} as a text")
    if not os.path.isfile(arg):
        if looks_like_path(arg):
            raise InputError(f"{arg!r} looks like a file name but no such file exists; give an existing file "
                             f"(one text per line), or add --text to analyse {arg!r} itself as a text")
        return [arg], False
    try:
        raw = Path(arg).read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = Path(arg).read_bytes()[:err.start].count(b"\n") + 1
        raise InputError(f"{arg}, line {line}: not UTF-8 text; save the file as UTF-8 (one text per line)") from None
    except OSError as err:
        raise InputError(f"{arg}: cannot be read ({err.strerror or err}); check the path and permissions") from None
    texts = [ln.strip() for ln in raw.splitlines() if ln.strip()]
    if not texts:
        raise InputError(f"{arg} has no non-empty lines; put one text per line")
    return (texts[:limit] if limit else texts), True


def check(args: argparse.Namespace) -> None:
    """Validate and complete the parsed arguments of a verb before it runs.

    * ``[MODEL] TEXT`` given only a model name (``headscope inspect headscope/sentiment``): exit 2
      with the verb's usage, saying the text is missing;
    * ``model`` left out: :data:`DEFAULT_MODEL`; a model that cannot be loaded here (unknown
      shipped name, folder without config, hub name offline): :class:`ModelNotFoundError` at once;
    * ``--threads``: a positive number, applied to torch.
    """
    parser = getattr(args, "usage_parser", None)
    text = getattr(args, "text", None)
    if parser is not None and getattr(args, "model", None) is None and isinstance(text, str) and names_model(text):
        metavar = getattr(args, "text_metavar", "TEXT")
        parser.error(f"{metavar} is missing: {text!r} names a model, not a text; give both, e.g. "
                     f"headscope {parser.prog.split()[-1]} {text} \"A man in a red shirt.\"")
    if hasattr(args, "model"):
        if args.model is None:
            args.model = DEFAULT_MODEL
        from ..models.names import check_name

        check_name(args.model)  # an unknown or unreachable model fails here, before torch is imported
    threads = getattr(args, "threads", None)
    if threads is not None and parser is not None:
        if threads < 1:
            parser.error(f"--threads takes a positive number, not {threads}")
        import torch

        torch.set_num_threads(threads)


def import_model_stack() -> None:
    """Import torch and transformers' modelling stack, which every verb with a model needs."""
    import torch  # noqa: F401
    from transformers import PreTrainedModel  # noqa: F401


def slug(text: str, limit: int = 40) -> str:
    """A file-name-safe short form of a model name or a text.

    >>> slug("headscope/en-fr"), slug("A man in a red shirt is riding a bike.")
    ('headscope_en-fr', 'a-man-in-a-red-shirt-is-riding-a-bike')
    """
    if "/" in text and not any(c.isspace() for c in text):  # a model name or a path: keep its parts
        return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._")[:limit] or "model"
    words = re.findall(r"\w+", text.lower())
    out = ""
    for w in words:
        if len(out) + len(w) + (1 if out else 0) > limit:
            break
        out = f"{out}-{w}" if out else w
    return out or "text"


def default_out(verb: str, model: str, what: str | None = None) -> Path:
    """Where ``verb`` writes without ``--out``: ``headscope-out/<verb>/<model>[/<what>]``.

    >>> default_out("report", "headscope/en-fr", "A man in a red shirt.").as_posix()
    'headscope-out/report/headscope_en-fr/a-man-in-a-red-shirt'
    """
    folder = Path(OUT_ROOT) / verb / slug(model)
    return folder / slug(what) if what else folder


def model_and_text(args: argparse.Namespace) -> tuple[str, str]:
    """``(model, text)`` of a verb that took ``[MODEL] TEXT`` (after :func:`check`)."""
    return args.model or DEFAULT_MODEL, args.text
