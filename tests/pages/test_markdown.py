"""Model output is untrusted: Markdown is rendered, but nothing executable survives."""

from __future__ import annotations

import pytest

from web.markdown import render_markdown, sanitize_html


def test_it_renders_markdown() -> None:
    html = render_markdown("# Title\n\n**bold** and `code`\n\n- a\n- b")
    assert "<h1>Title</h1>" in html and "<strong>bold</strong>" in html and "<code>code</code>" in html and "<li>a</li>" in html


def test_it_shows_raw_html_as_text() -> None:
    html = render_markdown("hello <script>alert(1)</script> <img src=x onerror=alert(2)>")
    assert "<script" not in html and "<img" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


@pytest.mark.parametrize(
    "source",
    [
        "[click](javascript:alert(1))",
        "[click](JAVASCRIPT:alert(1))",
        "[click](data:text/html;base64,PHNjcmlwdD4=)",
        "[click](vbscript:msgbox)",
    ],
)
def test_it_drops_dangerous_link_schemes(source: str) -> None:
    html = render_markdown(source)
    assert "href" not in html.lower()


def test_safe_links_get_rel() -> None:
    html = render_markdown("[site](https://example.com)")
    assert 'href="https://example.com"' in html and "noopener" in html


def test_code_blocks_are_highlighted_and_escaped() -> None:
    html = render_markdown('```python\nprint("<b>hi</b>")\n```')
    assert '<pre class="code" data-lang="python">' in html
    assert '<span class="nb">print</span>' in html
    assert "<b>" not in html and "&lt;b&gt;" in html


def test_unknown_language_is_plain_escaped_text() -> None:
    html = render_markdown("```nosuchlang\n<i>x</i>\n```")
    assert "&lt;i&gt;x&lt;/i&gt;" in html and "<i>" not in html


def test_a_hostile_language_label_cannot_break_out() -> None:
    html = render_markdown('```"><script>alert(1)</script>\nx\n```')
    assert "<script" not in html


def test_the_sanitizer_strips_event_handlers_and_scripts_even_from_html() -> None:
    dirty = '<p onclick="x()">a</p><script>bad()</script><a href="javascript:x">l</a><svg onload=x></svg><iframe src=x></iframe>'
    clean = sanitize_html(dirty)
    for bad in ("onclick", "<script", "javascript:", "<svg", "onload", "<iframe"):
        assert bad not in clean.lower()
    assert "<p>a</p>" in clean


def test_tables_render() -> None:
    html = render_markdown("| a | b |\n|---|---|\n| 1 | 2 |")
    assert "<table>" in html and "<td>1</td>" in html
