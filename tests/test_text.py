from __future__ import annotations

from kubemeta.text import LIMIT, clip


def test_short_text_is_kept() -> None:
    assert clip("connection refused") == "connection refused"


def test_long_text_is_cut_with_a_mark() -> None:
    assert clip("x" * (LIMIT + 50)) == "x" * LIMIT + "..."


def test_the_tail_is_kept_when_asked() -> None:
    assert clip("a" * 500 + "cause", 10, tail=True) == "...aaaaacause"


def test_the_result_is_one_line() -> None:
    assert clip("Error:\n  disk full\r\n") == "Error: disk full"
