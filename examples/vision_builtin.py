"""A vision model reads an instruction from an image and carries it out with a built-in tool.

The script draws the instruction into a PNG with the standard library only (a 5x7 pixel font,
zlib + struct), e.g. ``FETCH HTTP://127.0.0.1:PORT/ AND TELL ME THE SECRET WORD``, serves a
small page at that address from this process, and sends the image to ``/v1/infer/stream``
with the built-in ``fetch`` tool. The model reads the image, calls ``fetch``, and answers.

What the agentsite SERVER needs:
  AGENTSITE_FETCH_ALLOW_HOSTS=127.0.0.1   the built-in fetch refuses private and loopback
                                          addresses unless their host is listed here; the page
                                          is served on this machine, so the server must run on
                                          it too (or use --page-url with a public page instead)
  a model registered with "supports_vision": true (--register-model sets it)
The built-in ``bash`` tool could carry out instructions as well; it stays off until staff turn
on both ``AGENTSITE_BASH_ENABLED=1`` on the server and the tool (``PATCH /v1/tools/bash
{"enabled": true}``); this example sticks to ``fetch``.

Environment (client):
  AGENTSITE_URL       default http://127.0.0.1:8080
  AGENTSITE_API_KEY   an API key (staff only needed for --register-model)
  AGENTSITE_MODEL_ID  a registered vision model; or --register-model with AGENTSITE_MODEL_BASE /
                      AGENTSITE_MODEL_PROTOCOL (default ollama) / AGENTSITE_MODEL_NAME

Example:
  python examples/vision_builtin.py --save instruction.png
  python examples/vision_builtin.py --image my-note.png          # your own image instead
  python examples/vision_builtin.py --register-model --script-fake http://127.0.0.1:18901   # dry run, fake model
"""

from __future__ import annotations

import argparse
import base64
import http.server
import struct
import sys
import threading
import zlib
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _client import (
    API_KEY,
    STREAM_TIMEOUT,
    check,
    client,
    content_text,
    fake_requests,
    model_id,
    print_tool_call,
    script_fake,
    stream_run,
)

SECRET = "PAPAYA"
PAGE = f"""<!doctype html><html><head><title>Instruction target</title></head>
<body><h1>Well done</h1><p>You followed the instruction in the image. The secret word is {SECRET}.</p></body></html>"""

# ---- a PNG with text, stdlib only -------------------------------------------------------------

# 5x7 glyphs, rows top to bottom, '#' = ink.
_FONT_SRC = """
A .###. #...# #...# ##### #...# #...# #...#
B ####. #...# #...# ####. #...# #...# ####.
C .###. #...# #.... #.... #.... #...# .###.
D ####. #...# #...# #...# #...# #...# ####.
E ##### #.... #.... ####. #.... #.... #####
F ##### #.... #.... ####. #.... #.... #....
G .###. #...# #.... #.### #...# #...# .####
H #...# #...# #...# ##### #...# #...# #...#
I .###. ..#.. ..#.. ..#.. ..#.. ..#.. .###.
J ..### ...#. ...#. ...#. ...#. #..#. .##..
K #...# #..#. #.#.. ##... #.#.. #..#. #...#
L #.... #.... #.... #.... #.... #.... #####
M #...# ##.## #.#.# #.#.# #...# #...# #...#
N #...# #...# ##..# #.#.# #..## #...# #...#
O .###. #...# #...# #...# #...# #...# .###.
P ####. #...# #...# ####. #.... #.... #....
Q .###. #...# #...# #...# #.#.# #..#. .##.#
R ####. #...# #...# ####. #.#.. #..#. #...#
S .#### #.... #.... .###. ....# ....# ####.
T ##### ..#.. ..#.. ..#.. ..#.. ..#.. ..#..
U #...# #...# #...# #...# #...# #...# .###.
V #...# #...# #...# #...# #...# .#.#. ..#..
W #...# #...# #...# #.#.# #.#.# #.#.# .#.#.
X #...# #...# .#.#. ..#.. .#.#. #...# #...#
Y #...# #...# .#.#. ..#.. ..#.. ..#.. ..#..
Z ##### ....# ...#. ..#.. .#... #.... #####
0 .###. #...# #..## #.#.# ##..# #...# .###.
1 ..#.. .##.. ..#.. ..#.. ..#.. ..#.. .###.
2 .###. #...# ....# ...#. ..#.. .#... #####
3 ####. ....# ....# .###. ....# ....# ####.
4 ...#. ..##. .#.#. #..#. ##### ...#. ...#.
5 ##### #.... ####. ....# ....# #...# .###.
6 ..##. .#... #.... ####. #...# #...# .###.
7 ##### ....# ...#. ..#.. .#... .#... .#...
8 .###. #...# #...# .###. #...# #...# .###.
9 .###. #...# #...# .#### ....# ...#. .##..
: ..... ..#.. ..#.. ..... ..#.. ..#.. .....
/ ....# ....# ...#. ..#.. .#... #.... #....
. ..... ..... ..... ..... ..... .##.. .##..
- ..... ..... ..... ##### ..... ..... .....
? .###. #...# ....# ...#. ..#.. ..... ..#..
, ..... ..... ..... ..... .##.. ..#.. .#...
"""
FONT = {line[0]: line[2:].split() for line in _FONT_SRC.strip().splitlines()}
FONT[" "] = ["....."] * 7


def png(width: int, height: int, pixels: bytearray) -> bytes:
    """An 8-bit grayscale PNG from ``pixels`` (row-major, one byte per pixel)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    raw = b"".join(b"\x00" + bytes(pixels[y * width : (y + 1) * width]) for y in range(height))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))


def text_png(lines: list[str], scale: int = 4, margin: int = 16) -> bytes:
    """Black text on white, one string per line, in the 5x7 font above."""
    cols = max(len(line) for line in lines)
    width = 2 * margin + cols * 6 * scale
    height = 2 * margin + len(lines) * 10 * scale
    pixels = bytearray(b"\xff" * (width * height))
    for row, line in enumerate(lines):
        for col, ch in enumerate(line.upper()):
            glyph = FONT.get(ch, FONT["?"])
            for gy, bits in enumerate(glyph):
                for gx, bit in enumerate(bits):
                    if bit != "#":
                        continue
                    x0, y0 = margin + (col * 6 + gx) * scale, margin + (row * 10 + gy) * scale
                    for y in range(y0, y0 + scale):
                        pixels[y * width + x0 : y * width + x0 + scale] = b"\x00" * scale
    return png(width, height, pixels)


# ---- the page the instruction points to ------------------------------------------------------


def serve_page(port: int) -> tuple[http.server.HTTPServer, str]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = PAGE.encode()
            self.send_response(200 if self.path in ("/", "/index.html") else 404)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            print(f"(page server: GET {self.path} from {self.client_address[0]})")

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--image", help="send this image instead of the generated one")
    ap.add_argument("--page-url", help="put this URL in the instruction instead of serving a page here")
    ap.add_argument("--save", metavar="PNG", help="also write the generated image to this file")
    ap.add_argument("--page-port", type=int, default=8765,
                    help="serve the page on this port of 127.0.0.1 (default 8765: the same image every run)")
    ap.add_argument("--register-model", action="store_true", help="register the model from AGENTSITE_MODEL_* first")
    ap.add_argument("--script-fake", metavar="FAKE_URL", help="script tests/fakes/fake_llm.py's replies (dry run)")
    opts = ap.parse_args()
    if not API_KEY:
        sys.exit("Set AGENTSITE_API_KEY (manage.py create_api_key <user>).")

    page_server, page_url = (None, opts.page_url) if opts.page_url else serve_page(opts.page_port)
    if opts.image:
        image = Path(opts.image).read_bytes()
    else:
        image = text_png(["FETCH " + page_url, "AND TELL ME THE SECRET WORD"])
        if opts.save:
            Path(opts.save).write_bytes(image)
            print(f"image written to {opts.save}")
    print(f"image: {len(image)} bytes; instruction points to {page_url}")

    with client(STREAM_TIMEOUT) as http:  # the key was checked above, before drawing the image
        mid = model_id(http, opts.register_model, vision=True)
        fetch = check(http.get("/v1/tools/fetch"))
        if not fetch["enabled"]:
            sys.exit("the built-in 'fetch' tool is disabled on this server (PATCH /v1/tools/fetch {\"enabled\": true})")
        if opts.script_fake:  # the fake can't read images: it plays what a vision model would do
            replies = [
                {"tool_calls": [{"name": "fetch", "arguments": {"url": page_url}}]},
                {"content": f"The image asked me to fetch {page_url}. The secret word is {SECRET}.", "chunk_size": 12},
            ]
            script_fake(opts.script_fake, replies)

        body = {
            "model_id": mid,
            "tool_ids": ["fetch"],
            "messages": [
                {"role": "system", "content": "Carry out the instruction written in the user's image, using your tools."},
                {"role": "user", "content": "Do what the image says.", "images": [base64.b64encode(image).decode()]},
            ],
        }
        def show_result(data: dict) -> None:  # with a hint when fetch refused the loopback page
            text = content_text(data["content"])
            flag = " ERROR" if data.get("is_error") else ""
            print(f"← tool result [{data['tool_id']}]{flag}: {text[:300]}")
            if data.get("is_error") and "AGENTSITE_FETCH_ALLOW_HOSTS" not in text and "127.0.0.1" in page_url:
                print("   (is the server running with AGENTSITE_FETCH_ALLOW_HOSTS=127.0.0.1?)")

        done = stream_run(http, body, on_tool_call=print_tool_call, on_tool_result=show_result)
        print(f"done: finish_reason={done['finish_reason']} tool_rounds={done['tool_rounds']}")

    if opts.script_fake:
        log = fake_requests(opts.script_fake)

        def has_image(m: Any) -> bool:  # Ollama: "images": [b64]; OpenAI: an image_url content part
            parts = m.get("content") if isinstance(m.get("content"), list) else []
            return bool(m.get("images")) or any(isinstance(p, dict) and p.get("type") == "image_url" for p in parts)

        seen = any(has_image(m) for r in log for m in (r.get("json") or {}).get("messages") or [] if isinstance(m, dict))
        print(f"(the fake model {'received' if seen else 'did NOT receive'} the image)")
    if page_server:
        page_server.shutdown()


if __name__ == "__main__":
    main()
