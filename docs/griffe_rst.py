"""Griffe extension: render the reStructuredText bits of bayescale's numpydoc docstrings.

The docstrings follow numpydoc, whose cross-references (``:func:`fit```) and maths
(``:math:`x```, ``.. math::`` blocks) are Sphinx roles and directives that Markdown does not
know. This rewrites them, for the API pages only, into inline code and ``$...$`` / ``$$...$$``
maths that the site's arithmatex extension renders; the docstrings themselves are untouched.
"""

from __future__ import annotations

import re
import textwrap
from typing import Any

import griffe

ROLE = re.compile(r":(?:class|func|meth|mod|data|attr|obj|exc|py:\w+):`~?([^`]+)`")
INLINE_MATH = re.compile(r":math:`([^`]+)`")
MATH_BLOCK = re.compile(r"^( *)\.\. math::\s*\n((?:\1 +.*\n|[ \t]*\n)+)", re.MULTILINE)


def _math_block(match: re.Match[str]) -> str:
    indent = match.group(1)
    body = textwrap.dedent(match.group(2)).strip("\n")
    return f"{indent}$$\n{textwrap.indent(body, indent)}\n{indent}$$\n\n"


def markdown_of(text: str) -> str:
    """Return ``text`` with Sphinx roles and math directives rewritten for Markdown."""
    text = MATH_BLOCK.sub(_math_block, text if text.endswith("\n") else text + "\n")
    text = INLINE_MATH.sub(lambda m: f"${m.group(1)}$", text)
    return ROLE.sub(lambda m: f"`{m.group(1)}`", text).rstrip("\n")


class RstToMarkdown(griffe.Extension):
    """Rewrite every loaded docstring with :func:`markdown_of`."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        """Rewrite the docstring of each object as it is loaded."""
        if obj.docstring is not None:
            obj.docstring.value = markdown_of(obj.docstring.value)
