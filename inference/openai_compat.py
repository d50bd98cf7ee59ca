"""OpenAI's Chat Completions wire format, translated to and from one run (docs/openai.md).

Parsing and serialising only: the request is validated against the ``openai`` package's own
request types (a pydantic ``TypeAdapter`` over ``CompletionCreateParamsBase``) and turned into
the ``/v1/infer`` body that ``run_begin`` takes, so access, quotas, usage records and the tool
loop are exactly those of ``/v1``. Answers are built with the package's response models
(``ChatCompletion``, ``ChatCompletionChunk``). Every field of the format is decided in one of
the tables below: mapped, passed to the model as an option, ignored, or refused with a 400.
Everything that leaves goes through ``core.secrets.scrub``, as on ``/v1``.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterable, Mapping
from typing import Any

from openai.types import CompletionUsage
from openai.types import Model as OpenAIModel
from openai.types.chat import ChatCompletion, ChatCompletionChunk, ChatCompletionMessage
from openai.types.chat.chat_completion import Choice
from openai.types.chat.chat_completion_chunk import Choice as ChunkChoice
from openai.types.chat.chat_completion_chunk import ChoiceDelta, ChoiceDeltaToolCall, ChoiceDeltaToolCallFunction
from openai.types.chat.chat_completion_message_function_tool_call import ChatCompletionMessageFunctionToolCall, Function
from openai.types.chat.completion_create_params import CompletionCreateParamsBase
from pydantic import TypeAdapter
from pydantic import ValidationError as PydanticValidationError

from core.errors import DomainError, InvalidRequest, ValidationFailed
from core.jsonbody import encode
from core.secrets import scrub, scrub_data
from inference.engine import InferenceResult, ToolConfig
from inference.engine.types import FinishReason

CLIENT_PREFIX = "client."  # the tool_id of a tool the client sent: it is handed back, never run here
SESSION_HEADER = "X-Agentsite-Session"

# Request fields handed to the model as options under the same name.
PASSED_AS_OPTIONS = (
    "temperature", "top_p", "max_tokens", "stop", "seed", "presence_penalty", "frequency_penalty", "logit_bias",
    "response_format", "tool_choice", "parallel_tool_calls",
)
# Request fields accepted and not acted on (they concern OpenAI's platform, not the model).
IGNORED = (
    "metadata", "store", "user", "safety_identifier", "prompt_cache_key", "prompt_cache_retention",
    "prompt_cache_options", "service_tier", "verbosity", "logprobs", "top_logprobs", "prediction", "moderation",
    "web_search_options",
)
# Request fields refused: answering them would mean pretending.
REFUSED = {
    "functions": "functions (deprecated) is not supported; send tools.",
    "function_call": "function_call (deprecated) is not supported; send tool_choice.",
    "audio": "Audio output is not supported.",
}
REASONING_TO_THINK: dict[str, bool | str] = {"none": False, "minimal": False, "low": "low", "medium": "medium", "high": "high",
                                              "xhigh": "max", "max": "max"}
FINISH_REASONS: dict[FinishReason, str] = {
    "stop": "stop", "length": "length", "max_tool_rounds": "stop", "tool_calls": "tool_calls", "cancelled": "stop",
    "error": "stop",
}
ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
               404: "not_found_error", 409: "conflict_error", 413: "invalid_request_error", 415: "invalid_request_error",
               429: "rate_limit_error"}

NOT_ONE_CHOICE = "n must be 1: one completion per request."
ONLY_TEXT = "modalities may only ask for text."
IMAGE_URL_NOT_DATA = "image_url must be a data: URI (base64); the server fetches no URLs."
UNSUPPORTED_PART = "Content parts of type {kind!r} are not supported in {role} messages."
CUSTOM_TOOL = "Only function tools are supported (not {kind!r})."

_PARAMS = TypeAdapter(CompletionCreateParamsBase)


def error_body(exc: DomainError) -> dict[str, Any]:
    """OpenAI's error shape for one of ours: ``{"error": {"message", "type", "param", "code"}}``."""
    detail = exc.detail or {}
    param = next(iter(detail), None) if isinstance(exc, ValidationFailed) else None
    kind = ERROR_TYPES.get(exc.status, "api_error" if exc.status >= 500 else "invalid_request_error")
    return {"error": {"message": scrub(exc.message), "type": kind, "param": param, "code": exc.code}}


def _invalid(param: str, message: str) -> ValidationFailed:
    return ValidationFailed(f"{param}: {message}", detail={param: [message]})


def _parsed(body: Any) -> dict[str, Any]:
    """The body checked against the openai package's request type (its lazy lists consumed here)."""
    if not isinstance(body, dict):
        raise InvalidRequest("The body must be a JSON object.", code="validation_error")
    try:
        params: dict[str, Any] = dict(_PARAMS.validate_python(body))
        params["messages"] = [dict(m) for m in params["messages"]]
        for message in params["messages"]:
            for key in ("content", "tool_calls"):
                if key in message and not isinstance(message[key], (str, type(None))):
                    message[key] = [dict(p) for p in message[key]]
        if "tools" in params:
            params["tools"] = [dict(t) for t in params["tools"]]
        if "stop" in params and not isinstance(params["stop"], (str, type(None))):
            params["stop"] = list(params["stop"])
    except PydanticValidationError as exc:
        first = exc.errors()[0]
        param = ".".join(str(p) for p in first["loc"] if not str(p).startswith("ChatCompletion"))
        raise _invalid(param or "body", first["msg"]) from None
    return params


def _text_of(content: Any) -> str:
    if content is None or isinstance(content, str):
        return content or ""
    return "".join(part.get("text", "") for part in content if part.get("type") == "text")


def _user_message(message: Mapping[str, Any], index: int) -> dict[str, Any]:
    content = message["content"]
    if isinstance(content, str):
        return {"role": "user", "content": content}
    texts, images, audio = [], [], []
    for part in content:
        kind = part.get("type")
        if kind == "text":
            texts.append(part["text"])
        elif kind == "image_url":
            url = part["image_url"]["url"]
            if not url.lower().startswith("data:"):
                raise _invalid(f"messages.{index}.content", IMAGE_URL_NOT_DATA)
            images.append(url)
        elif kind == "input_audio":
            audio.append({"data": part["input_audio"]["data"], "format": part["input_audio"]["format"]})
        else:
            raise _invalid(f"messages.{index}.content", UNSUPPORTED_PART.format(kind=kind, role="user"))
    return {"role": "user", "content": "".join(texts), "images": images, "audio": audio}


def _arguments(raw: str) -> dict[str, Any]:
    try:
        value = json.loads(raw or "{}")
    except json.JSONDecodeError:
        value = None
    return value if isinstance(value, dict) else {}


def _messages(messages: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """OpenAI messages as /v1 messages; a tool result learns its tool's name from its call."""
    out: list[dict[str, Any]] = []
    names: dict[str, str] = {}
    for i, m in enumerate(messages):
        role = m["role"]
        if role in ("system", "developer"):
            out.append({"role": "system", "content": _text_of(m["content"])})
        elif role == "user":
            out.append(_user_message(m, i))
        elif role == "assistant":
            calls = []
            for call in m.get("tool_calls") or ():
                if call.get("type") != "function":
                    raise _invalid(f"messages.{i}.tool_calls", CUSTOM_TOOL.format(kind=call.get("type")))
                name = call["function"]["name"]
                names[call["id"]] = name
                calls.append({"id": call["id"], "name": name, "arguments": _arguments(call["function"]["arguments"]),
                              "tool_id": f"{CLIENT_PREFIX}{name}"})
            out.append({"role": "assistant", "content": _text_of(m.get("content")), "tool_calls": calls})
        elif role == "tool":
            call_id = m["tool_call_id"]
            out.append({"role": "tool", "tool_call_id": call_id, "tool_name": names.get(call_id, ""),
                        "content": [{"type": "text", "text": _text_of(m["content"])}]})
        else:  # "function" (deprecated)
            raise _invalid(f"messages.{i}.role", REFUSED["function_call"])
    return out


def _client_tools(tools: Iterable[Mapping[str, Any]]) -> list[ToolConfig]:
    out = []
    for i, tool in enumerate(tools):
        if tool.get("type") != "function":
            raise _invalid(f"tools.{i}", CUSTOM_TOOL.format(kind=tool.get("type")))
        fn = tool["function"]
        out.append(ToolConfig(
            tool_id=f"{CLIENT_PREFIX}{fn['name']}", tool_type="client", name=fn["name"], description=fn.get("description", ""),
            parameters=dict(fn.get("parameters") or {"type": "object", "properties": {}}),
        ))
    return out


def infer_body(body: Any, *, is_agent: Any, session: str | None) -> dict[str, Any]:
    """A Chat Completions body as the ``/v1/infer`` body of ``run_begin``.

    ``is_agent(name)`` tells whether ``model`` names an agent the caller may run (agents and
    models share one namespace). With a ``session``, the session holds the conversation: only
    the messages after the request's last assistant message are new (clients resend it all).
    """
    params = _parsed(body)
    for name, message in REFUSED.items():
        if params.get(name) is not None:
            raise _invalid(name, message)
    if params.get("n") not in (None, 1):
        raise _invalid("n", NOT_ONE_CHOICE)
    if any(m != "text" for m in params.get("modalities") or ()):
        raise _invalid("modalities", ONLY_TEXT)
    messages = _messages(params["messages"])
    if session and session != "new":
        last = max((i for i, m in enumerate(messages) if m["role"] == "assistant"), default=-1)
        messages = messages[last + 1:]
    options = {name: params[name] for name in PASSED_AS_OPTIONS if params.get(name) is not None}
    if params.get("max_completion_tokens") is not None:  # the name every OpenAI-compatible server knows
        options["max_tokens"] = params["max_completion_tokens"]
    data: dict[str, Any] = {"messages": messages}
    model = params["model"]
    data["agent" if is_agent(model) else "model_id"] = model
    if options:
        data["options"] = options
    if params.get("reasoning_effort") in REASONING_TO_THINK:
        data["think"] = REASONING_TO_THINK[params["reasoning_effort"]]
    if params.get("tools"):
        data["client_tools"] = _client_tools(params["tools"])
    if session:
        data["session_id"] = session
    return data


def wants_stream(body: Any) -> tuple[bool, bool]:
    """(stream, include_usage) of a body already parsed by ``infer_body``."""
    stream = bool(body.get("stream"))
    options = body.get("stream_options") or {}
    return stream, stream and bool(options.get("include_usage"))


def completion_id() -> str:
    return f"chatcmpl-{uuid.uuid4().hex}"


def _usage(result: InferenceResult) -> CompletionUsage:
    u = result.usage
    return CompletionUsage(prompt_tokens=u.prompt_tokens, completion_tokens=u.completion_tokens, total_tokens=u.total_tokens)


def handed_back(result: InferenceResult) -> list[dict[str, Any]]:
    """The client tools' calls of the last assistant message, when the run stopped for them."""
    if result.finish_reason != "tool_calls":
        return []
    last = next((m for m in reversed(result.messages) if m.role == "assistant"), None)
    return [c.to_dict() for c in (last.tool_calls if last else ()) if c.tool_id.startswith(CLIENT_PREFIX)]


def completion(result: InferenceResult, *, model: str, cid: str) -> bytes:
    """The ``chat.completion`` JSON of a finished run."""
    calls: list[Any] = [
        ChatCompletionMessageFunctionToolCall(id=c["id"], type="function",
                                              function=Function(name=c["name"], arguments=_arguments_json(c["arguments"])))
        for c in handed_back(result)
    ]
    message = ChatCompletionMessage(role="assistant", content=result.content, tool_calls=calls or None)
    if result.thinking:
        message.reasoning_content = result.thinking  # type: ignore[attr-defined]  # an extra field, as DeepSeek/vLLM name it
    answer = ChatCompletion(
        id=cid, object="chat.completion", created=int(time.time()), model=model,
        choices=[Choice(index=0, message=message, finish_reason=FINISH_REASONS[result.finish_reason])],  # type: ignore[arg-type]
        usage=_usage(result),
    )
    return encode(scrub_data(answer.model_dump(mode="json", exclude_none=True)))


def _arguments_json(arguments: Any) -> str:
    # Scrubbed before they become a JSON string: escaped there, a secret holding a quote or a
    # backslash would no longer read as itself.
    return json.dumps(scrub_data(arguments))


class ChunkWriter:
    """The ``chat.completion.chunk`` lines of one streamed completion."""

    def __init__(self, *, model: str, cid: str) -> None:
        self.model, self.cid, self.created = model, cid, int(time.time())
        self.tool_index = 0
        self.started = False

    def _line(self, chunk: ChatCompletionChunk) -> bytes:
        return b"data: " + encode(scrub_data(chunk.model_dump(mode="json", exclude_none=True))) + b"\n\n"

    def chunk(self, delta: ChoiceDelta, finish: str | None = None) -> bytes:
        if not self.started:  # the role rides on the first piece: no separate write ahead of the model
            self.started = True
            delta.role = "assistant"
        choice = ChunkChoice(index=0, delta=delta, finish_reason=finish)  # type: ignore[arg-type]
        return self._line(ChatCompletionChunk(id=self.cid, object="chat.completion.chunk", created=self.created,
                                              model=self.model, choices=[choice]))

    def delta(self, data: Mapping[str, Any]) -> bytes:
        """A piece of text (``data`` of a ``delta`` event, already scrubbed: ``scrubbed_events``),
        written without the SDK's models: this is the chunk a stream is made of."""
        text = {"reasoning_content": data["thinking"]} if "thinking" in data else {"content": data.get("content", "")}
        piece = {k: v for k, v in text.items() if v is not None}  # as the SDK's model without its None fields
        if not self.started:
            self.started = True
            piece["role"] = "assistant"
        chunk = {"id": self.cid, "choices": [{"delta": piece, "index": 0}], "created": self.created,
                 "model": self.model, "object": "chat.completion.chunk"}
        return b"data: " + encode(chunk) + b"\n\n"

    def tool_call(self, call: Mapping[str, Any]) -> bytes:
        """A client tool's call, whole, in one delta (clients join fragments by index anyway)."""
        piece = ChoiceDeltaToolCall(index=self.tool_index, id=call["id"], type="function",
                                    function=ChoiceDeltaToolCallFunction(name=call["name"],
                                                                         arguments=_arguments_json(call["arguments"])))
        self.tool_index += 1
        return self.chunk(ChoiceDelta(tool_calls=[piece]))

    def finish(self, result: InferenceResult) -> bytes:
        return self.chunk(ChoiceDelta(), FINISH_REASONS[result.finish_reason])

    def usage(self, result: InferenceResult) -> bytes:
        return self._line(ChatCompletionChunk(id=self.cid, object="chat.completion.chunk", created=self.created,
                                              model=self.model, choices=[], usage=_usage(result)))

    @staticmethod
    def error(exc: DomainError) -> bytes:
        return b"data: " + json.dumps(error_body(exc)).encode() + b"\n\n"

    DONE = b"data: [DONE]\n\n"


def model_list(*, agents: Iterable[tuple[str, float]], models: Iterable[tuple[str, float]]) -> str:
    """``GET /models`` in OpenAI's list format: (name, created timestamp) of agents and models."""
    data = [OpenAIModel(id=name, created=int(created), object="model", owned_by="agentsite-agent").model_dump()
            for name, created in agents]
    data += [OpenAIModel(id=name, created=int(created), object="model", owned_by="agentsite").model_dump()
             for name, created in models]
    return json.dumps({"object": "list", "data": data})
