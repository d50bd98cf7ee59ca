"""Splitting inline ``<think>…</think>`` reasoning out of model text (docs/protocols.md A.8).

Servers without a reasoning parser leave the tags in ``content``. The streaming splitter holds
back a possible partial tag at a chunk's end (``<thi`` + ``nk>``) so no tag fragment leaks into
either channel. Templates that pre-fill ``<think>`` into the prompt make the model output only
``…</think>answer``: start such streams inside the block (``prefilled=True``).
"""

from __future__ import annotations

from typing import Literal

OPEN, CLOSE = "<think>", "</think>"
Kind = Literal["text", "reasoning"]
Piece = tuple[Kind, str]


def _partial_tag_len(text: str, tags: tuple[str, ...]) -> int:
    """Length of the longest suffix of ``text`` that is a proper prefix of one of ``tags``.

    Each tag has its only ``<`` in front, so the one candidate starts at the last ``<``: a
    ``rfind`` instead of trying every suffix length (this runs on every streamed text chunk).
    """
    start = text.rfind("<")
    if start == -1:
        return 0
    tail = text[start:]
    return len(tail) if any(len(tag) > len(tail) and tag.startswith(tail) for tag in tags) else 0


class ThinkSplitter:
    def __init__(self, *, prefilled: bool = False) -> None:
        self.in_think = prefilled
        self._pending = ""
        self._fed = False
        # whitespace right after a tag ("<think>\n", "</think>\n\n") is layout, not content
        self._strip_leading = prefilled

    def cancel_prefill(self) -> None:
        """The server turned out to split reasoning itself: treat the output as plain text."""
        if not self._fed:
            self.in_think = False
            self._strip_leading = False

    def feed(self, text: str) -> list[Piece]:
        self._fed = True
        if not self._pending and not self._strip_leading and "<" not in text:  # most chunks: no tag can start here
            return [("reasoning" if self.in_think else "text", text)] if text else []
        buf = self._pending + text
        self._pending = ""
        out: list[Piece] = []
        while buf:
            # in content, a stray "</think>" (pre-filled template we weren't told about) is
            # dropped rather than shown to the user
            tags = (CLOSE,) if self.in_think else (OPEN, CLOSE)
            hits = [(buf.find(tag), tag) for tag in tags if tag in buf]
            if not hits:
                keep = _partial_tag_len(buf, tags)
                self._emit(out, buf[: len(buf) - keep])
                self._pending = buf[len(buf) - keep :]
                break
            pos, tag = min(hits)
            self._emit(out, buf[:pos])
            buf = buf[pos + len(tag) :]
            self.in_think = tag == OPEN
            self._strip_leading = True
        return out

    def flush(self) -> list[Piece]:
        """End of output: a held-back partial tag was just text after all."""
        out: list[Piece] = []
        self._emit(out, self._pending)
        self._pending = ""
        return out

    def _emit(self, out: list[Piece], text: str) -> None:
        if self._strip_leading:
            text = text.lstrip()
            if not text:
                return
            self._strip_leading = False
        if text:
            out.append(("reasoning" if self.in_think else "text", text))


def split_think(text: str) -> tuple[str, str]:
    """``(reasoning, content)`` of a whole answer. A ``</think>`` without an earlier ``<think>``
    means the template pre-filled the opening tag: everything before it was reasoning."""
    close, opening = text.find(CLOSE), text.find(OPEN)
    splitter = ThinkSplitter(prefilled=close != -1 and (opening == -1 or close < opening))
    reasoning: list[str] = []
    content: list[str] = []
    for kind, piece in splitter.feed(text) + splitter.flush():
        (reasoning if kind == "reasoning" else content).append(piece)
    return "".join(reasoning), "".join(content)
