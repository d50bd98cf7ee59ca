from __future__ import annotations

import pytest

from inference.engine.protocols.sse import LineSplitter, SSEEvent, SSEParser, aiter_sse, aiter_text_lines


async def _chunks(data: bytes, size: int):
    for i in range(0, len(data), size):
        yield data[i : i + size]


async def events_of(data: bytes, size: int = 1 << 20) -> list[SSEEvent]:
    return [e async for e in aiter_sse(_chunks(data, size))]


STREAM = "\ufeffdata: one\n\n: ping - 2026-11-25\n\nevent: update\nid: 7\ndata: {\"a\":\ndata: 1}\n\ndata:x\n\n"


@pytest.mark.parametrize("newline", ["\n", "\r\n", "\r"])
@pytest.mark.parametrize("size", [1, 2, 3, 7, 1 << 20])
async def test_it_parses_every_line_ending_at_every_chunk_boundary(newline: str, size: int) -> None:
    events = await events_of(STREAM.replace("\n", newline).encode(), size)
    assert events == [
        SSEEvent("message", "one"),
        SSEEvent("update", '{"a":\n1}', "7"),  # multi-line data joined with \n (docs/protocols.md E-4)
        SSEEvent("message", "x", "7"),  # id persists (E-5)
    ]


async def test_comments_and_blank_keep_alives_are_not_events() -> None:
    assert await events_of(b": keep-alive\n\n\n\n:\n\ndata: [DONE]\n\n") == [SSEEvent("message", "[DONE]")]


async def test_an_event_without_data_is_not_dispatched_but_its_id_is_kept() -> None:
    assert await events_of(b"id: 5\nevent: prime\n\ndata: d\n\n") == [SSEEvent("message", "d", "5")]


async def test_only_one_leading_space_is_dropped_and_a_bare_field_name_has_an_empty_value() -> None:
    assert await events_of(b"data:  two spaces\n\ndata\ndata\n\n") == [
        SSEEvent("message", " two spaces"),
        SSEEvent("message", "\n"),
    ]


async def test_a_trailing_event_without_blank_line_is_discarded() -> None:
    assert await events_of(b"data: done\n\ndata: partial") == [SSEEvent("message", "done")]


async def test_unicode_line_separators_inside_data_do_not_split_lines() -> None:
    payload = '{"t": "a\u2028b\u0085c"}'
    assert await events_of(f"data: {payload}\n\n".encode()) == [SSEEvent("message", payload)]


async def test_multibyte_characters_split_across_chunks_decode() -> None:
    assert await events_of("data: héllo 🌍\n\n".encode(), 1) == [SSEEvent("message", "héllo 🌍")]


async def test_text_lines_yield_the_unterminated_last_line() -> None:
    assert [line async for line in aiter_text_lines(_chunks(b'{"a":1}\r\n{"b":2}', 3))] == ['{"a":1}', '{"b":2}']


def test_a_cr_at_chunk_end_pairs_with_the_next_lf() -> None:
    splitter = LineSplitter()
    assert splitter.feed(b"a\r") == ["a"]
    assert splitter.feed(b"\nb\n") == ["b"]


def test_a_bom_split_across_chunks_is_still_dropped() -> None:
    splitter = LineSplitter()
    assert splitter.feed(b"\xef") == []
    assert splitter.feed(b"\xbb\xbfa\n") == ["a"]


def test_invalid_utf8_is_replaced_not_fatal() -> None:
    assert LineSplitter().feed(b"a\xffb\n") == ["a\ufffdb"]


# Every kind of line ending (one stream mixes CRLF, lone CR and LF), a BOM, a comment, event,
# id and retry fields, multi-line data, multi-byte characters and U+2028 inside data, and a
# last event without its blank line (discarded, E.1.6).
MIXED = (
    "\ufeff: hello\r\nevent: update\rid: 7\ndata: {\"a\":\r\ndata: 1}\r\n\r\n"
    "data:x\r\rretry: 300\ndata: é🌍\u2028z\n\ndata: no blank line after me"
).encode()
MIXED_EVENTS = [
    SSEEvent("update", '{"a":\n1}', "7"),
    SSEEvent("message", "x", "7"),
    SSEEvent("message", "é🌍\u2028z", "7"),
]


def parse_reads(reads: list[bytes]) -> tuple[list[SSEEvent], int | None]:
    parser = SSEParser()
    events = [event for read in reads for event in parser.feed(read)]
    return events, parser.retry_ms


def test_a_stream_cut_into_three_reads_at_every_pair_of_byte_offsets_parses_alike() -> None:
    n = len(MIXED)
    for i in range(n + 1):
        for j in range(i, n + 1):
            reads = [MIXED[:i], b"", MIXED[i:j], MIXED[j:]]  # an empty read changes nothing either
            assert parse_reads(reads) == (MIXED_EVENTS, 300), (i, j)


async def test_the_async_reader_gives_the_same_events_one_byte_at_a_time() -> None:
    assert await events_of(MIXED, 1) == MIXED_EVENTS


def test_an_empty_read_between_cr_and_lf_does_not_make_a_blank_line() -> None:
    # a blank line would dispatch the half-received event too early
    assert parse_reads([b"data: a\r", b"", b"\ndata: b\n\n"])[0] == [SSEEvent("message", "a\nb")]


def test_a_long_line_in_many_small_reads_is_one_line() -> None:
    splitter = LineSplitter()
    assert [line for _ in range(5000) for line in splitter.feed(b"xy")] == []
    assert splitter.feed(b"z\r\n") == ["xy" * 5000 + "z"]


def test_ndjson_lines_at_every_byte_offset() -> None:
    raw = '{"a":1}\r\n{"b":"\u2028é"}\r{"c":3}\n\n{"d":4}'.encode()
    for i in range(len(raw) + 1):
        splitter = LineSplitter()
        lines = splitter.feed(raw[:i]) + splitter.feed(raw[i:])
        assert (lines, splitter.rest()) == (['{"a":1}', '{"b":"\u2028é"}', '{"c":3}', ""], '{"d":4}'), i
