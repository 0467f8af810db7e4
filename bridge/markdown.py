"""Which lines of a GitHub comment are prose, for the command and attachment parsers.

A deliberately small, line-based subset of GitHub-flavoured Markdown
(https://github.github.com/gfm/): it knows fenced and indented code, HTML
comments and block quotes, and nothing else. Where it has to guess, it guesses
"not prose", because a missed trigger is cheaper than an unwanted agent run.

Simplifications, each on the safe side:

- Any line indented by 4 or more columns is indented code, even where
  CommonMark would read it as a paragraph or list continuation.
- Text in an HTML comment is replaced by spaces, so a line that only holds a
  comment comes back blank and text after ``-->`` keeps its column.
- Code spans are found one line at a time, and a backslash before a backtick
  is not treated as an escape.

Everything here runs in time linear in the input: bodies are untrusted and may
be hundreds of kilobytes long.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from functools import lru_cache
from typing import NamedTuple

# Up to three spaces, then three or more backticks or tildes (GFM 4.5).
_FENCE = re.compile(r" {0,3}(`{3,}|~{3,})")
_BACKTICKS = re.compile(r"`+")
_QUOTE_MARKER = re.compile(r" {0,3}> ?")
_COMMENT_OPEN = "<!--"
_COMMENT_CLOSE = "-->"
# First characters of a line that may open or hide a block; others start prose.
_MAY_START_BLOCK = frozenset(" \t>`~")


class _Fence(NamedTuple):
    char: str
    length: int
    depth: int  # how many quote markers the fence sits under


def split_lines(text: str | None) -> list[str]:
    """The lines of `text` after turning CRLF and lone CR into LF; [] for None."""
    if not text:
        return []
    return _normalise(text).split("\n")


def prose_lines(
    text: str | None, *, include_quotes: bool = False, containing: str | None = None
) -> list[tuple[int, str]]:
    """(index, text) of each line outside code and HTML comments, and outside quotes.

    With `include_quotes`, quoted lines count too, returned without their `>`
    markers; code inside a quote is still left out. With `containing`, only
    the prose lines holding that string (in any case) come back.
    """
    return list(
        iter_prose_lines(text, include_quotes=include_quotes, containing=containing)
    )


def iter_prose_lines(
    text: str | None, *, include_quotes: bool = False, containing: str | None = None
) -> Iterator[tuple[int, str]]:
    """prose_lines, one line at a time, for callers that stop at the first match."""
    if not text:
        return
    normalised = _normalise(text)
    lines = normalised.split("\n")
    if containing is None:
        yield from _scan(lines, range(len(lines)), include_quotes)
        return
    # With a needle, only lines that hold it or may open or close a block are
    # scanned, and none after the last line that holds it.
    needle = re.compile(re.escape(containing), re.IGNORECASE)
    last_end = -1
    for match in needle.finditer(normalised):
        last_end = match.end()
    if last_end < 0:
        return
    end = normalised.find("\n", last_end)
    events = _lines_that_matter(
        normalised, needle.pattern, include_quotes, len(normalised) if end < 0 else end
    )
    for index, line in _scan(lines, events, include_quotes):
        if needle.search(line):
            yield index, line


def strip_inline_code(line: str) -> str:
    """`line` with every code span, backticks included, replaced by as many spaces."""
    if "`" not in line:
        return line
    starts: list[int] = []
    lengths: list[int] = []
    for match in _BACKTICKS.finditer(line):
        starts.append(match.start())
        lengths.append(match.end() - match.start())

    # A span closes at the next run of exactly the same length (CommonMark 6.1).
    # Knowing each run's next same-length partner up front keeps this linear.
    partner = [-1] * len(starts)
    last_seen: dict[int, int] = {}
    for i in range(len(starts) - 1, -1, -1):
        partner[i] = last_seen.get(lengths[i], -1)
        last_seen[lengths[i]] = i

    pieces: list[str] = []
    cursor = 0
    i = 0
    while i < len(starts):
        j = partner[i]
        if j < 0:
            i += 1  # an unmatched run is literal text
            continue
        end = starts[j] + lengths[j]
        pieces.append(line[cursor : starts[i]])
        pieces.append(" " * (end - starts[i]))
        cursor = end
        i = j + 1
    pieces.append(line[cursor:])
    return "".join(pieces)


def _normalise(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _lines_that_matter(
    text: str, needle: str, include_quotes: bool, end: int
) -> Iterator[int]:
    """Indices of lines before `end` that match `needle` or may start or end a block."""
    # Any other line is prose or code according to the state it finds, and
    # leaves that state as it was, so skipping it changes no answer. The one
    # exception, a quote ending under a quoted fence, is handled in _scan.
    pattern = _events(needle, include_quotes)
    line = 0
    cursor = 0
    last = -1
    for match in pattern.finditer(text, 0, end):
        line += text.count("\n", cursor, match.start())
        cursor = match.start()
        if line != last:
            last = line
            yield line


@lru_cache(maxsize=16)
def _events(needle: str, include_quotes: bool) -> re.Pattern[str]:
    """What makes a line worth scanning: the needle, a fence, a comment edge."""
    # Without quotes, only a fence at the margin (up to 3 spaces) can matter.
    fence = r"^[ \t>]*(?:```|~~~)" if include_quotes else r"^ {0,3}(?:```|~~~)"
    return re.compile(rf"{fence}|<!--|-->|{needle}", re.IGNORECASE | re.MULTILINE)


def _scan(
    lines: list[str], indices: Iterable[int], include_quotes: bool
) -> Iterator[tuple[int, str]]:
    """The prose among lines[i] for i in `indices`, which come in increasing order."""
    scanner = _Scanner(include_quotes)
    previous = -1
    for index in indices:
        # A quoted fence ends on the first line with fewer `>`, which may be one
        # that was skipped; replay the skipped lines until that fence is gone.
        skipped = previous + 1
        while skipped < index and scanner.fence is not None and scanner.fence.depth:
            scanner.feed(lines[skipped])
            skipped += 1
        previous = index

        line = lines[index]
        # Most lines are plain text; settling those here keeps 100k lines fast.
        if (
            scanner.fence is None
            and not scanner.in_comment
            and line[:1] not in _MAY_START_BLOCK
            and "<!" not in line
        ):
            yield index, line
            continue
        prose = scanner.feed(line)
        if prose is not None:
            yield index, prose


def _columns(line: str) -> int:
    """Width of the leading white space, with tabs stopping every 4 columns."""
    width = 0
    for char in line:
        if char == " ":
            width += 1
        elif char == "\t":
            width += 4 - width % 4
        else:
            break
    return width


def _unquote(line: str) -> tuple[int, str]:
    """How many `>` markers open `line`, and the line without them."""
    if line.lstrip(" ")[:1] != ">":
        return 0, line
    depth = 0
    pos = 0
    while match := _QUOTE_MARKER.match(line, pos):
        depth += 1
        pos = match.end()
    return depth, line[pos:]


def _unquote_to(line: str, depth: int) -> str | None:
    """`line` with exactly `depth` quote markers removed, or None if it has fewer."""
    pos = 0
    for _ in range(depth):
        match = _QUOTE_MARKER.match(line, pos)
        if match is None:
            return None
        pos = match.end()
    return line[pos:]


class _Scanner:
    """Carries fence and comment state from one line to the next."""

    def __init__(self, include_quotes: bool) -> None:
        self.include_quotes = include_quotes
        self.fence: _Fence | None = None
        self.in_comment = False

    @property
    def idle(self) -> bool:
        """Whether no fence or comment is open, so a plain line is just prose."""
        return self.fence is None and not self.in_comment

    def feed(self, line: str) -> str | None:
        """The prose part of the next line, or None when the line is not prose."""
        if self.fence is not None and self._inside_fence(self.fence, line):
            return None
        if self.in_comment:
            end = line.find(_COMMENT_CLOSE)
            if end < 0:
                return None
            self.in_comment = False
            cut = end + len(_COMMENT_CLOSE)
            return self._mask_comments(" " * cut + line[cut:])

        depth, content = _unquote(line)
        if depth and not self.include_quotes:
            return None
        if content[:1] in (" ", "\t") and _columns(content) >= 4:
            return None
        opening = _FENCE.match(content)
        if opening:
            run = opening.group(1)
            # A backtick fence's info string may not contain a backtick (GFM 4.5).
            if run[0] == "~" or "`" not in content[opening.end() :]:
                self.fence = _Fence(run[0], len(run), depth)
                return None
        return self._mask_comments(content)

    def _inside_fence(self, fence: _Fence, line: str) -> bool:
        """Whether `line` belongs to the open `fence`; closes it on a closing fence."""
        content = _unquote_to(line, fence.depth) if fence.depth else line
        if content is None:
            # The quote holding the fence has ended, and the fence with it.
            self.fence = None
            return False
        stripped = content.lstrip(" ")
        if len(content) - len(stripped) > 3 or stripped[:1] != fence.char:
            return True
        run = len(stripped) - len(stripped.lstrip(fence.char))
        if run >= fence.length and not stripped[run:].strip():
            self.fence = None
        return True

    def _mask_comments(self, line: str) -> str:
        """`line` with HTML comments blanked; an unclosed one carries to later lines."""
        if _COMMENT_OPEN not in line:
            return line
        # Search a copy without code spans: `<!--` inside backticks opens nothing.
        searchable = strip_inline_code(line)
        pieces: list[str] = []
        cursor = 0
        while (start := searchable.find(_COMMENT_OPEN, cursor)) >= 0:
            pieces.append(line[cursor:start])
            end = searchable.find(_COMMENT_CLOSE, start + len(_COMMENT_OPEN))
            if end < 0:
                self.in_comment = True
                pieces.append(" " * (len(line) - start))
                return "".join(pieces)
            cursor = end + len(_COMMENT_CLOSE)
            pieces.append(" " * (cursor - start))
        pieces.append(line[cursor:])
        return "".join(pieces)
