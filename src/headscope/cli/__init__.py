"""The ``headscope`` command: its verbs mirror the Python API.

    headscope inspect [MODEL] TEXT [--target T] [--out DIR]
    headscope inspect headscope/shapes-vit IMAGE.png [--out DIR]    (image classifiers: an image path)
    headscope models
    headscope --version

Every verb takes the model the same way, as an optional first positional ``[MODEL]`` (default
``headscope/en-fr``); a verb that needs a text and is given only a model name exits with status 2
and its usage. Files written without ``--out`` go under ``headscope-out/<verb>/``
(:mod:`headscope.cli.common`).

Each area adds its own verbs: a module listed in ``VERB_MODULES`` defines
``register(subparsers)``, adding a parser whose default ``handler`` takes the parsed
arguments and returns the exit code.
"""

from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from types import FrameType
from typing import NoReturn

from ..errors import HeadscopeError
from ..readings import MIXING
from .common import add_model_and_text, add_threads, check, import_model_stack, model_and_text
from .resume import INTERRUPTED

Command = Callable[[argparse.Namespace], int]

VERB_MODULES = (
    "headscope.cli.align",
    "headscope.cli.faithful",
    "headscope.cli.counterfactual",
    "headscope.cli.fragment",
    "headscope.cli.viz",
)


def _inspect(args: argparse.Namespace) -> int:
    """``headscope inspect``: capture every head for one input, print the summary, optionally save it.

    Parameters
    ----------
    args
        The parsed ``[MODEL] TEXT``, ``--target``, ``--beams``, ``--readings`` and ``--out``.

    Returns
    -------
    int
        The exit code (0).
    """
    from ..run import inspect

    model, text = model_and_text(args)
    insp = inspect(model, text, target=args.target, num_beams=args.beams, readings=args.readings)
    print(insp.summary())
    if args.out:
        folder = insp.save(args.out)
        print(f"saved to {folder}/ (Inspection.load('{folder}') reads it back)")
    return 0


def _readings(value: str) -> list[str]:
    """``--readings norm,alti`` as a list, each name one of :data:`~headscope.readings.MIXING` or ``all``."""
    names = [n.strip() for n in value.split(",") if n.strip()]
    unknown = [n for n in names if n not in (*MIXING, "all")]
    if unknown or not names or ("all" in names and len(names) > 1):
        raise argparse.ArgumentTypeError(f"{value!r}: choose from {','.join(MIXING)} (comma-separated), or all alone")
    return names


def _number(value: object) -> str:
    """``7,708,672`` for an int, ``224 x 224`` for a list, the value itself otherwise."""
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    if isinstance(value, (list, tuple)):
        return " x ".join(_number(v) for v in value)
    return str(value)


def _models(args: argparse.Namespace) -> int:
    """``headscope models``: list the shipped models with their task, size, data and quality.

    Parameters
    ----------
    args
        The parsed arguments (none).

    Returns
    -------
    int
        The exit code (0).
    """
    from ..models import DEFAULT_MODEL, list_models  # lists without importing torch

    for m in list_models():
        default = "  (default)" if m.name == DEFAULT_MODEL else ""
        size = ", ".join(f"{k.replace('_', ' ')} {_number(v)}" for k, v in m.size.items()) \
            if isinstance(m.size, dict) else m.size
        print(f"{m.name}{default}\n  {m.description}\n  task: {m.task}; {size}\n  data: {m.data}\n  quality: {m.quality}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``headscope`` command."""
    from .. import __version__

    parser = argparse.ArgumentParser(
        prog="headscope",
        description="Open up transformer attention and measure how far each map can be trusted.",
        epilog="Every verb takes [MODEL] first (default headscope/en-fr). Files written without --out go "
        "under ./headscope-out/<verb>/. 'headscope VERB --help' describes a verb.",
    )
    parser.add_argument("--version", action="version", version=f"headscope {__version__}",
                        help="print the version and exit")
    sub = parser.add_subparsers(dest="verb", required=True, metavar="VERB")

    p = sub.add_parser("inspect", help="capture every attention head for one input and print a summary",
                       description="Capture every attention head of MODEL on TEXT and print a summary. For an "
                       "image classifier (e.g. headscope/shapes-vit) TEXT is the path of an image file.")
    add_model_and_text(p, text_help="the input text (quote it), or an image file (.png, .jpg, ...) for an image "
                       "classifier")
    p.add_argument("--target", help="force this output (encoder-decoders) instead of generating")
    p.add_argument("--beams", type=int, default=1, help="beam size for generation (default 1: greedy)")
    p.add_argument("--readings", metavar="NAMES", type=_readings,
                   help=f"also compute readings beyond the raw weights: comma-separated from {','.join(MIXING)}, or "
                   "all (kept in the inspection; see docs/readings.md)")
    p.add_argument("--out", metavar="DIR", help="also save the inspection to this folder (Inspection.load reads it)")
    add_threads(p)
    p.set_defaults(handler=_inspect)

    p = sub.add_parser("models", help="list the models shipped with headscope",
                       description="List the models shipped with headscope, with their task, size and quality.")
    p.set_defaults(handler=_models)
    for name in VERB_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``headscope`` command with ``argv`` (default: the process's) and return its status."""
    interrupts = _Interrupts()
    with interrupts.handled():
        try:
            args = build_parser().parse_args(argv)
            with interrupts.deferred():
                check(args)  # a missing text, the default model, --threads (exits 2 with the usage)
                if hasattr(args, "model"):
                    import_model_stack()
            return args.handler(args)
        except KeyboardInterrupt:
            return interrupts.report()
        except HeadscopeError as err:
            if interrupts.seen:  # noted while deferred, then the check failed
                return interrupts.report()
            print(f"headscope: error: {err}", file=sys.stderr)
            return 2
        except Exception:
            if not interrupts.seen:
                raise
            # the Ctrl-C landed inside a library's import, which turned it into another error
            return interrupts.report()


class _Interrupts:
    """Ctrl-C during one run of the command: noted, raised as KeyboardInterrupt, or deferred.

    torch must not be interrupted while it initialises: a KeyboardInterrupt raised inside one of
    its C++ callbacks aborts the process (``std::terminate``), and one raised inside a library's
    import can come back later as an unrelated ImportError or RecursionError. Inside
    :meth:`deferred` the signal is only noted and raised when the block ends.
    """

    def __init__(self) -> None:
        self.seen = False
        self.deferring = False

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        self.seen = True
        if not self.deferring:
            raise KeyboardInterrupt

    @contextmanager
    def handled(self) -> Iterator[None]:
        """Handle SIGINT here, where Python's default handler is in place on the main thread."""
        previous = signal.getsignal(signal.SIGINT)
        if previous is not signal.default_int_handler or threading.current_thread() is not threading.main_thread():
            yield  # ignored (a background job), another handler, or a thread: left alone
            return
        signal.signal(signal.SIGINT, self)
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, previous)

    def report(self) -> int:
        """Say that the command was interrupted (a further Ctrl-C meanwhile is only noted) and return 130."""
        self.deferring = True
        print("headscope: interrupted", file=sys.stderr)
        return INTERRUPTED

    @contextmanager
    def deferred(self) -> Iterator[None]:
        """Within the block a Ctrl-C is only noted; it is raised when the block ends."""
        self.deferring = True
        try:
            yield
        finally:
            self.deferring = False
        if self.seen:
            raise KeyboardInterrupt


def run() -> NoReturn:
    """The ``headscope`` console script: :func:`main`, then exit with its status.

    After Ctrl-C the process ends with :func:`os._exit` so that the status is 130 every time:
    CPython turns its own exit into a death by SIGINT when the interrupt landed in code that a
    C extension ran through ``PyRun_*`` during an import (torch does), even though :func:`main`
    caught it.
    """
    code = main()
    if code == INTERRUPTED:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C while leaving changes nothing
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)
