"""The kit's one parser: what each kind of field accepts as text, what it refuses (in the engine's
words), and that an editor's text reads back as the value it shows, for every field declared."""

from __future__ import annotations

import pytest

from app.fields import UNSET, Problem, editor_text, parse, placeholder
from engine.fields import REQUIRED, Field
from engine.graph import OPS
from engine.spec import SECTIONS, TOP_LEVEL


def field(kind: str, default=None, **kwargs) -> Field:
    return Field("x", kind, default, **kwargs)


@pytest.mark.parametrize(
    ("kind", "text", "value"),
    [
        ("int", "3", 3),
        ("int", " 42 ", 42),
        ("int", "1e3", 1000),  # a whole number written as a float
        ("int", "1_000", 1000),
        ("int", "2.5", 2.5),  # a number, for the engine to refuse as not whole
        ("float", "3e-4", 0.0003),
        ("float", "0.", 0.0),
        ("float", "-1", -1),
        ("ints", "1, 28, 28", [1, 28, 28]),
        ("ints", "1x28x28", [1, 28, 28]),  # only the inspector took this before
        ("ints", "1×28×28", [1, 28, 28]),
        ("ints", "[1, 28, 28]", [1, 28, 28]),
        ("ints", "(1 28 28)", [1, 28, 28]),
        ("ints", "64", [64]),
        ("floats", "0.9, 0.999", [0.9, 0.999]),
        ("floats", "0.9 0.999", [0.9, 0.999]),
        ("bool", "true", True),
        ("bool", "Off", False),
        ("str", "  digits-cnn ", "digits-cnn"),
        ("any", "[1, 2]", [1, 2]),
        ("any", "4", 4),
        ("any", "1:4", "1:4"),  # not JSON: the text itself
        ("any", '"2"', "2"),
        ("any", '["fc", "head"]', ["fc", "head"]),
    ],
)
def test_text_becomes_a_value_of_the_fields_kind(kind, text, value):
    parsed = parse(field(kind), text)
    assert parsed == value and type(parsed) is type(value)


@pytest.mark.parametrize(
    ("kind", "text"),
    [
        ("int", "fast"),
        ("int", "0x10"),
        ("float", "nan"),
        ("float", "inf"),
        ("float", "1,5"),
        ("ints", "1, a"),
        ("floats", "[]"),
        ("bool", "maybe"),
    ],
)
def test_text_that_is_no_value_of_the_kind_is_a_problem_in_the_engines_words(kind, text):
    f = field(kind, min=0)
    problem = parse(f, text)
    assert isinstance(problem, Problem)
    assert problem.value == text  # kept as typed
    assert problem.message == f.check(text)[1]  # what the engine says of that value


def test_choices_and_widget_values():
    f = field("choice", choices=("sgd", "adam"))
    assert parse(f, "adam") == "adam"
    assert parse(f, "rmsprop") == Problem("rmsprop", f.check("rmsprop")[1])
    numbers = field("choice", choices=(0, 1))
    assert parse(numbers, "0") == 0  # a falsy choice is still a choice
    # a check box or combo box hands over values, not text: they pass through
    assert parse(field("bool"), True) is True
    assert parse(f, "sgd") == "sgd" and parse(f, UNSET) is UNSET


def test_empty_text_means_the_default():
    for kind in ("int", "float", "str", "ints", "any", "choice"):
        assert parse(field(kind), "") is UNSET
        assert parse(field(kind), "   ") is UNSET


def _declared_defaults():
    """(where, field) for every spec field and op param that has a default value."""
    declared = [(f"{s}.{f.name}", f) for s, fields in {"": TOP_LEVEL, **SECTIONS}.items() for f in fields]
    declared += [(f"{op.name}.{f.name}", f) for op in OPS.values() for f in op.params]
    return [(w, f) for w, f in declared if not f.required and f.default is not None and f.kind != "graph"]


@pytest.mark.parametrize(("where", "f"), _declared_defaults(), ids=[w for w, _ in _declared_defaults()])
def test_every_declared_default_reads_back_from_its_editor_text(where, f):
    text = editor_text(f, f.default)
    if f.default == "":
        assert parse(f, text) is UNSET  # an empty editor: the default, which is empty
    else:
        assert parse(f, text) == f.default, (where, text)
        assert f.check(parse(f, text))[1] is None, where


@pytest.mark.parametrize(
    ("kind", "value"),
    [
        ("float", 0.1),
        ("float", 1e-05),
        ("float", 0.00123456789012),  # every digit kept: an edit elsewhere must not round it
        ("float", 2.0),
        ("int", 7),
        ("int", 3.0),
        ("floats", [0.9, 0.999]),
        ("ints", [1, 28, 28]),
        ("any", [1, 2]),
        ("any", {"a": 1}),
        ("any", "1:4"),
        ("any", "2"),  # a string that reads as a number is written as JSON: '"2"'
        ("str", "hello world"),
        ("bool", False),
    ],
)
def test_editor_text_round_trips(kind, value):
    f = field(kind)
    assert parse(f, editor_text(f, value)) == value


def test_placeholders_say_what_empty_means():
    assert placeholder(field("float", 1e-3)) == "default 0.001"
    assert placeholder(field("floats", [0.9, 0.999])) == "default 0.9, 0.999"
    assert placeholder(field("int", None, optional=True)) == "auto"
    assert placeholder(field("ints", None, optional=True)) == "e.g. 1, 28, 28"
    assert placeholder(field("str", REQUIRED)) == ""
