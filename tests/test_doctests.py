"""The examples in headscope's docstrings run and print what they show.

Examples marked ``# doctest: +SKIP`` need a shipped model or a file and are shown, not run; every
other example runs here (ELLIPSIS and NORMALIZE_WHITESPACE on, as in the numpydoc examples).
"""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import headscope

FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


def _modules_with_examples() -> list[str]:
    names = ["headscope", *(m.name for m in pkgutil.walk_packages(headscope.__path__, "headscope."))]
    finder = doctest.DocTestFinder()
    out = []
    for name in names:
        if name.endswith("__main__"):
            continue
        tests = finder.find(importlib.import_module(name), name)
        if any(ex.options.get(doctest.SKIP) is not True for t in tests for ex in t.examples):
            out.append(name)
    return out


MODULES = _modules_with_examples()


def test_there_are_examples_to_run():
    assert len(MODULES) > 30


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=FLAGS, verbose=False, report=True)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples of {name} failed (output above)"
