"""Variable interpolation and `.env` parsing, as Compose does them."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stackgen.composefile.env import InterpolationError, parse_dotenv, substitute
from stackgen.composefile.yaml_loader import ComposeError

ENV = {"SET": "value", "EMPTY": ""}


def sub(text: str) -> str:
    return substitute(text, ENV.get)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("${SET}", "value"),
        ("$SET", "value"),
        ("$SET/path", "value/path"),
        ("${UNSET}", ""),
        ("${UNSET:-default}", "default"),
        ("${EMPTY:-default}", "default"),
        ("${EMPTY-default}", ""),
        ("${UNSET-default}", "default"),
        ("${SET:-default}", "value"),
        ("${SET:+alt}", "alt"),
        ("${EMPTY:+alt}", ""),
        ("${EMPTY+alt}", "alt"),
        ("${UNSET+alt}", ""),
        ("${UNSET:-${SET}}", "value"),
        ("${UNSET:-pre-${SET}-post}", "pre-value-post"),
        ("$$SET", "$SET"),
        ("$${SET}", "${SET}"),
        ("cost $$5", "cost $5"),
        ("a$", "a$"),
        ("a$1b", "a$1b"),
        ("no variables", "no variables"),
    ],
)
def test_substitute(text: str, expected: str) -> None:
    assert sub(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("${UNSET:?must be set}", "required variable UNSET is missing a value: must be set"),
        ("${EMPTY:?must be set}", "required variable EMPTY is missing a value: must be set"),
        ("${UNSET?}", "required variable UNSET is missing a value"),
        ("${}", "invalid interpolation format"),
        ("${SET", "invalid interpolation format"),
        ("${SET!x}", "invalid interpolation format"),
    ],
)
def test_substitute_errors(text: str, message: str) -> None:
    with pytest.raises(InterpolationError, match=message.replace("(", r"\(")):
        sub(text)


def test_empty_is_set_for_question_mark_without_colon() -> None:
    assert sub("${EMPTY?never}") == ""


@given(st.text(alphabet=st.characters(blacklist_characters="$")))
def test_text_without_dollar_is_unchanged(text: str) -> None:
    assert sub(text) == text


@given(st.text())
def test_doubled_dollars_always_come_back_literal(text: str) -> None:
    assert sub(text.replace("$", "$$")) == text


def test_parse_dotenv_quoting_comments_and_expansion() -> None:
    text = """\
# a comment
PLAIN=value
SPACED = spaced out   # inline comment
export EXPORTED=yes
SINGLE='no $PLAIN expansion # not a comment'
DOUBLE="expanded $PLAIN\\nsecond line"
MULTI="first
second"
HASH=abc#def
EMPTY=
BARE
"""
    values = parse_dotenv(text, {"FROM_SHELL": "shell"}.get)
    assert values == {
        "PLAIN": "value",
        "SPACED": "spaced out",
        "EXPORTED": "yes",
        "SINGLE": "no $PLAIN expansion # not a comment",
        "DOUBLE": "expanded value\nsecond line",
        "MULTI": "first\nsecond",
        "HASH": "abc#def",
        "EMPTY": "",
        "BARE": None,
    }


def test_parse_dotenv_unterminated_quote_names_the_line() -> None:
    with pytest.raises(ComposeError) as err:
        parse_dotenv('OK=1\nBAD="never closed\n', None, "prod.env")
    assert (err.value.file, err.value.line) == ("prod.env", 2)
