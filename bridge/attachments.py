"""Finding the files and images GitHub hosts for an issue or comment: pure, Markdown in.

What counts:

- Only URLs GitHub itself hosts for uploads (see _forms), https only. On an
  Enterprise host, `web_host` takes the place of github.com; the
  githubusercontent.com hosts are recognised only for github.com itself,
  since Enterprise serves uploads from its own host.
- Only text outside code counts: fenced, indented and inline code and HTML
  comments are skipped. Quoted lines (`> ...`) count, because a quoted
  screenshot is still part of what the reporter showed.
- One Attachment per asset, in order of first appearance; private-user-images
  URLs that differ only in their signed `?jwt=` query are the same asset.

How the file name is chosen, first match wins:

1. The alt or link text (from any mention of the asset) when it ends in an
   extension with a known media type: `[build.log](...)`.
2. For files: the last segment of the URL, which GitHub derives from the
   uploaded name.
3. For images: the alt or link text when it is not a generic word such as
   "image" or "screenshot", with the URL's extension, else `.png`.
4. For images: the last URL segment, with `.png` when it has no known extension
   (user-attachments asset URLs never carry one).

Names are made safe: control characters dropped, `/` and `\\` turned into `_`,
at most 255 characters with the extension kept, and "attachment" when nothing
usable is left.
"""

from __future__ import annotations

import html
import mimetypes
import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

from bridge.markdown import iter_prose_lines, strip_inline_code

if TYPE_CHECKING:  # only for the annotations; the parsing needs no trigger rules
    from bridge.triggers import IssueSnapshot, Trigger

_GENERIC_NAMES = frozenset(
    {"image", "img", "screenshot", "screen shot", "picture", "photo", "file"}
    | {"attachment", "untitled", "download", "preview", "clipboard"}
)
# Media types mimetypes lacks or gets wrong for what people upload to issues.
_EXTRA_TYPES = {
    ".log": "text/plain",
    ".md": "text/markdown",
    ".webp": "image/webp",
    ".heic": "image/heic",
    ".mov": "video/quicktime",
    ".gz": "application/gzip",
    ".tgz": "application/gzip",
    ".yaml": "application/yaml",
    ".yml": "application/yaml",
}
_FALLBACK_NAME = "attachment"
_MAX_NAME = 255
# How far back from a URL to look for the `[` or `<` that introduces it; longer
# alt texts are not names anyone would want, and the bound keeps scans linear.
_LOOKBEHIND = 512

# Anything that can sit in a URL; quotes, brackets and backticks end it.
_URL = re.compile(r"https://[^\s<>\"'`\[\]{}|\\^]+", re.IGNORECASE)
# GFM autolinks drop these from the end of a bare URL (GFM 6.9).
_TRAILING = "?!.,:*_~;"
_PAREN = re.compile(r"[()]")
_TAG_ATTRIBUTE = re.compile(
    r"([A-Za-z_:][-A-Za-z0-9_:.]*)\s*=\s*(?:\"([^\"]*)\"|'([^']*)'|([^\s\"'=<>`]+))"
)
_TAG_START = re.compile(r"<(img|a)\b", re.IGNORECASE)
_LINK_END = re.compile(r"</a\s*>", re.IGNORECASE)
_ANY_TAG = re.compile(r"<[^>]*>")
# CommonMark 2.4: a backslash before ASCII punctuation makes it literal.
_BACKSLASH_ESCAPE = re.compile(r"\\([!-/:-@\[-`{-~])")
_EXTENSION = re.compile(r"\.[A-Za-z0-9]{1,10}$")


@dataclass(frozen=True)
class Attachment:
    """A GitHub-hosted upload referenced from Markdown."""

    url: str
    filename: str
    media_type: str
    kind: str  # "image" | "file"
    asset_id: str | None


@dataclass(frozen=True)
class _Mention:
    url: str
    kind: str
    asset_id: str | None
    segment: str  # last path segment, percent-decoded
    key: str  # what makes two mentions the same asset
    text: str  # alt or link text, "" when there is none


def find_attachments(
    markdown: str | None, web_host: str = "github.com"
) -> list[Attachment]:
    """GitHub-hosted attachments outside code, once each, in order of appearance."""
    groups: dict[str, list[_Mention]] = {}
    for mention in _mentions(markdown, web_host.lower()):
        groups.setdefault(mention.key, []).append(mention)
    return [_attachment(mentions) for mentions in groups.values()]


def _mentions(markdown: str | None, web_host: str) -> Iterator[_Mention]:
    """Every reference to a GitHub upload on the lines outside code, in order."""
    forms = _forms(web_host)
    known: dict[str, _Mention | None] = {}  # a body often repeats its URLs
    for _, line in iter_prose_lines(
        markdown, include_quotes=True, containing="https://"
    ):
        searchable = strip_inline_code(line)
        for match in _URL.finditer(searchable):
            url = _trim(match.group())
            if url not in known:
                known[url] = _recognise(forms, html.unescape(url))
            mention = known[url]
            if mention is not None:
                end = match.start() + len(url)
                yield replace(mention, text=_context_text(line, match.start(), end))


@lru_cache(maxsize=8)
def _forms(web_host: str) -> tuple[tuple[re.Pattern[str], str], ...]:
    """The URL shapes of GitHub uploads on `web_host`, each with its kind."""
    host = rf"(?i:{re.escape(web_host)})"
    segment = r"[^/?#]+"
    tail = r"(?:\?[^#]*)?(?:#.*)?"
    forms = [
        (rf"https://{host}/user-attachments/assets/(?P<id>[A-Za-z0-9-]+)", "image"),
        (rf"https://{host}/user-attachments/files/(?P<id>\d+)/{segment}", "file"),
        (
            rf"https://{host}/{segment}/{segment}/assets/\d+/(?P<id>[A-Za-z0-9-]+)",
            "image",
        ),
        (rf"https://{host}/{segment}/{segment}/files/(?P<id>\d+)/{segment}", "file"),
    ]
    if web_host == "github.com":
        images = r"(?i:(?:private-)?user-images\.githubusercontent\.com)"
        stem = r"(?P<id>[^/?#]+)\.[A-Za-z0-9]{1,10}"
        forms.append((rf"https://{images}/\d+/{stem}", "image"))
    return tuple((re.compile(pattern + tail), kind) for pattern, kind in forms)


def _trim(url: str) -> str:
    """`url` up to the `)` that closes a Markdown link, without a sentence's end."""
    depth = 0
    for paren in _PAREN.finditer(url):
        if paren.group() == "(":
            depth += 1
        elif depth:
            depth -= 1
        else:
            url = url[: paren.start()]
            break
    return url.rstrip(_TRAILING)


def _recognise(
    forms: tuple[tuple[re.Pattern[str], str], ...], url: str
) -> _Mention | None:
    """A mention (without text) if `url` has the shape of a GitHub upload."""
    for pattern, kind in forms:
        match = pattern.fullmatch(url)
        if match:
            parts = urlsplit(url)
            path = parts.path
            asset_id = match.group("id")
            # githubusercontent names are only unique under their user id, and a
            # private-user-images URL differs from the next only in its signed query.
            hosted = (parts.hostname or "").endswith(".githubusercontent.com")
            key = path if hosted else asset_id
            segment = unquote(path.rsplit("/", 1)[-1])
            return _Mention(url, kind, asset_id, segment, f"{kind}:{key.lower()}", "")
    return None


def _context_text(line: str, start: int, end: int) -> str:
    """The alt or link text around the URL at line[start:end], or ""."""
    before = line[max(0, start - _LOOKBEHIND) : start]
    markdown_text = _markdown_text(before)
    if markdown_text is not None:
        return markdown_text
    return _html_text(line, start, end)


def _markdown_text(before: str) -> str | None:
    """The `[text]` of `[text](` or `![text](` ending `before`, or None."""
    head = before.removesuffix("<").rstrip(" \t")
    if not head.endswith("]("):
        return None
    close = len(head) - 2
    depth = 0
    i = close
    while i > 0:
        # Walk back bracket by bracket so `[![alt](img)](link)` pairs up right.
        i = max(head.rfind("[", 0, i), head.rfind("]", 0, i))
        if i < 0:
            return None
        if head[i] == "]":
            depth += 1
        elif depth:
            depth -= 1
        else:
            return _unescape(head[i + 1 : close])
    return None


def _unescape(text: str) -> str:
    """Markdown text as it reads: backslash escapes and HTML entities resolved."""
    return html.unescape(_BACKSLASH_ESCAPE.sub(r"\1", text)).strip()


def _html_text(line: str, start: int, end: int) -> str:
    """The alt of an `<img>` or the text of an `<a>` whose src or href is the URL."""
    lower = max(0, start - _LOOKBEHIND)
    opening = line.rfind("<", lower, start)
    if opening < 0 or ">" in line[opening:start]:
        return ""
    tag = _TAG_START.match(line, opening)
    closing = line.find(">", end, end + _LOOKBEHIND)
    if tag is None or closing < 0:
        return ""

    attributes = {
        m.group(1).lower(): m.group(2) or m.group(3) or m.group(4) or ""
        for m in _TAG_ATTRIBUTE.finditer(line, opening, closing)
    }
    if tag.group(1).lower() == "img":
        return html.unescape(attributes.get("alt", "")).strip()
    finish = _LINK_END.search(line, closing, closing + _LOOKBEHIND)
    inner = line[closing + 1 : finish.start()] if finish else ""
    return html.unescape(_ANY_TAG.sub("", inner)).strip()


def _attachment(mentions: list[_Mention]) -> Attachment:
    """One Attachment from every mention of the same asset; the first sets the URL."""
    first = mentions[0]
    texts = [m.text for m in mentions if m.text]
    filename = _filename(first, texts)
    return Attachment(
        first.url,
        filename,
        _media_type(filename, first.kind),
        first.kind,
        first.asset_id,
    )


def _filename(mention: _Mention, texts: list[str]) -> str:
    """The file name for an asset, by the rules in the module docstring."""
    for text in texts:
        if _known_extension(text):
            return _safe(text)
    segment = mention.segment
    if mention.kind == "file":
        return _safe(segment)
    extension = _known_extension(segment) or ".png"
    for text in texts:
        if text.lower() not in _GENERIC_NAMES:
            return _safe(text + extension)
    return _safe(segment if _known_extension(segment) else segment + extension)


def _media_type(filename: str, kind: str = "file") -> str:
    """The media type of `filename`'s extension; else PNG or octet-stream by kind."""
    extension = _known_extension(filename)
    if extension:
        return _type_of(extension)
    return "image/png" if kind == "image" else "application/octet-stream"


def _known_extension(name: str) -> str:
    """The lowercased extension of `name` if its media type is known, else ""."""
    match = _EXTENSION.search(name)
    if match is None:
        return ""
    extension = match.group().lower()
    return extension if _type_of(extension) else ""


def _type_of(extension: str) -> str:
    if extension in _EXTRA_TYPES:
        return _EXTRA_TYPES[extension]
    strict, loose = _builtin_types()
    return strict.get(extension) or loose.get(extension) or ""


@lru_cache(maxsize=1)
def _builtin_types() -> tuple[dict[str, str], dict[str, str]]:
    """Python's built-in extension table, ignoring the host's /etc/mime.types."""
    # A fresh MimeTypes starts from the built-in defaults only, so a file's media
    # type does not depend on which machine the bridge runs on. (Building it
    # makes the mimetypes module read the host's tables once, for its own use.)
    table = mimetypes.MimeTypes()
    return table.types_map[True], table.types_map[False]


def _safe(name: str) -> str:
    """`name` fit to be a file name: no controls, no separators, at most 255 chars."""
    cleaned = "".join(
        "_" if char in "/\\" else char
        for char in name
        if unicodedata.category(char) != "Cc"
    ).strip()
    if not cleaned.strip("."):
        cleaned = _FALLBACK_NAME
    if len(cleaned) <= _MAX_NAME:
        return cleaned
    extension = _known_extension(cleaned)
    return cleaned[: _MAX_NAME - len(extension)] + extension


def trigger_attachments(
    issue: IssueSnapshot, trigger: Trigger, web_host: str
) -> list[Attachment]:
    """The issue body's attachments, then the triggering comment's new ones."""
    found = find_attachments(issue.body, web_host)
    seen = {(a.kind, a.asset_id or a.url) for a in found}
    for extra in find_attachments(trigger.comment_body, web_host):
        if (extra.kind, extra.asset_id or extra.url) not in seen:
            seen.add((extra.kind, extra.asset_id or extra.url))
            found.append(extra)
    return found
