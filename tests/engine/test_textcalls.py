"""Tool calls written as text (tool_call_format "auto"), the loop guard, and detection facts."""

from __future__ import annotations

import pytest

from inference.engine.protocols.facts import facts_from
from inference.engine.repetition import RepetitionGuard, loop_cut
from inference.engine.textcalls import TextCallParser, parse_text_calls, replay
from inference.engine.types import Message, ToolCall

OFFERED = ("add", "get_time")
ADD = '{"name": "add", "arguments": {"a": 2, "b": 40}}'


def run(chunks: list[str], offered: tuple[str, ...] = OFFERED) -> tuple[str, list[tuple[str, dict, str]], list[str]]:
    """(shown text, calls as (name, arguments, format), what each feed/flush showed)."""
    parser = TextCallParser(offered)
    pieces = [parser.feed(c) for c in chunks] + [parser.flush()]
    return "".join(pieces), [(c.name, dict(c.arguments), c.text_format) for c in parser.calls], pieces


def every_split(text: str) -> list[list[str]]:
    """The text cut into three pieces at every pair of places."""
    return [[text[:i], text[i:j], text[j:]] for i in range(0, len(text) + 1, 3) for j in range(i, len(text) + 1, 2)]


def char_by_char(text: str) -> list[str]:
    return list(text)


CALLS = {
    "hermes": f"Let me add.\n<tool_call>\n{ADD}\n</tool_call>",
    "hermes_unclosed": f"<tool_call>{ADD}",
    "hermes_fenced_inside": f"<tool_call>\n```json\n{ADD}\n```\n</tool_call>",
    "mistral_array": f"[TOOL_CALLS][{ADD}]",
    "mistral_args": '[TOOL_CALLS]add[ARGS]{"a": 2, "b": 40}',
    "mistral_call_id": '[TOOL_CALLS]add[CALL_ID]a1b2C3d4e[ARGS]{"a": 2, "b": 40}',
    "fenced": f"Let me add.\n\n```json\n{ADD}\n```\n",
    "bare": ADD,
    "bare_array": f"[{ADD}]",
    "llama_parameters": '{"name": "add", "parameters": {"a": 2, "b": 40}}',
}
FORMAT = {"hermes": "hermes", "mistral": "mistral", "fenced": "json", "bare": "json", "llama": "json"}


@pytest.mark.parametrize("case", sorted(CALLS))
def test_each_format_is_one_call_however_the_stream_is_cut(case: str) -> None:
    text = CALLS[case]
    fmt = FORMAT[case.split("_")[0]]
    expected_shown = text[: text.index("\n") + 1] if text.startswith("Let me") else ""
    for chunks in [[text], char_by_char(text), *every_split(text)]:
        shown, calls, _ = run(chunks)
        assert calls == [("add", {"a": 2, "b": 40}, fmt)], chunks
        assert shown.strip() == expected_shown.strip(), chunks


@pytest.mark.parametrize("case", sorted(CALLS))
def test_no_call_text_is_ever_shown_before_it_is_decided(case: str) -> None:
    text = CALLS[case]
    _, _, pieces = run(char_by_char(text))
    shown = "".join(pieces)
    for marker in ('"name"', "<tool_call>", "[TOOL_CALLS]", "```", "{"):
        assert marker not in shown


NOT_CALLS = {
    "name_not_offered_hermes": '<tool_call>{"name": "delete_all", "arguments": {}}</tool_call>',
    "name_not_offered_bare": '{"name": "delete_all", "arguments": {}}',
    "name_not_offered_mistral": '[TOOL_CALLS]delete_all[ARGS]{"x": 1}',
    "name_not_offered_fenced": '```json\n{"name": "delete_all", "arguments": {}}\n```',
    "example_cue": f"For example, a call looks like this:\n{ADD}",
    "example_cue_fenced": f"Here is an example:\n```json\n{ADD}\n```",
    "prose_after_json": f"{ADD}\nThis JSON tells the add tool to add 2 and 40.",
    "prose_after_fence": f"The format:\n```json\n{ADD}\n```\nSend it when you need a sum.",
    "inline_json": f"You would send {ADD} to the server.",
    "other_code_block": f"```python\n{ADD}\n```\n",
    "tag_inside_code_block": f"```\n<tool_call>{ADD}</tool_call>\n```\n",
    "extra_keys": '{"name": "add", "arguments": {}, "description": "Add two integers."}',
    "tool_definition": '{"name": "add", "description": "Add", "parameters": {"type": "object"}}',
    "bare_name_only": '{"name": "add"}',
    "unfinished": '<tool_call>{"name": "add", "argum',
    "markdown": "[1] A reference\n{not json}\n`code` and ``more``\n",
    "data": '[{"id": 1}, {"id": 2}]',
}


@pytest.mark.parametrize("case", sorted(NOT_CALLS))
def test_text_that_is_not_a_call_is_shown_as_written(case: str) -> None:
    text = NOT_CALLS[case]
    for chunks in [[text], char_by_char(text), *every_split(text)[::7]]:
        shown, calls, _ = run(chunks)
        assert calls == [] and shown == text, chunks


def test_several_calls_in_one_answer() -> None:
    two = f'<tool_call>{ADD}</tool_call>\n<tool_call>{{"name": "get_time", "arguments": {{}}}}</tool_call>'
    assert [c[0] for c in run(char_by_char(two))[1]] == ["add", "get_time"]
    lines = f'{ADD}\n{{"name": "get_time", "arguments": {{}}}}\n'
    assert [c[0] for c in run(char_by_char(lines))[1]] == ["add", "get_time"]
    mixed = f'[{ADD}, {{"name": "nope", "arguments": {{}}}}]'  # one name not offered: none is a call
    assert run([mixed])[1] == []


def test_text_after_a_tagged_call_is_shown_without_the_layout_between() -> None:
    shown, calls, _ = run(char_by_char(f"<tool_call>{ADD}</tool_call>\n\nDone."))
    assert shown == "Done." and len(calls) == 1


def test_without_offered_tools_everything_is_text() -> None:
    shown, calls, pieces = run(char_by_char(f"<tool_call>{ADD}</tool_call>"), offered=())
    assert calls == [] and shown == f"<tool_call>{ADD}</tool_call>"
    assert all(len(p) <= 1 for p in pieces)  # nothing held back


def test_plain_text_is_released_as_it_comes() -> None:
    parser = TextCallParser(OFFERED)
    assert parser.feed("Hello ") == "Hello "
    assert parser.feed("world.\nNext <b>line") == "world.\nNext <b>line"
    assert parser.feed(" <tool") == " "  # may be a tag: held
    assert parser.feed("box>") == "<toolbox>"


def test_arguments_that_are_a_json_string_or_not_an_object() -> None:
    _, calls = parse_text_calls('<tool_call>{"name": "add", "arguments": "{\\"a\\": 1, \\"b\\": 2}"}</tool_call>', OFFERED)
    assert dict(calls[0].arguments) == {"a": 1, "b": 2} and calls[0].arguments_error is None
    _, calls = parse_text_calls('<tool_call>{"name": "add", "arguments": [1, 2]}</tool_call>', OFFERED)
    assert calls[0].arguments_error  # run as a call that answers the model with an error


def test_call_ids_are_unique_and_a_mistral_id_is_kept() -> None:
    _, calls = parse_text_calls(f"[TOOL_CALLS][{ADD}, {ADD}]", OFFERED)
    assert len({c.id for c in calls}) == 2
    _, calls = parse_text_calls(CALLS["mistral_call_id"], OFFERED)
    assert calls[0].id == "a1b2C3d4e"


# ---- replay --------------------------------------------------------------------------------


def _turn(fmt: str) -> list[Message]:
    call = ToolCall(id="c1", name="add", arguments={"a": 2, "b": 40}, tool_id="math.add", text_format=fmt)
    return [
        Message(role="user", content="2+40?"),
        Message(role="assistant", content="Let me add.\n", tool_calls=(call,)),
        Message(role="tool", content=[{"type": "text", "text": "42"}], tool_call_id="c1", tool_id="math.add", tool_name="add"),
    ]


def test_hermes_calls_and_results_go_back_as_qwen_templates_write_them() -> None:
    sent = replay(_turn("hermes"))
    assert [m.role for m in sent] == ["user", "assistant", "user"]
    assert sent[1].content == 'Let me add.\n<tool_call>\n{"name": "add", "arguments": {"a": 2, "b": 40}}\n</tool_call>'
    assert sent[1].tool_calls == ()
    assert sent[2].content == "<tool_response>\n42\n</tool_response>"


def test_mistral_and_json_calls_go_back_in_their_own_forms() -> None:
    mistral = replay(_turn("mistral"))
    assert mistral[1].content.endswith('[TOOL_CALLS][{"name": "add", "arguments": {"a": 2, "b": 40}}]')
    assert mistral[2].content == '[TOOL_RESULTS]{"content": "42"}[/TOOL_RESULTS]'
    plain = replay(_turn("json"))
    assert plain[1].content.endswith('{"name": "add", "arguments": {"a": 2, "b": 40}}')
    assert plain[2].content == "Result of the tool call add:\n42"


def test_structured_calls_are_replayed_unchanged() -> None:
    turn = _turn("")
    assert replay(turn) == turn


def test_results_of_several_text_calls_are_one_user_message() -> None:
    calls = tuple(ToolCall(id=f"c{i}", name="add", arguments={}, text_format="hermes") for i in (1, 2))
    results = [Message(role="tool", content=str(i), tool_call_id=f"c{i}", tool_name="add") for i in (1, 2)]
    sent = replay([Message(role="user", content="go"), Message(role="assistant", tool_calls=calls), *results])
    assert [m.role for m in sent] == ["user", "assistant", "user"]
    assert sent[2].content == "<tool_response>\n1\n</tool_response>\n<tool_response>\n2\n</tool_response>"


# ---- the loop guard --------------------------------------------------------------------------


def test_the_guard_stops_a_loop_after_a_long_stretch() -> None:
    guard = RepetitionGuard(min_span=2000)
    fed, stopped_at = 0, None
    for _ in range(1000):
        fed += len("2 + 40 = 42. ")
        if guard.feed("2 + 40 = 42. "):
            stopped_at = fed
            break
    assert stopped_at is not None and 2000 <= stopped_at <= 2200
    paragraph = "A paragraph that a small model keeps writing again and again, word for word.\n"
    assert loop_cut("Intro.\n" + paragraph * 60) is not None


def test_the_guard_leaves_ordinary_long_answers_alone() -> None:
    table = "".join(f"| {i} | {i * i} | {hex(i)} |\n" for i in range(3000))
    code = "".join(f"    total += values[{i}]\n" for i in range(2000))
    prose = " ".join(f"word{i % 97} w{i % 13}" for i in range(5000))
    assert loop_cut(table) is None and loop_cut(code) is None and loop_cut(prose) is None
    assert loop_cut("ha" * 5000, min_span=0) is None  # 0: off


# ---- what servers say about their models --------------------------------------------------


# llama.cpp's /v1/models, as a llama-server (via xllamacpp) answered it for a text-only GGUF.
LLAMA_CPP_MODELS = {
    "models": [{"name": "gemma.gguf", "model": "gemma.gguf", "capabilities": ["completion"], "details": {"format": "gguf"}}],
    "object": "list",
    "data": [{"id": "gemma.gguf", "object": "model", "owned_by": "llamacpp",
              "architecture": {"input_modalities": ["text"], "output_modalities": ["text"]},
              "meta": {"vocab_type": 1, "n_vocab": 262144, "n_ctx": 4096, "n_ctx_train": 32768}}],
}


def test_facts_from_llama_cpp_vllm_lm_studio_and_openrouter_shapes() -> None:
    llama = facts_from(LLAMA_CPP_MODELS["data"][0])
    assert llama.supports_vision is False and llama.context_window == 4096  # the window it runs with
    assert facts_from({"id": "v", "capabilities": ["completion", "multimodal"]}).supports_vision is True
    assert facts_from({"id": "q", "owned_by": "vllm", "max_model_len": 32768}).context_window == 32768
    assert facts_from({"id": "l", "type": "vlm", "max_context_length": 8192}) .supports_vision is True
    router = facts_from({"id": "o", "context_length": 128000, "architecture": {"input_modalities": ["text", "image"]}})
    assert router.supports_vision is True and router.context_window == 128000
    assert facts_from({"id": "plain", "object": "model", "owned_by": "openai"}) == facts_from({})


def test_a_long_call_in_small_pieces_takes_linear_time() -> None:
    import time

    big = "x" * 150_000
    for text in (f'<tool_call>{{"name": "add", "arguments": {{"text": "{big}"}}}}</tool_call>',
                 f'{{"name": "add", "arguments": {{"text": "{big}"}}}}',
                 f'{ADD}\n{{"name": "add", "arguments": {{"text": "{big}"}}}}',
                 f'[TOOL_CALLS]add[ARGS]{{"text": "{big}"}}'):
        started = time.monotonic()
        parser = TextCallParser(OFFERED)
        shown = "".join(parser.feed(text[i : i + 16]) for i in range(0, len(text), 16)) + parser.flush()
        assert shown == "" and parser.calls and time.monotonic() - started < 5, text[:40]
