"""Image and audio inputs: accept bare base64 or ``data:`` URIs, hand back bare base64.

The MIME type is sniffed from the bytes, not trusted from a data URI: OpenAI-style servers
build the data URI we send from it, and a wrong declared type makes them reject the image.
"""

from __future__ import annotations

import base64
import binascii
import re

from .errors import InputTooLarge, InvalidRequest, UnsupportedInput

AUDIO_FORMATS = ("wav", "mp3")
INVALID_BASE64 = "{what} is not valid base64"
UNSUPPORTED_IMAGE = "unsupported image format: expected PNG, JPEG, GIF or WEBP"
UNSUPPORTED_AUDIO = "unsupported audio format {format!r}: expected wav or mp3"
TOO_LARGE = "{what} is {size} bytes, larger than the {limit} byte limit"

_DATA_URI = re.compile(r"^data:(?P<mime>[^;,]*)(?:;[^,]*)?,", re.IGNORECASE)
_WHITESPACE = re.compile(r"\s+")


def _sniff_image(raw: bytes) -> str | None:
    if raw.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if raw.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if raw.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    if raw[:4] == b"RIFF" and raw[8:12] == b"WEBP":
        return "image/webp"
    return None


def _decode(value: str, *, what: str, max_bytes: int | None) -> tuple[str, bytes]:
    """Strip a data-URI prefix and whitespace, validate; returns (bare_b64, raw bytes)."""
    bare = _DATA_URI.sub("", value.strip(), count=1)
    bare = _WHITESPACE.sub("", bare)
    try:
        raw = base64.b64decode(bare, validate=True)
    except (binascii.Error, ValueError):
        # be lenient with missing padding and the URL-safe alphabet, then re-encode canonically
        try:
            raw = base64.urlsafe_b64decode(bare + "=" * (-len(bare) % 4))
        except (binascii.Error, ValueError):
            raise InvalidRequest(INVALID_BASE64.format(what=what)) from None
        bare = base64.b64encode(raw).decode("ascii")
    if not raw:
        raise InvalidRequest(INVALID_BASE64.format(what=what))
    if max_bytes is not None and len(raw) > max_bytes:
        raise InputTooLarge(
            TOO_LARGE.format(what=what, size=len(raw), limit=max_bytes),
            detail={"size": len(raw), "limit": max_bytes},
        )
    return bare, raw


def normalize_image(value: str, *, max_bytes: int | None = None) -> tuple[str, str]:
    """``(mime, bare_base64)`` of an image given as bare base64 or a ``data:`` URI."""
    bare, raw = _decode(value, what="image", max_bytes=max_bytes)
    mime = _sniff_image(raw)
    if mime is None:
        raise UnsupportedInput(UNSUPPORTED_IMAGE)
    return mime, bare


def image_data_uri(value: str, *, max_bytes: int | None = None) -> str:
    mime, bare = normalize_image(value, max_bytes=max_bytes)
    return f"data:{mime};base64,{bare}"


def normalize_audio(value: str, audio_format: str, *, max_bytes: int | None = None) -> tuple[str, str]:
    """``(format, bare_base64)``; the format must be one OpenAI's ``input_audio`` defines."""
    fmt = audio_format.lower().removeprefix("audio/")
    fmt = {"mpeg": "mp3", "x-wav": "wav", "wave": "wav"}.get(fmt, fmt)
    if fmt not in AUDIO_FORMATS:
        raise UnsupportedInput(UNSUPPORTED_AUDIO.format(format=audio_format))
    bare, _ = _decode(value, what="audio", max_bytes=max_bytes)
    return fmt, bare
