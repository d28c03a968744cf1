"""Cleaning of Stack Overflow post HTML into the plain lower-case text the ranker sees.

Two flavours: `clean_text` parses the HTML properly (code blocks dropped wherever they sit,
entities decoded, every link reduced to its text); `clean_text_reference` repeats the
regular expressions of the Azure reference byte for byte, so the reference's filters
(minimum text length) select the same rows and its counts can be reproduced.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

_URL = re.compile(r"^[a-z]+://", re.IGNORECASE)
_SPACES = re.compile(r"\s+")
_BLOCK_TAGS = frozenset({"p", "br", "li", "ul", "ol", "div", "h1", "h2", "h3", "h4", "blockquote", "tr", "hr"})


class _TextExtractor(HTMLParser):
    """Collects visible text: skips <pre> blocks, keeps link text unless it is a bare URL."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._pre_depth = 0
        self._link: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "pre":
            self._pre_depth += 1
        elif tag == "a" and self._pre_depth == 0:
            self._link = []
        elif tag in _BLOCK_TAGS:
            self._emit(" ")

    def handle_endtag(self, tag: str) -> None:
        if tag == "pre":
            self._pre_depth = max(0, self._pre_depth - 1)
            self._emit(" ")
        elif tag == "a" and self._link is not None:
            text, self._link = "".join(self._link), None
            if not _URL.match(text.strip()):
                self._emit(text)
        elif tag in _BLOCK_TAGS:
            self._emit(" ")

    def handle_data(self, data: str) -> None:
        if self._pre_depth:
            return
        if self._link is not None:
            self._link.append(data)
        else:
            self._emit(data)

    def _emit(self, text: str) -> None:
        self.parts.append(text)


def clean_text(html: str | None) -> str:
    """Plain, lower-case, single-spaced text of a post: code blocks dropped, links reduced to their text."""
    if not html:
        return ""
    parser = _TextExtractor()
    parser.feed(html)
    parser.close()
    return _SPACES.sub(" ", "".join(parser.parts)).strip().lower()


_REF_CODE = re.compile(r"<pre><code>.*?</code></pre>")
_REF_LINK = re.compile(r"<a[^>]+>(.*)</a>")
_REF_TAG = re.compile(r"<[^>]+>")
_REF_URL = re.compile(r"[a-z]+://")  # case-sensitive, as in the reference


def _reference_link(match: re.Match[str]) -> str:
    return "" if _REF_URL.match(match.group(1)) else match.group(1)


def clean_text_reference(html: str | None) -> str:
    """The reference's cleaning, quirks included (greedy link match, entities kept, no DOTALL).

    Kept separate on purpose: fixing its quirks would change which posts pass the
    minimum-length filter and the reference's counts (182 originals, 8,260 duplicates)
    would no longer be reproducible.
    """
    if not isinstance(html, str):
        return ""
    text = _REF_CODE.sub("", html)
    text = _REF_LINK.sub(_reference_link, text)
    return _REF_TAG.sub("", text).lower()
