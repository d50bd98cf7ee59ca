"""Tool calls that a model writes as text (``tool_call_format: "auto"``), and their replay.

Small local models often write their tool calls into the answer when the server has no parser
for their chat template. Recognised here, in complete answers and in streams:

* ``<tool_call>{"name": ..., "arguments": ...}</tool_call>`` (Hermes, Qwen; the closing tag
  may be missing at the end of the answer, several blocks may follow each other);
* ``[TOOL_CALLS][{"name": ..., "arguments": ...}]`` and ``[TOOL_CALLS]name[ARGS]{...}`` (Mistral);
* a fenced ```` ```json ```` block, or a bare JSON object or array, of ``{"name", "arguments"}``
  (``"parameters"`` is read as ``"arguments"``: Llama 3's JSON tool format uses it).

What counts as a call:

* Every name in it is a tool offered in that round; otherwise it is text, shown as written.
* The tag forms are explicit and count wherever they stand (outside code blocks).
* The JSON forms have no marker, so a model showing an example must not run a tool. They count
  only when they start a line, are the last thing in the answer (nothing but whitespace or
  further calls after them), hold nothing but ``name``/``arguments`` (and an ``id``), and the
  line before them does not announce an example ("For example:", "e.g.", "such as", …).
  JSON followed by more prose is an example, and so is JSON inside another code block.

In a stream, text that may be the start of a call is held back until it is decided, so the
text of a call is never shown; plain text is released as soon as it cannot be one. The
parser is framework-free and knows nothing about protocols: the runtime feeds it the content
deltas of one round.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import replace
from typing import Any, Literal

from .protocols.base import make_call, tool_result_parts
from .types import Message, ToolCall

TextFormat = Literal["hermes", "mistral", "json"]

TC_OPEN, TC_CLOSE = "<tool_call>", "</tool_call>"
MISTRAL = "[TOOL_CALLS]"
MISTRAL_ARGS = "[ARGS]"
FENCE = "```"
# A call held back longer than this is given up and shown: a model writing an endless "call"
# must not hold the whole answer back.
MAX_HELD_CHARS = 200_000

_TAGS = (TC_OPEN, MISTRAL)
_CALL_KEYS = frozenset({"name", "arguments", "parameters", "id"})
_FIRST_KEYS = ("name", "arguments", "parameters", "id")
_FENCE_LANGS = ("", "json", "tool_call", "tool_calls")
# Words with which a model introduces JSON it is only showing, not running.
_EXAMPLE_CUE = re.compile(
    r"\b(?:for example|for instance|e\.g\.|examples?|such as|sample|would look like|could look like|looks like)",
    re.IGNORECASE,
)
_MISTRAL_NAME = re.compile(r"([A-Za-z0-9_.-]{1,64})(?:\[CALL_ID\]([A-Za-z0-9]{0,64}))?")
_MISTRAL_PARTIAL = re.compile(r"[A-Za-z0-9_.-]{0,64}(?:\[CALL_ID\][A-Za-z0-9]{0,64})?(?:\[[A-Z_]{0,7})?")
_WS = " \t\r\n"

# What the runtime tells the model in the form its family expects (see ``replay``).
JSON_RESULT = "Result of the tool call {name}:\n{text}"


def _partial_suffix(text: str, tags: Sequence[str]) -> int:
    """Length of the longest suffix of ``text`` that is a proper prefix of one of ``tags``."""
    for size in range(min(len(text), max(map(len, tags)) - 1), 0, -1):
        if any(tag.startswith(text[-size:]) for tag in tags):
            return size
    return 0


def _skip_ws(s: str, i: int) -> int:
    while i < len(s) and s[i] in _WS:
        i += 1
    return i


class _JsonEnd:
    """Finds where the JSON value starting at ``offset`` ends, scanning each character once
    however the text arrives (a stream re-asks after every chunk)."""

    def __init__(self, offset: int) -> None:
        self.offset = self.pos = offset
        self.depth = 0
        self.in_string = self.escaped = False
        self.found: int | None = None

    def end(self, s: str) -> int | None:
        """Index just past the value, or None while it is still open."""
        while self.found is None and self.pos < len(s):
            ch = s[self.pos]
            self.pos += 1
            if self.in_string:
                if self.escaped:
                    self.escaped = False
                elif ch == "\\":
                    self.escaped = True
                elif ch == '"':
                    self.in_string = False
            elif ch == '"':
                self.in_string = True
            elif ch in "{[":
                self.depth += 1
            elif ch in "}]":
                self.depth -= 1
                if self.depth <= 0:
                    self.found = self.pos
        return self.found


# A decision about the text at the head of the buffer: None (need more text), ("text", n): the
# first n characters are text, ("code", n): text that opens a code block that is not a call,
# ("call", n, calls, tentative): the first n characters are calls (tentative: JSON forms, which
# count only if nothing but calls follows).
_Decision = tuple[Any, ...] | None


class TextCallParser:
    """Splits one round's text into what is shown and the tool calls written into it.

    ``feed()`` takes each content delta and returns the text that can be shown now;
    ``flush()`` at the end of the answer returns the rest; ``calls`` then holds the calls,
    in order, as ordinary ``ToolCall``s (``text_format`` says which form they came in).
    """

    def __init__(self, offered: Iterable[str]) -> None:
        self.offered = frozenset(offered)
        self.calls: list[ToolCall] = []
        self._buf = ""
        self._json: _JsonEnd | None = None
        self._in_code = False
        self._line = ""  # the released text of the current line
        self._last_line = ""  # the last non-blank released line before it
        self._pending: list[ToolCall] = []  # tentative JSON calls
        self._pending_text = ""  # their raw text, shown after all if prose follows
        self._after_call = False  # whitespace right after a call is layout, not content
        self._held = False  # the buffer starts with an undecided candidate: decide it again
        self._ids: set[str] = set()

    # -- public --------------------------------------------------------------------------------

    def feed(self, text: str) -> str:
        self._buf += text
        return self._scan(final=False) if self.offered else self._take_all()

    def flush(self) -> str:
        out = self._scan(final=True) if self.offered else self._take_all()
        self._confirm()
        return out

    # -- scanning ------------------------------------------------------------------------------

    def _take_all(self) -> str:
        out, self._buf = self._buf, ""
        return out

    def _scan(self, *, final: bool) -> str:
        out: list[str] = []
        while self._buf:
            if self._in_code:
                if not self._code(out, final):
                    break
                continue
            if self._pending_text or self._pending:
                step = self._after_pending(out, final)
                if step is None:
                    break
                if step:
                    continue
            elif self._after_call:
                head = _skip_ws(self._buf, 0)
                if head == len(self._buf):
                    if final:
                        self._buf = ""
                    break
                self._buf, self._json, self._after_call = self._buf[head:], None, False
            # a held candidate is decided again without searching the buffer for one, so a long
            # call arriving in small pieces costs time in proportion to its length
            pos, is_candidate = (0, True) if self._held else self._next_start(final)
            if pos:
                self._release(out, pos)
            if not is_candidate:
                break
            decision = self._decide(final)
            if decision is None:
                self._held = True
                break
            self._apply(out, decision)
        if final and self._buf:
            self._release(out, len(self._buf))
        return "".join(out)

    def _after_pending(self, out: list[str], final: bool) -> bool | None:
        """After tentative JSON calls: more calls keep them pending, prose shows them as text.
        Returns None (wait), True (handled, scan again) or False (prose: scan it normally)."""
        head = _skip_ws(self._buf, 0)
        if head == len(self._buf):
            if final:
                self._pending_text += self._buf
                self._buf = ""
                self._confirm()
                return True
            return None
        starts = self._buf.startswith((TC_OPEN, MISTRAL, FENCE, "{", "["), head)
        rest = self._buf[head : head + len(MISTRAL)]
        if not starts and not final and any(t.startswith(rest) for t in (*_TAGS, FENCE)):
            return None
        if starts:
            if head:
                self._pending_text += self._buf[:head]
                self._buf, self._json = self._buf[head:], None
            decision = self._decide(final, after_call=True)
            if decision is None:
                return None
            if decision[0] == "call":
                self._apply(out, decision)
                return True
        # prose (or a failed candidate) follows: the pending JSON was only shown, not called
        text = self._pending_text
        self._pending, self._pending_text = [], ""
        self._emit(out, text)
        return False

    def _confirm(self) -> None:
        self.calls += self._pending
        self._pending, self._pending_text = [], ""

    def _next_start(self, final: bool) -> tuple[int, bool]:
        """(position of the first possible call, True) or (characters safe to show, False)."""
        buf = self._buf
        found = [i for i in (buf.find(TC_OPEN), buf.find(MISTRAL)) if i != -1]
        line_start = 0 if not self._line.strip() else buf.find("\n") + 1 or -1
        while line_start != -1 and line_start < len(buf):
            j = line_start
            while j < len(buf) and buf[j] in " \t":
                j += 1
            if j < len(buf) and (buf[j] in "{[" or buf.startswith(FENCE, j)):
                found.append(j)
                break
            if j < len(buf) and buf[j] == "`" and FENCE.startswith(buf[j:]) and not final:
                found.append(j)  # "`" or "``" at the end: the fence may be coming
                break
            nl = buf.find("\n", j)
            line_start = nl + 1 if nl != -1 else -1
        if found:
            return min(found), True
        hold = 0 if final else _partial_suffix(buf, _TAGS)
        return len(buf) - hold, False

    def _decide(self, final: bool, *, after_call: bool = False) -> _Decision:
        s = self._buf
        if s.startswith(TC_OPEN):
            return self._decide_hermes(final)
        if s.startswith(MISTRAL):
            return self._decide_mistral(final)
        if not final and len(s) < len(MISTRAL) and MISTRAL.startswith(s):
            return None
        if s.startswith("`"):
            if not s.startswith(FENCE):
                return None if not final and FENCE.startswith(s) else ("text", len(s))
            return self._decide_fence(final, after_call)
        return self._decide_json(final, after_call)

    def _apply(self, out: list[str], decision: tuple[Any, ...]) -> None:
        kind, n = decision[0], decision[1]
        self._held = False
        if kind == "text":
            self._release(out, n)
        elif kind == "code":
            self._release(out, n)
            self._in_code = True
        else:
            calls, tentative = decision[2], decision[3]
            raw, self._buf, self._json = self._buf[:n], self._buf[n:], None
            self._line = ""  # what follows a call starts afresh, as on a new line
            if tentative:
                self._pending += calls
                self._pending_text += raw
            else:
                self._confirm()
                self.calls += calls
                self._after_call = True

    def _release(self, out: list[str], n: int) -> None:
        text, self._buf, self._json, self._held = self._buf[:n], self._buf[n:], None, False
        self._emit(out, text)

    def _emit(self, out: list[str], text: str) -> None:
        if not text:
            return
        out.append(text)
        lines = (self._line + text).split("\n")
        for line in lines[:-1]:
            if line.strip():
                self._last_line = line
        self._line = lines[-1][-200:]

    def _code(self, out: list[str], final: bool) -> bool:
        """Inside a code block that is not a call: show it up to its closing fence."""
        buf = self._buf
        i = 0 if not self._line.strip() else buf.find("\n") + 1
        while 0 < i or (i == 0 and not self._line.strip()):
            j = i
            while j < len(buf) and buf[j] in " \t":
                j += 1
            if buf.startswith(FENCE, j):
                self._release(out, j + len(FENCE))
                self._in_code = False
                return True
            if j == len(buf) or (not final and FENCE.startswith(buf[j:])):
                self._release(out, i)  # the rest may be the closing fence
                return False
            nl = buf.find("\n", j)
            if nl == -1:
                break
            i = nl + 1
        self._release(out, len(buf))
        return False

    # -- the forms -----------------------------------------------------------------------------

    def _json_at(self, offset: int) -> int | None:
        if self._json is None or self._json.offset != offset:
            self._json = _JsonEnd(offset)
        return self._json.end(self._buf)

    def _looks_like_call(self, s: str) -> bool:
        """Whether ``s`` (an unfinished JSON value) can still turn out to be a call."""
        i = _skip_ws(s, 0)
        if i < len(s) and s[i] == "[":
            i = _skip_ws(s, i + 1)
        if i == len(s):
            return True
        if s[i] != "{":
            return False
        i = _skip_ws(s, i + 1)
        if i == len(s):
            return True
        if s[i] != '"':
            return False
        close = s.find('"', i + 1)
        key = s[i + 1 : close if close != -1 else len(s)]
        if close == -1:
            return any(k.startswith(key) for k in _FIRST_KEYS)
        if key not in _FIRST_KEYS:
            return False
        if key != "name":
            return True
        match = re.match(r'\s*:\s*"([^"\\]*)("?)', s[close + 1 :])
        if match is None:
            return bool(re.fullmatch(r"\s*(?::\s*)?", s[close + 1 :]))
        name, closed = match.group(1), match.group(2)
        return name in self.offered if closed else any(o.startswith(name) for o in self.offered)

    def _value(self, start: int, final: bool) -> tuple[Any, int] | None | Literal[False]:
        """The JSON value at ``start``: (value, end), None (not complete yet) or False (not a call)."""
        s = self._buf
        if start >= len(s):
            return False if final else None
        if s[start] not in "{[" or not self._looks_like_call(s[start : start + 400]):
            return False
        end = self._json_at(start)
        if end is None:
            return False if final or len(s) > MAX_HELD_CHARS else None
        try:
            return json.loads(s[start:end]), end
        except ValueError:
            return False

    def _decide_hermes(self, final: bool) -> _Decision:
        s = self._buf
        start = _skip_ws(s, len(TC_OPEN))
        if not final and start < len(s) and FENCE.startswith(s[start:]):
            return None
        if s.startswith(FENCE, start):  # some models fence the JSON inside the tags
            nl = s.find("\n", start)
            if nl == -1:
                return ("text", len(TC_OPEN)) if final else None
            start = _skip_ws(s, nl + 1)
        found = self._value(start, final)
        if not found:
            return None if found is None else ("text", len(TC_OPEN))
        value, end = found
        calls = self._calls(value, "hermes", marked=True)
        if calls is None:
            return ("text", len(TC_OPEN))
        k = _skip_ws(s, end)
        if s.startswith(FENCE, k):
            k = _skip_ws(s, k + len(FENCE))
        if s.startswith(TC_CLOSE, k):
            return ("call", k + len(TC_CLOSE), calls, False)
        if not final and (TC_CLOSE.startswith(s[k:]) or FENCE.startswith(s[k:])):
            return None  # the closing tag may still come
        return ("call", k, calls, False)

    def _decide_mistral(self, final: bool) -> _Decision:
        s = self._buf
        start = _skip_ws(s, len(MISTRAL))
        if start == len(s):
            return ("text", len(MISTRAL)) if final else None
        if s[start] in "{[":
            found = self._value(start, final)
            if not found:
                return None if found is None else ("text", len(MISTRAL))
            value, end = found
            calls = self._calls(value, "mistral", marked=True)
            return ("call", end, calls, False) if calls is not None else ("text", len(MISTRAL))
        found_args = s.find(MISTRAL_ARGS, start, start + 200)
        args_at = found_args - start if found_args != -1 else -1
        rest = s[start : start + 200]
        if args_at == -1:
            if final or not _MISTRAL_PARTIAL.fullmatch(rest):
                return ("text", len(MISTRAL))
            name = re.match(r"[A-Za-z0-9_.-]*", rest)
            prefix = name.group(0) if name else ""
            return None if any(o.startswith(prefix) for o in self.offered) else ("text", len(MISTRAL))
        head = _MISTRAL_NAME.fullmatch(rest[:args_at])
        if head is None or head.group(1) not in self.offered:
            return ("text", len(MISTRAL))
        body = _skip_ws(s, start + args_at + len(MISTRAL_ARGS))
        if body < len(s) and s[body] != "{":
            return ("text", len(MISTRAL))
        args_end = self._json_at(body) if body < len(s) else None
        if args_end is None:
            return ("text", len(MISTRAL)) if final or len(s) > MAX_HELD_CHARS else None
        try:
            arguments = json.loads(s[body:args_end])
        except ValueError:
            return ("text", len(MISTRAL))
        return ("call", args_end, [self._call(head.group(1), arguments, head.group(2), "mistral")], False)

    def _announces_example(self) -> bool:
        return bool(_EXAMPLE_CUE.search(self._line if self._line.strip() else self._last_line))

    def _decide_fence(self, final: bool, after_call: bool) -> _Decision:
        s = self._buf
        nl = s.find("\n")
        if nl == -1:
            lang = s[len(FENCE) :].strip().lower()
            if final or len(lang) > 12 or not any(known.startswith(lang) for known in _FENCE_LANGS):
                return ("code", len(s)) if not final else ("text", len(s))
            return None
        info_end = nl + 1
        if s[len(FENCE) : nl].strip().lower() not in _FENCE_LANGS or (self._announces_example() and not after_call):
            return ("code", info_end)
        start = _skip_ws(s, info_end)
        found = self._value(start, final)
        if not found:
            return None if found is None else ("code", info_end)
        value, end = found
        k = _skip_ws(s, end)
        if not s.startswith(FENCE, k):
            if not final and FENCE.startswith(s[k:]):
                return None
            if not (final and k == len(s)):  # anything but the closing fence: a code block
                return ("code", info_end)
        else:
            k += len(FENCE)
        calls = self._calls(value, "json", marked=False)
        if calls is None:
            return ("text", k) if k <= len(s) and s.startswith(FENCE, k - len(FENCE)) else ("code", info_end)
        return ("call", k, calls, True)

    def _decide_json(self, final: bool, after_call: bool) -> _Decision:
        if self._announces_example() and not after_call:
            return ("text", 1)
        found = self._value(0, final)
        if not found:
            return None if found is None else ("text", 1)
        value, end = found
        calls = self._calls(value, "json", marked=False)
        return ("call", end, calls, True) if calls is not None else ("text", end)

    # -- calls ---------------------------------------------------------------------------------

    def _calls(self, value: Any, fmt: TextFormat, *, marked: bool) -> list[ToolCall] | None:
        """The calls a JSON value holds, or None when it is not (only) calls of offered tools."""
        items = value if isinstance(value, list) else [value]
        if not items:
            return None
        out = []
        for item in items:
            if not isinstance(item, dict) or not set(item) <= _CALL_KEYS:
                return None
            name = item.get("name")
            if not isinstance(name, str) or name not in self.offered:
                return None
            if "arguments" in item and "parameters" in item:
                return None
            if "arguments" not in item and "parameters" not in item and not marked:
                return None  # bare JSON needs both halves of a call to count as one
            arguments = item.get("arguments", item.get("parameters"))
            out.append((name, {} if arguments is None else arguments, item.get("id")))
        return [self._call(name, arguments, cid, fmt) for name, arguments, cid in out]

    def _call(self, name: str, arguments: Any, call_id: Any, fmt: TextFormat) -> ToolCall:
        if not isinstance(arguments, (dict, str)):  # e.g. a list: the model is told it is not an object
            arguments = json.dumps(arguments)
        return replace(make_call(call_id, name, arguments, self._ids), text_format=fmt)


def parse_text_calls(text: str, offered: Iterable[str]) -> tuple[str, list[ToolCall]]:
    """``(text to show, calls)`` of a whole answer."""
    parser = TextCallParser(offered)
    shown = parser.feed(text) + parser.flush()
    return shown, parser.calls


# ---- feeding calls and results back --------------------------------------------------------


def _call_json(call: ToolCall) -> dict[str, Any]:
    return {"name": call.name, "arguments": dict(call.arguments)}


def render_calls(calls: Sequence[ToolCall]) -> str:
    """The calls as the model's family writes them (the form of the first call)."""
    fmt = calls[0].text_format
    if fmt == "hermes":
        return "\n".join(f"{TC_OPEN}\n{json.dumps(_call_json(c), ensure_ascii=False)}\n{TC_CLOSE}" for c in calls)
    if fmt == "mistral":
        return MISTRAL + json.dumps([_call_json(c) for c in calls], ensure_ascii=False)
    value: Any = _call_json(calls[0]) if len(calls) == 1 else [_call_json(c) for c in calls]
    return json.dumps(value, ensure_ascii=False)


def render_result(fmt: str, message: Message) -> str:
    """One tool result as the family expects to read it."""
    text, _ = tool_result_parts(message)
    if message.is_error:
        text = f"Error: {text}"
    if fmt == "hermes":
        return f"<tool_response>\n{text}\n</tool_response>"
    if fmt == "mistral":
        return "[TOOL_RESULTS]" + json.dumps({"content": text}, ensure_ascii=False) + "[/TOOL_RESULTS]"
    return JSON_RESULT.format(name=message.tool_name or message.tool_id, text=text)


def replay(messages: Sequence[Message]) -> list[Message]:
    """The history as the model should see it again: an assistant turn whose calls were
    written as text is sent back as that text (no structured ``tool_calls``), and the results
    of those calls as one user message in the family's form (Qwen's template, for one, renders
    tool results as ``<tool_response>`` blocks in a user turn). Servers whose templates know
    nothing of tools accept this too, which structured tool messages would not be."""
    out: list[Message] = []
    texted: dict[str, str] = {}  # call id -> format, for calls replayed as text
    results: list[str] = []
    images: list[str] = []

    def close_results() -> None:
        if results:
            out.append(Message(role="user", content="\n".join(results), images=tuple(images)))
            results.clear()
            images.clear()

    for m in messages:
        if m.role == "tool" and m.tool_call_id in texted:
            results.append(render_result(texted[m.tool_call_id], m))
            images.extend(b64 for _, b64 in tool_result_parts(m)[1])
            continue
        close_results()
        if m.role == "assistant" and m.tool_calls and all(c.text_format for c in m.tool_calls):
            prose = m.text().rstrip()
            calls = render_calls(m.tool_calls)
            texted.update((c.id, c.text_format) for c in m.tool_calls)
            out.append(replace(m, content=f"{prose}\n{calls}" if prose else calls, tool_calls=()))
            continue
        out.append(m)
    close_results()
    return out
