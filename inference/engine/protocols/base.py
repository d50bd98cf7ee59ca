"""The protocol adapter contract and the helpers every adapter shares."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

import httpx
import orjson

from ..errors import InvalidRequest, ModelError, ModelTimeout, ModelUnavailable
from ..http import get_client
from ..media import normalize_image
from ..types import AdapterEvent, Message, ModelConfig, ToolCall, Usage
from .facts import ModelFacts, facts_from
from .options import BOOLEAN, OptionType

UPSTREAM_STATUS = "model server answered HTTP {status}: {message}"
UPSTREAM_IN_STREAM = "model server reported an error: {message}"
CONNECT_FAILED = "cannot reach the model server at {base}: {error}"
TIMED_OUT = "the model server at {base} timed out ({kind})"
TRUNCATED = "the model stream ended before the response was complete"
MALFORMED = "the model server sent malformed JSON: {error}"
BAD_API_KEY = "the api_key for {base} is not a valid HTTP header value (printable ASCII only)"
ARGS_NOT_JSON = "arguments were not valid JSON: {error}"
ARGS_NOT_OBJECT = "arguments must be a JSON object, got {kind}"

# Our own keys that may sit in ``ModelConfig.options``; they configure the adapter and are
# never sent upstream. ``think_prefilled``: the chat template pre-fills ``<think>`` (docs/protocols.md A.8).
# ``reasoning_field``: replay assistant reasoning under this name (A-8 DeepSeek
# ``reasoning_content``, vLLM ``reasoning``).
OWN_OPTIONS = frozenset({"think_prefilled", "reasoning_field"})
OWN_OPTION_TYPES: dict[str, OptionType] = {
    "think_prefilled": BOOLEAN,
    "reasoning_field": OptionType(("string",), choices=("reasoning_content", "reasoning")),
}

E = TypeVar("E", bound=ModelError)
ToolSpec = Mapping[str, Any]  # {"name", "description", "parameters"}, already sanitised


@dataclass(frozen=True, slots=True)
class RoundResult:
    """One model round answered without streaming."""

    content: str
    thinking: str
    tool_calls: tuple[ToolCall, ...]
    usage: Usage
    finish_reason: str  # stop | length | tool_calls


class ProtocolAdapter(ABC):
    """Talks one wire protocol to one model.

    Constructed with a ``ModelConfig``. ``messages`` are engine ``Message``s (tool calls carry
    model-facing names); ``tools`` are model-facing specs ``{"name", "description",
    "parameters"}``; ``options`` is the merged dict (model defaults overridden by the request)
    in the protocol's own names; ``think`` is None (server default), a bool, or a level string.

    * ``stream()`` yields ``TextDelta`` / ``ReasoningDelta`` as they arrive, one
      ``ToolCallDelta`` per *complete* call, at most one ``UsageDelta`` (the round's totals),
      and ends with exactly one ``Finish`` whose reason is ``stop``, ``length`` or
      ``tool_calls`` (``tool_calls`` whenever calls were produced, whatever the server said).
    * ``complete()`` makes a non-streaming request and returns a ``RoundResult``.
    * ``list_models()`` returns the server's model entries, for model detection.

    Failures of the model server raise ``ModelError`` subclasses only: ``ModelTimeout`` for
    timeouts, ``ModelUnavailable`` for everything else (refused connection, HTTP error status
    including an unknown model, an error inside a 200 stream, malformed JSON, a stream cut
    before it finished). ``detail`` is ``{"upstream_status": int | None, "upstream_message":
    str}`` and ``retryable`` says whether trying again may help. Inputs the protocol cannot
    carry raise ``InvalidRequest`` subclasses before any request is sent.
    """

    #: Shown in pickers and the admin.
    label: str = ""
    #: Whether the wire format can carry audio input at all (a model may still not accept it).
    accepts_audio: bool = True
    #: The JSON types of the option names this protocol knows (our ``OWN_OPTIONS`` included),
    #: checked by ``Runtime.prepare`` on the merged options before anything is sent; names not
    #: in the table pass through untouched (protocols/options.py).
    option_types: ClassVar[Mapping[str, OptionType]] = OWN_OPTION_TYPES

    def __init__(self, model: ModelConfig) -> None:
        self.model = model

    @abstractmethod
    def stream(
        self,
        messages: Sequence[Message],
        tools: Sequence[ToolSpec] = (),
        *,
        options: Mapping[str, Any] | None = None,
        think: bool | str | None = None,
    ) -> AsyncIterator[AdapterEvent]: ...

    @abstractmethod
    async def complete(
        self,
        messages: Sequence[Message],
        tools: Sequence[ToolSpec] = (),
        *,
        options: Mapping[str, Any] | None = None,
        think: bool | str | None = None,
    ) -> RoundResult: ...

    @abstractmethod
    async def list_models(self) -> list[dict[str, Any]]: ...

    async def model_facts(self, entry: Mapping[str, Any]) -> ModelFacts:
        """What the server says about one ``list_models`` entry (vision, context window), for
        model detection. Adapters whose servers keep that elsewhere ask for it; a failure to
        learn more is no error (unknown facts are None)."""
        return facts_from(entry)

    # ---- shared plumbing ------------------------------------------------------------------

    def url(self, path: str) -> str:
        return self.model.api_base.rstrip("/") + path

    def headers(self) -> dict[str, str]:
        key = self.model.api_key
        if not key:
            return {}
        if not (key.isascii() and key.isprintable()):
            # httpx would fail with an encoding error (a 500) or quote the whole header, key included.
            message = BAD_API_KEY.format(base=self.model.api_base)
            raise model_error(ModelUnavailable, message, None, message)
        return {"Authorization": f"Bearer {key}"}

    def setting(self, options: Mapping[str, Any] | None, key: str) -> Any:
        """One of our ``OWN_OPTIONS``, from the request options or the model's defaults."""
        return (options or {}).get(key, self.model.options.get(key))

    @staticmethod
    def wire_options(options: Mapping[str, Any] | None) -> dict[str, Any]:
        return {k: v for k, v in (options or {}).items() if k not in OWN_OPTIONS}

    @contextmanager
    def upstream_errors(self) -> Iterator[None]:
        """Turn httpx failures into ``ModelError``s."""
        base = self.model.api_base
        try:
            yield
        except httpx.TimeoutException as exc:
            raise model_error(ModelTimeout, TIMED_OUT.format(base=base, kind=type(exc).__name__), None, str(exc)) from exc
        except (httpx.HTTPError, httpx.InvalidURL) as exc:  # InvalidURL: e.g. a control character in api_base
            error = str(exc) or type(exc).__name__
            err = model_error(ModelUnavailable, CONNECT_FAILED.format(base=base, error=error), None, error)
            err.retryable = True
            raise err from exc

    async def request_json(self, method: str, path: str, body: Any = None) -> Any:
        with self.upstream_errors():
            client = get_client(self.model.api_base, self.model.timeout_s)
            response = await client.call(method, self.url(path), body, self.headers())
            if response.status_code >= 400:
                raise status_error(response.status_code, response.text)
            return loads(response.content.decode("utf-8", "replace"))  # JSON is UTF-8: no charset to look up

    @asynccontextmanager
    async def open_stream(self, path: str, body: Any) -> AsyncIterator[httpx.Response]:
        """POST and hand over a response whose status was checked (E-7: errors are JSON)."""
        with self.upstream_errors():
            client = get_client(self.model.api_base, self.model.timeout_s)
            response = await client.call("POST", self.url(path), body, self.headers(), stream=True)
            try:
                if response.status_code >= 400:
                    await response.aread()
                    raise status_error(response.status_code, response.text)
                yield response
            finally:
                await response.aclose()


# After the protocol's end marker a server has only the end of the body left to send (the last
# chunk's terminator). Bounded, in case one keeps the response open instead.
_REST_S = 1.0
_REST_ITEMS = 16


async def read_rest(items: AsyncIterator[Any]) -> None:
    """Read what is left of a streamed answer after its end marker (``[DONE]``, ``"done": true``).

    httpx closes a connection whose response was not read to its end, so every streamed model
    call used to open a new connection (a TCP handshake on the run's path, and one TIME_WAIT
    socket left per call); read to the end, the connection goes back to the pool. A server that
    sends more, or nothing for ``_REST_S``, has its connection closed as before.
    """
    with contextlib.suppress(httpx.HTTPError, TimeoutError):
        async with asyncio.timeout(_REST_S):
            left = _REST_ITEMS
            async for _ in items:
                left -= 1
                if not left:
                    return


# ---- errors ---------------------------------------------------------------------------------


def model_error(cls: type[E], message: str, status: int | None, upstream_message: str) -> E:
    return cls(message, detail={"upstream_status": status, "upstream_message": upstream_message})


def upstream_message(body: Any, text: str = "") -> str:
    """The message of an error body, nested (``{"error": {...}}``), flat, or a bare string."""
    if isinstance(body, Mapping):
        err = body.get("error", body)
        if isinstance(err, str):
            return err
        if isinstance(err, Mapping):
            for key in ("message", "detail", "msg"):
                if isinstance(err.get(key), str) and err[key]:
                    return err[key]
        return json.dumps(err, default=str)[:500]
    return text.strip()[:500]


def status_error(status: int, text: str) -> ModelUnavailable:
    try:
        body: Any = json.loads(text)
    except ValueError:
        body = None
    message = upstream_message(body, text) or httpx.codes.get_reason_phrase(status)
    err = model_error(ModelUnavailable, UPSTREAM_STATUS.format(status=status, message=message), status, message)
    err.retryable = status in (408, 409, 429) or status >= 500
    return err


def in_stream_error(body: Any) -> ModelUnavailable:
    message = upstream_message(body)
    return model_error(ModelUnavailable, UPSTREAM_IN_STREAM.format(message=message), None, message)


def truncated() -> ModelUnavailable:
    err = model_error(ModelUnavailable, TRUNCATED, None, "")
    err.retryable = True
    return err


# orjson reads JSON about three times as fast as json, and the same way except for integers
# beyond 64 bits, which it turns into floats. Text that may carry values which reach a caller
# unchanged (tool arguments, error bodies) goes through json; usage counts and the like are
# never that large.
_EXACT_ONLY = ('"tool_calls"', '"error"')


def loads(text: str) -> Any:
    """The JSON of a model server's answer, one stream chunk or a whole body."""
    if _EXACT_ONLY[0] not in text and _EXACT_ONLY[1] not in text:
        try:
            return orjson.loads(text)
        except orjson.JSONDecodeError:
            pass  # json decides: it reads NaN, Infinity and lone surrogates, and words the error
    try:
        return json.loads(text)
    except ValueError as exc:
        raise model_error(ModelUnavailable, MALFORMED.format(error=exc), None, text[:500]) from None


# ---- tool calls and tool results ------------------------------------------------------------


def new_call_id() -> str:
    return f"call_{uuid.uuid4().hex[:24]}"


def parse_arguments(raw: Any) -> tuple[dict[str, Any], str | None]:
    """``(arguments, error)``: a bad payload becomes an error the model is told about (A.6 #4)."""
    if isinstance(raw, Mapping):
        return dict(raw), None
    text = raw.strip() if isinstance(raw, str) else ""
    if not text:
        return {}, None
    try:
        value = json.loads(text)
    except ValueError as exc:
        return {}, ARGS_NOT_JSON.format(error=exc)
    if not isinstance(value, dict):
        return {}, ARGS_NOT_OBJECT.format(kind=type(value).__name__)
    return value, None


def make_call(call_id: Any, name: str, raw_arguments: Any, seen_ids: set[str]) -> ToolCall:
    """A ``ToolCall`` with a usable id: missing or repeated ids are replaced (A-9)."""
    cid = call_id if isinstance(call_id, str) and call_id and call_id not in seen_ids else new_call_id()
    seen_ids.add(cid)
    arguments, error = parse_arguments(raw_arguments)
    return ToolCall(id=cid, name=name, arguments=arguments, arguments_error=error)


def tool_result_parts(message: Message) -> tuple[str, list[tuple[str, str]]]:
    """A tool message as text plus ``(mime, bare_b64)`` images; other media become text notes."""
    if isinstance(message.content, str):
        return message.content, []
    texts: list[str] = []
    images: list[tuple[str, str]] = []
    for item in message.content:
        kind = item.get("type")
        if kind == "text":
            texts.append(item.get("text", ""))
        elif kind == "image":
            try:
                images.append(normalize_image(item.get("data", "")))
            except InvalidRequest as exc:
                texts.append(f"[image omitted: {exc.message}]")
        elif kind == "resource":
            resource = item.get("resource") or {}
            texts.append(resource.get("text") or f"[resource {resource.get('uri', '')}]")
        elif kind == "resource_link":
            texts.append(f"[resource link {item.get('uri', '')}]")
        elif kind == "audio":
            texts.append("[audio omitted: this model protocol cannot take audio in tool results]")
        else:
            texts.append(json.dumps(item, default=str))
    return "\n".join(texts), images


def finish_reason(raw: Any, has_calls: bool) -> str:
    """Normalised finish: tool use is decided by the calls themselves (A-3, A-4, B-8)."""
    if has_calls:
        return "tool_calls"
    return "length" if raw == "length" else "stop"
