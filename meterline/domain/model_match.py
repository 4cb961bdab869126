"""Model-name rules: which names a price database lets stand for one of its models.

A price database such as genai-prices names a model once and says, with a small boolean
language, which request names mean it: ``{"starts_with": "gpt-4o-mini"}`` covers the dated
snapshots, ``{"regex": "..."}`` families, ``{"or": [...]}`` / ``{"and": [...]}`` combinations.
A :class:`MatchRule` is that language as a value: parsed from and dumped to JSON (the store keeps
it), evaluated on the lower-cased name after the provider prefix. Exact names are aliases, not
rules (see :func:`split_exact`), so the common case stays a dictionary lookup.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Final

from meterline.errors import InvalidPrice

#: The leaf clauses and what they test on the lower-cased name.
LEAF_KINDS: Final = ("equals", "starts_with", "ends_with", "contains", "regex")
#: How deep a rule may nest: rules come from files, and a file must not blow the stack.
MAX_DEPTH: Final = 8


@dataclass(frozen=True, slots=True)
class MatchRule:
    """One clause: a leaf (``kind`` in :data:`LEAF_KINDS` with ``value``) or ``or``/``and``
    over ``children``."""

    kind: str
    value: str = ""
    children: tuple[MatchRule, ...] = ()

    def matches(self, name: str) -> bool:
        """Whether ``name`` (already lower-cased, without the provider prefix) matches."""
        kind = self.kind
        if kind == "equals":
            return name == self.value
        if kind == "starts_with":
            return name.startswith(self.value)
        if kind == "ends_with":
            return name.endswith(self.value)
        if kind == "contains":
            return self.value in name
        if kind == "regex":
            return _compiled(self.value).search(name) is not None
        if kind == "or":
            return any(child.matches(name) for child in self.children)
        return all(child.matches(name) for child in self.children)

    def to_json(self) -> dict[str, Any]:
        if self.kind in ("or", "and"):
            return {self.kind: [child.to_json() for child in self.children]}
        return {self.kind: self.value}

    @classmethod
    def parse(cls, data: object, path: str = "match", depth: int = 0) -> MatchRule:
        """Read ``{"starts_with": "gpt-4o"}``-style JSON; errors name the path."""
        if depth > MAX_DEPTH:
            raise InvalidPrice(f"{path}: nested deeper than {MAX_DEPTH}", field="match")
        if not isinstance(data, Mapping) or len(data) != 1:
            raise InvalidPrice(f"{path}: must be an object with one clause", field="match")
        ((kind, value),) = data.items()
        if kind in ("or", "and"):
            if not isinstance(value, list) or not value:
                raise InvalidPrice(f"{path}.{kind}: must be a non-empty list", field="match")
            return cls(kind, children=tuple(
                cls.parse(item, f"{path}.{kind}[{i}]", depth + 1) for i, item in enumerate(value)))
        if kind not in LEAF_KINDS:
            raise InvalidPrice(f"{path}: unknown clause {kind!r}", field="match")
        if not isinstance(value, str) or not value:
            raise InvalidPrice(f"{path}.{kind}: must be a non-empty string", field="match")
        if kind == "regex":
            try:
                re.compile(value)
            except re.error as exc:
                raise InvalidPrice(f"{path}.regex: {exc}", field="match") from None
            return cls(kind, value)
        return cls(kind, value.lower())


@lru_cache(maxsize=1024)
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


def split_exact(rule: MatchRule) -> tuple[list[str], MatchRule | None]:
    """The exact names a rule lists (to become aliases) and what is left of it, if anything."""
    if rule.kind == "equals":
        return [rule.value], None
    if rule.kind == "or":
        exact = [c.value for c in rule.children if c.kind == "equals"]
        rest = tuple(c for c in rule.children if c.kind != "equals")
        if not rest:
            return exact, None
        return exact, rest[0] if len(rest) == 1 else MatchRule("or", children=rest)
    return [], rule
