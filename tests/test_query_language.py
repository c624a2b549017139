"""The query language: every operator, clear errors that point at the token, never a crash."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from heron.search.engine import QueryError
from heron.search.query import FIELDS, QuerySyntaxError, parse_query
from heron.store.base import UNIT_COLUMNS
from heron.store.filters import And, Compare, Contains, Field, In, Not, Or, Prefix
from heron.store.lance_sql import to_lance_sql


def _home(path: str) -> str:
    return path.replace("~", "/home/u", 1) if path.startswith("~") else path


def test_words_phrases_and_every_filter_operator() -> None:
    parsed = parse_query(
        "kind:page,slide format:PDF width>=800 height<600 bytes>10_000 modified>=2024-05 "
        'indexed<2025 path:~/Papers -kind:frame model!=x "exact  phrase" free words',
        home=_home,
    )
    assert parsed.words == ["free", "words"] and parsed.phrases == ["exact phrase"]
    assert parsed.text == "exact phrase free words"
    parts = _flatten(parsed.filter)
    assert parts[0] == In("kind", ("page", "slide"))
    assert parts[1] == Compare("format", "=", "pdf")  # formats are stored lower-case
    assert parts[2] == Compare("width", ">=", 800)
    assert parts[3] == Compare("height", "<", 600)
    assert parts[4] == Compare("bytes", ">", 10_000)
    assert parts[5] == Compare("modified_at", ">=", datetime(2024, 5, 1, tzinfo=UTC))
    assert parts[6] == Compare("indexed_at", "<", datetime(2025, 1, 1, tzinfo=UTC))
    assert parts[7] == Or(Compare("path", "=", "/home/u/Papers"), Prefix("path", "/home/u/Papers/"))
    assert parts[8] == Not(Compare("kind", "=", "frame"))
    assert parts[9] == Not(Compare("model", "=", "x"))
    sql = to_lance_sql(parsed.filter, UNIT_COLUMNS)  # every node renders for the backend
    assert "starts_with(`path`, '/home/u/Papers/')" in sql


def test_tags_are_normalised_and_any_of_several_matches() -> None:
    parsed = parse_query("tag:Holiday,猫 -tag:draft beach")
    tagged, untagged = _flatten(parsed.filter)
    assert tagged == Or(Contains("tags", " holiday "), Contains("tags", " 猫 "))
    assert untagged == Not(Contains("tags", " draft "))
    assert parsed.words == ["beach"]


def _flatten(node: object) -> list[object]:
    if isinstance(node, And):
        return [*_flatten(node.left), *_flatten(node.right)]
    return [node]


def test_text_with_colons_stays_text_and_escapes_work() -> None:
    assert parse_query("see https://example.org/a:b now").words == [
        "see",
        "https://example.org/a:b",
        "now",
    ]
    assert parse_query("note: this").words == ["note:", "this"]
    assert parse_query(r"kind\:page").words == ["kind:page"]
    assert parse_query('"say \\"hi\\""').phrases == ['say "hi"']
    assert parse_query('path:"/My Photos/2023"').filter == (
        (Field("path") == "/My Photos/2023") | Field("path").startswith("/My Photos/2023/")
    )
    assert parse_query("海滩上的狗 kind:image").words == ["海滩上的狗"]


@pytest.mark.parametrize(
    ("query", "message", "position"),
    [
        ("dog kind:pages", "'pages' is not a kind", 9),
        ("knd:page", "unknown field 'knd'", 0),
        ("width>=wide", "takes a whole number", 7),
        ("modified>=May", "takes a date", 10),
        ("kind>page", "'kind' takes", 0),
        ('a "never closed', "never closed", 2),
        ("-dog", "a minus excludes a field", 0),
        ("tag:a\x01b", "control", 4),
        ("colour:warm", "not a colour", 7),
        ("kind:", "needs a value", 5),
        ("format:jpeg,,png", "empty value", 7),
    ],
)
def test_errors_name_the_token_and_point_at_it(query: str, message: str, position: int) -> None:
    with pytest.raises(QuerySyntaxError) as caught:
        parse_query(query)
    error = caught.value
    assert message in error.detail and error.position == position
    assert isinstance(error, QueryError)  # interfaces show it as one user error
    caret_line = str(error).splitlines()[-1]
    assert caret_line.index("^") - 2 == position


def test_the_caret_lands_under_wide_characters() -> None:
    with pytest.raises(QuerySyntaxError) as caught:
        parse_query("海滩 kind:x")
    lines = str(caught.value).splitlines()
    assert lines[-1].index("^") == 2 + 4 + 1 + 5  # two wide characters are four columns


@settings(max_examples=400, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.text(max_size=12),
            st.sampled_from(
                [*FIELDS, "kind", "colour", ":", ">=", "<", "!=", '"', "-", "\\", ",", " ", "~"]
            ),
        ),
        max_size=12,
    ).map("".join)
)
def test_any_input_gives_a_query_or_a_clear_error(query: str) -> None:
    try:
        parsed = parse_query(query, home=_home)
    except QuerySyntaxError as error:
        assert 0 <= error.position <= len(query) and error.detail
        return
    if parsed.filter is not None:
        to_lance_sql(parsed.filter, UNIT_COLUMNS)  # and the backend can render what it gives
    assert all(w and not w.isspace() for w in parsed.words)
