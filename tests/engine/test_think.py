from __future__ import annotations

import pytest

from inference.engine.protocols.think import ThinkSplitter, split_think


def run(chunks: list[str], *, prefilled: bool = False) -> tuple[str, str]:
    splitter = ThinkSplitter(prefilled=prefilled)
    pieces = [p for chunk in chunks for p in splitter.feed(chunk)] + splitter.flush()
    reasoning = "".join(text for kind, text in pieces if kind == "reasoning")
    content = "".join(text for kind, text in pieces if kind == "text")
    return reasoning, content


def every_split(text: str) -> list[list[str]]:
    return [[text[:i], text[i:j], text[j:]] for i in range(len(text) + 1) for j in range(i, len(text) + 1)]


@pytest.mark.parametrize("chunks", every_split("<think>\nplan it</think>\n\nThe answer"))
def test_tags_split_anywhere_across_chunks_never_leak(chunks: list[str]) -> None:
    assert run(chunks) == ("plan it", "The answer")


@pytest.mark.parametrize("chunks", every_split("plan it\n</think>\n\nDone"))
def test_a_prefilled_stream_starts_inside_the_block(chunks: list[str]) -> None:
    assert run(chunks, prefilled=True) == ("plan it\n", "Done")


@pytest.mark.parametrize("chunks", every_split("1 <2 <<think>a <b</thin</think>c <"))
def test_stray_angle_brackets_next_to_tags_split_anywhere(chunks: list[str]) -> None:
    assert run(chunks) == ("a <b</thin", "1 <2 <c <")


def test_text_that_only_looks_like_a_tag_start_is_kept() -> None:
    assert run(["a <th", "ere b <", ""]) == ("", "a <there b <")


def test_a_stray_closing_tag_is_dropped_from_content() -> None:
    assert run(["oops</think>Answer"]) == ("", "oopsAnswer")


def test_several_think_blocks() -> None:
    assert run(["<think>a</think>x<think>b</think>y"]) == ("ab", "xy")


def test_cancel_prefill_before_any_text_makes_output_plain() -> None:
    splitter = ThinkSplitter(prefilled=True)
    splitter.cancel_prefill()
    assert splitter.feed("hello") == [("text", "hello")]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("reasoning here</think>\n\nanswer", ("reasoning here", "answer")),  # no opening tag: prefilled
        ("<think>r</think>answer", ("r", "answer")),
        ("plain answer", ("", "plain answer")),
    ],
)
def test_split_think_on_whole_answers(text: str, expected: tuple[str, str]) -> None:
    assert split_think(text) == expected
