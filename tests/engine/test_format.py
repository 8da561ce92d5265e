"""How numbers and tables read: engine.format (shared by the GUI and the CLI) and the terminal
table printer."""

import time

import pytest

from engine import format as fmt
from engine.textable import Col, render


@pytest.mark.parametrize(
    "v, text",
    [
        (0.019013814628124237, "0.01901"),
        (0.003, "0.003"),
        (3e-05, "3e-05"),
        (0.00012346, "0.0001235"),
        (1.0, "1"),
        (327.04, "327"),
        (9663.49, "9,663.5"),
        (686400.0, "686,400"),
        (2_500_000.0, "2.5e+06"),
        (-0.25, "-0.25"),
        (float("nan"), "nan"),
        (7, "7"),
        (None, ""),
    ],
)
def test_value(v, text):
    assert fmt.value(v) == text


def test_counts_sizes_durations_and_times():
    assert [fmt.count(n) for n in (547, 1056, 151_498, 2_683_520, 3e12, None)] == [
        "547", "1.06k", "151k", "2.68M", "3T", "—",
    ]  # fmt: skip
    assert [fmt.size(n) for n in (612 * 1024, 1_600_000, 3 * 2**30)] == ["612.0 KiB", "1.53 MiB", "3.00 GiB"]
    assert [fmt.duration(s) for s in (4.4, 185, 7620, None)] == ["4 s", "3 min 05 s", "2 h 07 min", ""]
    assert [fmt.clock(s) for s in (65, 7660, None)] == ["1:05", "2:07:40", "—"]
    t = time.mktime((2026, 3, 4, 5, 6, 7, 0, 0, -1))
    assert fmt.timestamp(t) == "2026-03-04 05:06" and fmt.timestamp(t, seconds=True) == "2026-03-04 05:06:07"
    assert fmt.timestamp(None) == ""


def test_a_named_field_reads_by_what_it_counts():
    assert fmt.field("summary:params", 151_498) == "151k"
    assert fmt.field("model.flops", 2_683_520.0) == "2.68M"
    assert fmt.field("optim.lr", 0.0030000001) == "0.003"
    assert fmt.field("train.batch_size", 64) == "64"
    assert fmt.field("hardware.cpu_offload", True) == "yes"
    assert fmt.field("optim.name", "adamw") == "adamw" and fmt.field("x", None) == ""


def test_table_pads_columns_and_right_aligns_numbers():
    text = render([{"id": 2, "name": "b"}, {"id": 10, "name": "alpha"}], [Col("id", "#", right=True), "name"])
    assert text.splitlines() == [" #  name", "--  -----", " 2  b", "10  alpha"]
    assert render([], ["id"]) == "(none)"


def test_wrapped_columns_fit_the_width_and_keep_every_word():
    words = "the quick brown fox jumps over the lazy dog and keeps running far beyond the fence".split()
    rows = [
        {"op": f"Op{i}", "help": " ".join(words[i:] + words[:i]), "params": "a=1, b=2, c=3"} for i in range(5)
    ]
    cols = ["op", Col("params", wrap=True), Col("help", wrap=True)]
    wide = render(rows, cols, width=200).splitlines()
    assert len(wide) == 2 + len(rows)  # room enough: one line per row
    narrow = render(rows, cols, width=40).splitlines()
    assert max(map(len, narrow)) <= 40 and len(narrow) > len(wide)
    start = narrow[0].index("help")
    helps, current = [], []
    for line in narrow[2:]:
        if line[:3].strip() and current:  # a new row begins
            helps.append(" ".join(current))
            current = []
        current.append(line[start:].strip())
    helps.append(" ".join(current))
    assert helps == [r["help"] for r in rows]


def test_a_word_longer_than_the_room_is_never_cut():
    long = "in_channels=None,"
    text = render([{"a": "x" * 30, "b": f"{long} {long}"}], ["a", Col("b", wrap=True)], width=20)
    assert all(long in line for line in text.splitlines()[2:])
