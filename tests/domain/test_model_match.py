"""meterline.domain.model_match: a price database's name rules as values."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meterline.domain.model_match import MatchRule, split_exact
from meterline.errors import InvalidPrice


@pytest.mark.parametrize(("rule", "name", "matches"), [
    ({"equals": "gpt-4o"}, "gpt-4o", True),
    ({"equals": "GPT-4o"}, "gpt-4o", True),          # rules are lower-cased, like names
    ({"equals": "gpt-4o"}, "gpt-4o-mini", False),
    ({"starts_with": "claude-3-5-haiku"}, "claude-3-5-haiku-20241022", True),
    ({"starts_with": "claude-3-5-haiku"}, "claude-3-haiku", False),
    ({"ends_with": ":free"}, "llama-3:free", True),
    ({"contains": "claude-v2"}, "anthropic.claude-v2:1", True),
    ({"regex": r"^o\d(-mini)?$"}, "o3-mini", True),
    ({"regex": r"^o\d(-mini)?$"}, "o3-pro", False),
    ({"or": [{"equals": "a"}, {"starts_with": "b"}]}, "bee", True),
    ({"or": [{"equals": "a"}, {"starts_with": "b"}]}, "cee", False),
    ({"and": [{"starts_with": "gemini"}, {"contains": "flash"}]}, "gemini-2.5-flash", True),
    ({"and": [{"starts_with": "gemini"}, {"contains": "flash"}]}, "gemini-2.5-pro", False),
])
def test_matches(rule: dict[str, Any], name: str, matches: bool) -> None:
    assert MatchRule.parse(rule).matches(name) is matches


@pytest.mark.parametrize(("rule", "message"), [
    ({}, "one clause"),
    ({"equals": "a", "regex": "b"}, "one clause"),
    ({"glob": "a*"}, "unknown clause 'glob'"),
    ({"equals": ""}, "non-empty string"),
    ({"or": []}, "non-empty list"),
    ({"regex": "("}, "match.regex"),
    ({"or": [{"or": [{"or": [{"or": [{"or": [{"or": [{"or": [{"or": [{"or": [
        {"equals": "a"}]}]}]}]}]}]}]}]}]}, "nested deeper"),
])
def test_bad_rules_are_refused_by_name(rule: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidPrice, match=message):
        MatchRule.parse(rule)


def test_split_exact_turns_equals_into_aliases() -> None:
    exact, rest = split_exact(MatchRule.parse({"or": [
        {"equals": "gpt-5"}, {"equals": "gpt-5-2025-08-07"}, {"starts_with": "gpt-5-chat"}]}))
    assert exact == ["gpt-5", "gpt-5-2025-08-07"]
    assert rest == MatchRule("starts_with", "gpt-5-chat")
    assert split_exact(MatchRule("equals", "x")) == (["x"], None)
    assert split_exact(MatchRule("regex", "x")) == ([], MatchRule("regex", "x"))


leaves = st.builds(lambda kind, value: {kind: value},
                   st.sampled_from(["equals", "starts_with", "ends_with", "contains"]),
                   st.text("abc-.0", min_size=1, max_size=5))
rules = st.recursive(leaves, lambda children: st.builds(
    lambda kind, items: {kind: items}, st.sampled_from(["or", "and"]),
    st.lists(children, min_size=1, max_size=3)), max_leaves=6)


@settings(deadline=None, max_examples=200)
@given(rules, st.text("abc-.0", max_size=8))
def test_json_round_trip_keeps_the_meaning(rule: dict[str, Any], name: str) -> None:
    parsed = MatchRule.parse(rule)
    again = MatchRule.parse(parsed.to_json())
    assert again == parsed
    assert again.matches(name) == parsed.matches(name)
