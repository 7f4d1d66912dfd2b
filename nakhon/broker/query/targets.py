"""Where a q term finds its target values, shared by the Python evaluator and the SQL compilers.

Both sides walk the same steps, which is what keeps them in agreement:

1. the instances of the attribute (any instance may match);
2. the sub-attribute instances named by ``Path.sub`` (each must be a JSON object: the *node*);
3. for each :class:`Source`: the node's ``member``, then the trailing keys, each step into a
   JSON object only (a missing key means "no target" — clause 4.9's ECMA member expression);
4. the *elements* of that target: the target itself, or its items when it is an array
   (``standard``); every value of a languageMap, arrays flattened (``langflat``); the
   ``object`` of every ``{"object": uri}`` of an objectList (``objlist``).

An instance carries exactly one value member, so at most one source has a target for it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from nakhon.broker.query.q import Path, Term

ElementsMode = Literal["standard", "langflat", "objlist"]
MISSING: Any = object()


@dataclass(frozen=True, slots=True)
class Source:
    """One place a target value can come from."""

    member: str
    trail: tuple[str, ...]
    mode: ElementsMode
    relationship: bool = False  # only == and != apply (clause 4.9)
    vocab: bool = False  # compare with the expanded string values


def sources(path: Path) -> list[Source]:
    """The sources of a term's target, in a fixed order."""
    if path.member is not None:
        return [Source(path.member, path.trail or (), "standard")]
    trail = path.trail or ()
    lang = (
        Source("languageMap", (), "langflat")
        if trail in ((), ("*",))
        else Source("languageMap", trail, "standard")
    )
    return [
        Source("value", trail, "standard"),
        Source("json", trail, "standard"),
        Source("valueList", trail, "standard"),
        Source("vocab", trail, "standard", vocab=True),
        Source("object", trail, "standard", relationship=True),
        Source("objectList", trail, "objlist", relationship=True),
        lang,
    ]


def node_only(term: Term) -> bool:
    """An existence test of the attribute (or sub-attribute) itself, no value involved."""
    return term.op is None and term.path.member is None and term.path.trail is None


def target(node: dict[str, Any], source: Source) -> Any:
    """The target value in ``node`` for ``source``, or :data:`MISSING`."""
    if source.member not in node:
        return MISSING
    value = node[source.member]
    for key in source.trail:
        if not isinstance(value, dict) or key not in value:
            return MISSING
        value = value[key]
    return value


def elements(value: Any, mode: ElementsMode) -> list[Any]:
    """The elements a comparison looks at (see the module docstring)."""
    if mode == "standard":
        return list(value) if isinstance(value, list) else [value]
    if mode == "langflat":
        if not isinstance(value, dict):
            return []
        flat: list[Any] = []
        for item in value.values():
            flat.extend(item if isinstance(item, list) else [item])
        return flat
    if not isinstance(value, list):
        return []
    return [o["object"] for o in value if isinstance(o, dict) and "object" in o]
