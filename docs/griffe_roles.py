"""Griffe extension for the API pages: ganforge's docstrings are written for Sphinx
(``:class:`~ganforge.config.TrainConfig```, ``:func:`train```), and the site renders them as
Markdown, where such a role would show its colons. Each role becomes a code span of its target
(``~`` keeps only the last name, as Sphinx shows it)."""

from __future__ import annotations

import re

from griffe import Extension, Object

ROLE = re.compile(r":(?:py:)?(?:class|func|meth|mod|data|attr|obj|exc):`(~?)([^`]+)`")


def _code_span(match: re.Match) -> str:
    short, target = match.group(1), match.group(2)
    return f"`{target.rsplit('.', 1)[-1] if short else target}`"


def without_roles(text: str) -> str:
    """``text`` with every Sphinx cross-reference role replaced by a code span."""
    return ROLE.sub(_code_span, text)


class SphinxRolesAsCode(Extension):
    """Rewrites each loaded object's docstring with :func:`without_roles`."""

    def on_instance(self, *, obj: Object, **kwargs) -> None:
        if obj.docstring is not None:
            obj.docstring.value = without_roles(obj.docstring.value)
