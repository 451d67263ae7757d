"""Label selectors: the grammar the API server accepts, evaluation, and the fix we tell people."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from airflow_provider_nsdiscovery.discovery.selector import (
    Requirement,
    SelectorError,
    parse_selector,
)


def clauses(text: str) -> list[tuple[str, str, tuple[str, ...]]]:
    return [(r.key, r.operator, r.values) for r in parse_selector(text).requirements]


# parsing ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("airflow-enabled=true", [("airflow-enabled", "=", ("true",))]),
        ("airflow-enabled==true", [("airflow-enabled", "=", ("true",))]),
        ("team!=c", [("team", "!=", ("c",))]),
        ("team in (a,b)", [("team", "in", ("a", "b"))]),
        ("team notin (a, b)", [("team", "notin", ("a", "b"))]),
        ("team", [("team", "exists", ())]),
        ("!team", [("team", "!", ())]),
        ("tier>3", [("tier", ">", ("3",))]),
        ("tier<10", [("tier", "<", ("10",))]),
        ("example.com/team=a", [("example.com/team", "=", ("a",))]),
        ("team=", [("team", "=", ("",))]),
        (
            "airflow-enabled=true,team in (a,b)",
            [("airflow-enabled", "=", ("true",)), ("team", "in", ("a", "b"))],
        ),
        (
            " airflow-enabled = true , !legacy , tier>2 ",
            [("airflow-enabled", "=", ("true",)), ("legacy", "!", ()), ("tier", ">", ("2",))],
        ),
    ],
)
def test_selector_clauses_parse_to_requirements(
    text: str, expected: list[tuple[str, str, tuple[str, ...]]]
) -> None:
    assert clauses(text) == expected


def test_parsed_selector_keeps_the_text_it_was_given() -> None:
    assert parse_selector("airflow-enabled=true,team in (a,b)").text == "airflow-enabled=true,team in (a,b)"


def test_double_equals_and_single_equals_parse_to_the_same_requirement() -> None:
    assert parse_selector("a==b").requirements == parse_selector("a=b").requirements


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "-team=a",
        "team_=a",
        "a" * 64 + "=x",
        "/team=a",
        "Example.com/team=a",
        "example..com/team=a",
        "a/b/c=d",
        "team=" + "v" * 64,
        "team=-a",
        "team in (a,b_)",
        "a in b",
        "team in (a,b",
        "team in a,b)",
        "x>y",
        "x<",
        "team=a=b",
        "!team=a",
        "a,",
    ],
)
def test_invalid_selector_raises_selector_error_quoting_the_selector(text: str) -> None:
    with pytest.raises(SelectorError) as caught:
        parse_selector(text)
    assert repr(text) in str(caught.value)


def test_selector_error_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="empty"):
        parse_selector("")


def test_value_of_exactly_63_characters_is_accepted() -> None:
    assert clauses("team=" + "v" * 63) == [("team", "=", ("v" * 63,))]


@pytest.mark.parametrize("text", ["tier>-5", "tier<\u0663", "tier>99999999999999999999"])
def test_greater_or_less_than_value_the_api_server_rejects_is_rejected(text: str) -> None:
    try:
        parse_selector(text)
    except SelectorError:
        return
    raise AssertionError(f"parse_selector accepted {text!r}")


@pytest.mark.parametrize(
    ("text", "values"),
    [
        ("team in ()", ("",)),
        ("team in (a,)", ("a", "")),
        ("team in (,a)", ("a", "")),
        ("team in (a,,b)", ("a", "b", "")),
        ("team in (a,,)", ("a", "")),
        ("team in (a,a)", ("a",)),
    ],
)
def test_empty_slot_in_a_value_list_is_the_empty_value_as_on_the_api_server(
    text: str, values: tuple[str, ...]
) -> None:
    (requirement,) = parse_selector(text).requirements
    assert requirement.values == values
    assert parse_selector(str(requirement)).requirements == (requirement,)


def test_in_with_no_values_selects_the_empty_label_value_only() -> None:
    selector = parse_selector("team in ()")
    assert selector.matches({"team": ""})
    assert not selector.matches({"team": "a"})
    assert not selector.matches({})


@pytest.mark.parametrize("separator", [" ", "\t", "\r", "\n"])
def test_space_tab_cr_and_lf_separate_tokens(separator: str) -> None:
    text = separator.join(["", "team", "in", "(a", ",b)", ",", "x", "=", "y", ""])
    assert clauses(text) == [("team", "in", ("a", "b")), ("x", "=", ("y",))]


@pytest.mark.parametrize("space", ["\f", "\v", "\u00a0", "\u2003", "\u3000"])
def test_other_unicode_whitespace_is_part_of_a_word_and_so_rejected(space: str) -> None:
    with pytest.raises(SelectorError, match="must be"):
        parse_selector(f"team{space}=a")


def test_nul_where_a_token_would_start_ends_the_selector() -> None:
    assert clauses("team=a \0 )(!") == [("team", "=", ("a",))]


def test_nul_inside_a_word_splits_it() -> None:
    with pytest.raises(SelectorError, match="found 'b' at character 8"):
        parse_selector("team=a\0b")


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("a,", "expected another requirement after ',', found the end of the selector"),
        ("a b", "expected an operator after key 'a' (one of =, ==, !=, in, notin, >, <)"),
        ("!a=b", "'!a' means 'no label a' and takes no operator or value; to exclude one value write"),
        ("a in b", "'a in' needs its values in parentheses, e.g. 'a in (a,b)', found 'b' at character 6"),
        ("a in (x", "expected a value, ',' or ')' in the value list of 'a in', found the end"),
        ("a in (x y)", "expected ',' or ')' between the values of 'a in', found 'y' at character 9"),
        ("a=b=c", "expected ',' or the end of the selector after 'a=b', found '=' at character 4"),
        ("a/b/c", "key 'a/b/c' has more than one '/'"),
        ("/a", "key '/a' has an empty prefix before '/'"),
        ("a/", "key 'a/' has an empty name after '/'"),
        ("Example.com/a", "has prefix 'Example.com', which is not a lowercase DNS subdomain"),
        ("p" * 254 + "/a", "has a prefix of 254 characters; at most 253 are allowed"),
        ("a" * 64, "has a name of 64 characters; at most 63 are allowed"),
        ("team_=a", "key 'team_' has name 'team_', which must be letters, digits"),
        ("a=" + "v" * 64, "has 64 characters; at most 63 are allowed"),
        ("a=b_", "value 'b_' of key 'a' must be empty or letters, digits"),
        (
            "a>-1",
            "'a>-1' compares numbers, so its value must be a whole number from 0 to 9223372036854775807",
        ),
        ("a>9223372036854775808", "must be a whole number from 0 to 9223372036854775807 (e.g. 'a>3')"),
    ],
)
def test_invalid_selector_error_says_precisely_what_is_wrong(text: str, reason: str) -> None:
    with pytest.raises(SelectorError) as caught:
        parse_selector(text)
    assert str(caught.value).startswith(f"invalid label selector {text!r}: ")
    assert reason in str(caught.value)


# evaluation ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "labels", "expected"),
    [
        ("airflow-enabled=true", {"airflow-enabled": "true"}, True),
        ("airflow-enabled=true", {"airflow-enabled": "false"}, False),
        ("airflow-enabled=true", {}, False),
        ("team!=c", {}, True),
        ("team!=c", {"team": "a"}, True),
        ("team!=c", {"team": "c"}, False),
        ("team in (a,b)", {"team": "b"}, True),
        ("team in (a,b)", {"team": "c"}, False),
        ("team in (a,b)", {}, False),
        ("team notin (a,b)", {}, True),
        ("team notin (a,b)", {"team": "c"}, True),
        ("team notin (a,b)", {"team": "a"}, False),
        ("team", {"team": ""}, True),
        ("team", {"other": "x"}, False),
        ("!team", {}, True),
        ("!team", {"team": "a"}, False),
        ("tier>3", {"tier": "4"}, True),
        ("tier>3", {"tier": "3"}, False),
        ("tier>3", {"tier": "high"}, False),
        ("tier>3", {}, False),
        ("tier<3", {"tier": "2"}, True),
        ("tier<3", {"tier": "3"}, False),
        ("airflow-enabled=true,team in (a,b)", {"airflow-enabled": "true", "team": "a"}, True),
        ("airflow-enabled=true,team in (a,b)", {"airflow-enabled": "true", "team": "c"}, False),
        ("airflow-enabled=true,team in (a,b)", {"team": "a"}, False),
        ("example.com/team=a", {"example.com/team": "a"}, True),
        ("example.com/team=a", {"team": "a"}, False),
    ],
)
def test_selector_matches_labels_like_the_api_server(
    text: str, labels: dict[str, str], expected: bool
) -> None:
    assert parse_selector(text).matches(labels) is expected


def test_first_failure_is_the_first_failing_clause_in_selector_order() -> None:
    selector = parse_selector("airflow-enabled=true,team in (a,b)")
    enabled, team = selector.requirements
    assert selector.first_failure({}) == enabled
    assert selector.first_failure({"team": "c"}) == enabled
    assert selector.first_failure({"airflow-enabled": "true", "team": "c"}) == team


def test_first_failure_is_none_when_every_clause_matches() -> None:
    selector = parse_selector("airflow-enabled=true,team in (a,b)")
    assert selector.first_failure({"airflow-enabled": "true", "team": "b"}) is None


@pytest.mark.parametrize(
    ("text", "rendered"),
    [
        ("team", "team"),
        ("!team", "!team"),
        ("team in (a, b)", "team in (a,b)"),
        ("team==a", "team=a"),
        ("tier>3", "tier>3"),
    ],
)
def test_requirement_renders_in_selector_syntax(text: str, rendered: str) -> None:
    assert str(parse_selector(text).requirements[0]) == rendered


# explanations ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "labels", "reason", "fix"),
    [
        (
            "airflow-enabled=true",
            {},
            "it lacks label airflow-enabled=true",
            "kubectl label namespace team-b airflow-enabled=true",
        ),
        (
            "airflow-enabled=true",
            {"airflow-enabled": "false"},
            "its label airflow-enabled=false does not satisfy 'airflow-enabled=true'",
            "kubectl label namespace team-b airflow-enabled=true --overwrite",
        ),
        ("team in (a,b)", {}, "it lacks label team", "kubectl label namespace team-b team=a"),
        (
            "team in (a,b)",
            {"team": "c"},
            "its label team=c does not satisfy 'team in (a,b)'",
            "kubectl label namespace team-b team=a --overwrite",
        ),
        ("team", {}, "it lacks label team", "kubectl label namespace team-b team=<value>"),
        (
            "team!=c",
            {"team": "c"},
            "its label team=c is excluded by 'team!=c'",
            "kubectl label namespace team-b team-",
        ),
        (
            "team notin (c,d)",
            {"team": "d"},
            "its label team=d is excluded by 'team notin (c,d)'",
            "kubectl label namespace team-b team-",
        ),
        (
            "!legacy",
            {"legacy": "yes"},
            "its label legacy=yes is excluded by '!legacy'",
            "kubectl label namespace team-b legacy-",
        ),
        ("tier>3", {}, "it lacks label tier", "kubectl label namespace team-b tier=4"),
        (
            "tier>3",
            {"tier": "2"},
            "its label tier=2 does not satisfy 'tier>3'",
            "kubectl label namespace team-b tier=4 --overwrite",
        ),
        (
            "tier<3",
            {"tier": "5"},
            "its label tier=5 does not satisfy 'tier<3'",
            "kubectl label namespace team-b tier=2 --overwrite",
        ),
    ],
)
def test_explain_gives_reason_and_kubectl_fix(
    text: str, labels: dict[str, str], reason: str, fix: str
) -> None:
    requirement = parse_selector(text).requirements[0]
    assert not requirement.matches(labels)
    assert requirement.explain("team-b", labels) == (reason, fix)


def apply_kubectl_label_fix(fix: str, namespace: str, labels: dict[str, str]) -> dict[str, str]:
    """What ``kubectl label namespace <ns> k=v [--overwrite]`` / ``k-`` does to the labels."""
    words = fix.split()
    assert words[:4] == ["kubectl", "label", "namespace", namespace], fix
    updated = dict(labels)
    for word in words[4:]:
        if word == "--overwrite":
            continue
        if word.endswith("-") and "=" not in word:
            updated.pop(word[:-1], None)
        else:
            key, _, value = word.partition("=")
            assert "--overwrite" in words or key not in labels, f"kubectl would refuse {fix!r}"
            updated[key] = "x" if value == "<value>" else value
    return updated


_values = st.sampled_from(["a", "b", "c", "true", "false", "0", "1", "7", "12", "high"])
_requirements = st.one_of(
    st.builds(lambda v: Requirement("team", "=", (v,)), _values),
    st.builds(lambda v: Requirement("team", "!=", (v,)), _values),
    st.builds(lambda vs: Requirement("team", "in", tuple(vs)), st.lists(_values, min_size=1, max_size=3)),
    st.builds(lambda vs: Requirement("team", "notin", tuple(vs)), st.lists(_values, min_size=1, max_size=3)),
    st.just(Requirement("team", "exists")),
    st.just(Requirement("team", "!")),
    st.builds(lambda n: Requirement("team", ">", (str(n),)), st.integers(0, 50)),
    st.builds(lambda n: Requirement("team", "<", (str(n),)), st.integers(1, 50)),
)


@settings(database=None)
@given(requirement=_requirements, labels=st.dictionaries(st.sampled_from(["team", "other"]), _values))
def test_running_the_suggested_kubectl_fix_makes_the_requirement_match(
    requirement: Requirement, labels: dict[str, str]
) -> None:
    if requirement.matches(labels):
        return
    _, fix = requirement.explain("team-b", labels)
    assert requirement.matches(apply_kubectl_label_fix(fix, "team-b", labels))
