"""Model output as safe HTML: Markdown (markdown-it-py) -> highlighted code (Pygments) -> nh3.

Model output is untrusted input. Raw HTML in it is never passed through (markdown-it runs with
``html=False``, so ``<script>`` becomes visible text), and the result is sanitized by nh3 with
a short allow-list anyway, so a bug in either layer alone cannot put a script or an event
handler on the page.
"""

from __future__ import annotations

from functools import lru_cache
from html import escape

import nh3
from markdown_it import MarkdownIt
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import get_lexer_by_name
from pygments.util import ClassNotFound

__all__ = ["render_markdown", "sanitize_html"]

ALLOWED_TAGS = {
    "a", "abbr", "b", "blockquote", "br", "code", "del", "details", "div", "em", "h1", "h2", "h3", "h4",
    "h5", "h6", "hr", "i", "kbd", "li", "ol", "p", "pre", "s", "span", "strong", "sub", "summary", "sup",
    "table", "tbody", "td", "th", "thead", "tr", "ul",
}  # no img: remote images would leak the reader's address (and the CSP blocks them anyway)
ALLOWED_ATTRIBUTES = {
    "a": {"href", "title"},
    "code": {"class"},
    "div": {"class"},
    "pre": {"class", "data-lang"},
    "span": {"class"},
    "td": {"align"},
    "th": {"align"},
    "ol": {"start"},
}
URL_SCHEMES = {"http", "https", "mailto"}
# Pygments token classes are short ([a-z0-9]{1,3}); anything else on a span is dropped.
_FORMATTER = HtmlFormatter(nowrap=True)
MAX_HIGHLIGHT_CHARS = 100_000  # past this, a code block is shown plain: highlighting is not free


def _highlight(code: str, lang: str, _attrs: str) -> str:
    lang = (lang or "").strip().split()[0] if (lang or "").strip() else ""
    lexer = None
    if lang and len(code) <= MAX_HIGHLIGHT_CHARS:
        try:
            lexer = get_lexer_by_name(lang)
        except ClassNotFound:
            lexer = None
    body = highlight(code, lexer, _FORMATTER) if lexer else escape(code)
    label = escape(lang[:30], quote=True)
    return f'<pre class="code" data-lang="{label}"><code class="hl">{body}</code></pre>\n'


@lru_cache(maxsize=1)
def _parser() -> MarkdownIt:
    md = MarkdownIt("commonmark", {"html": False, "breaks": True, "highlight": _highlight, "linkify": False})
    md.enable(["table", "strikethrough"])
    return md


def sanitize_html(html: str) -> str:
    """The allow-list applied to every piece of HTML built from model output."""
    return nh3.clean(
        html,
        tags=ALLOWED_TAGS,
        attributes=ALLOWED_ATTRIBUTES,
        url_schemes=URL_SCHEMES,
        link_rel="noopener noreferrer nofollow",
        strip_comments=True,
    )


def render_markdown(text: str) -> str:
    """Markdown to sanitized HTML, safe to mark as safe in a template."""
    if not text:
        return ""
    return sanitize_html(_parser().render(text))
