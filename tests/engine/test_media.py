from __future__ import annotations

import base64

import pytest

from inference.engine.errors import InputTooLarge, InvalidRequest, UnsupportedInput
from inference.engine.media import image_data_uri, normalize_audio, normalize_image

SAMPLES = {
    "image/png": b"\x89PNG\r\n\x1a\n" + b"\0" * 8,
    "image/jpeg": b"\xff\xd8\xff\xdb" + b"\0" * 8,
    "image/gif": b"GIF89a" + b"\0" * 8,
    "image/webp": b"RIFF\x10\0\0\0WEBPVP8 ",
}


@pytest.mark.parametrize(("mime", "raw"), SAMPLES.items())
def test_mime_is_sniffed_from_the_bytes(mime: str, raw: bytes) -> None:
    b64 = base64.b64encode(raw).decode()
    assert normalize_image(b64) == (mime, b64)
    assert normalize_image(f"data:image/png;base64,{b64}") == (mime, b64)  # declared type ignored
    assert image_data_uri(b64) == f"data:{mime};base64,{b64}"


def test_whitespace_missing_padding_and_urlsafe_base64_are_accepted() -> None:
    raw = SAMPLES["image/png"] + b"\xfb\xff"
    canonical = base64.b64encode(raw).decode()
    lenient = base64.urlsafe_b64encode(raw).decode().rstrip("=")
    assert normalize_image(lenient[:10] + "\n" + lenient[10:]) == ("image/png", canonical)


def test_invalid_base64_is_an_invalid_request() -> None:
    with pytest.raises(InvalidRequest, match="image is not valid base64") as exc:
        normalize_image("not base64!!")
    assert exc.value.status == 400


def test_unknown_image_bytes_are_unsupported() -> None:
    with pytest.raises(UnsupportedInput, match="expected PNG, JPEG, GIF or WEBP"):
        normalize_image(base64.b64encode(b"%PDF-1.7").decode())


def test_the_size_limit_is_named_in_the_error() -> None:
    with pytest.raises(InputTooLarge, match="larger than the 10 byte limit") as exc:
        normalize_image(base64.b64encode(SAMPLES["image/png"]).decode(), max_bytes=10)
    assert exc.value.code == "input_too_large" and exc.value.detail == {"size": 16, "limit": 10}


def test_audio_formats() -> None:
    assert normalize_audio("data:audio/wav;base64,UklGRg==", "WAV") == ("wav", "UklGRg==")
    assert normalize_audio("SUQz", "audio/mpeg") == ("mp3", "SUQz")
    with pytest.raises(UnsupportedInput):
        normalize_audio("SUQz", "ogg")
