"""What the chat says when a run fails: one plain sentence per error code, the code and the
server's own message one click away ("Details").

The page renders stored errors with this table and hands the same table to the script for
errors that arrive live, so a notice reads the same before and after a reload.
"""

from __future__ import annotations

from typing import Any

GENERIC = "Something went wrong while answering."

ERROR_TEXT: dict[str, str] = {
    "session_busy": "This chat is still answering. Wait for it to finish, or press Stop.",
    "model_unavailable": "The model's server could not be reached.",
    "model_timeout": "The model took too long to answer.",
    "model_error": "The model's server answered with an error.",
    "model_not_found": "That model is not available any more. Pick another one.",
    "model_disabled": "That model is switched off. Pick another one.",
    "tool_not_found": "One of the chosen tools is not available any more.",
    "unsupported_input": "This model can't take that kind of input.",
    "validation_error": "The message could not be sent as it is.",
    "request_too_large": "The message is too large. Try smaller attachments.",
    "not_authenticated": "Your login has expired. Reload the page to log in again.",
    "permission_denied": "You are not allowed to do that.",
    "quota_exceeded": "You have used up your quota for now.",
    "rate_limited": "Too many requests just now. Wait a moment and try again.",
    "network_error": "The server could not be reached. Check your connection.",
    "connection_lost": "The connection to the server was lost; the answer may be incomplete.",
    "nothing_to_regenerate": "There is no question to answer again.",
    "message_folded": "That message is too far back to edit.",
}


def error_view(error: dict[str, Any] | None) -> dict[str, str]:
    """``{"text", "code", "message"}`` for a stored error envelope; the message only when it adds something."""
    error = error or {}
    code = str(error.get("code") or "error")
    text = ERROR_TEXT.get(code, GENERIC)
    message = str(error.get("message") or "")
    return {"text": text, "code": code, "message": "" if message.strip() == text else message}
