"""Which lines bridge.markdown calls prose, and how it blanks inline code."""

import time

import pytest

from bridge.markdown import prose_lines, split_lines, strip_inline_code

PROSE_CASES = [
    ("plain lines", "a\nb", [(0, "a"), (1, "b")]),
    ("crlf and lone cr", "a\r\nb\rc", [(0, "a"), (1, "b"), (2, "c")]),
    ("backtick fence", "a\n```\nb\n```\nc", [(0, "a"), (4, "c")]),
    ("tilde fence", "~~~\nb\n~~~\nc", [(3, "c")]),
    ("fence with info string", "```python\nb\n```\nc", [(3, "c")]),
    ("fence indented 3 spaces", "   ```\nb\n   ```\nc", [(3, "c")]),
    ("closing fence may be longer", "```\nb\n`````\nc", [(3, "c")]),
    ("shorter fence does not close", "````\nb\n```\nc\n````\nd", [(5, "d")]),
    ("other fence char does not close", "```\nb\n~~~\nc\n```\nd", [(5, "d")]),
    ("closing fence cannot carry text", "```\nb\n``` x\nc\n```\nd", [(5, "d")]),
    ("unclosed fence runs to the end", "a\n```\nb\nc", [(0, "a")]),
    ("two backticks are no fence", "``\nb", [(0, "``"), (1, "b")]),
    ("backtick in info string is no fence", "``` a`b\nc", [(0, "``` a`b"), (1, "c")]),
    ("four spaces is indented code", "    code\nb", [(1, "b")]),
    ("a tab is indented code", "\tcode\nb", [(1, "b")]),
    ("four-space fence is indented code", "    ```\nb", [(1, "b")]),
    ("three spaces are prose", "   a", [(0, "   a")]),
    ("one-line comment blanked", "<!-- x -->\nb", [(0, " " * 10), (1, "b")]),
    ("text after a comment keeps its column", "<!--x-->y", [(0, "        y")]),
    (
        "comment spans lines",
        "a\n<!--\nb\n-->c\nd",
        [(0, "a"), (1, "    "), (3, "   c"), (4, "d")],
    ),
    ("unclosed comment runs to the end", "a <!-- b\nc", [(0, "a       ")]),
    (
        "comment inside a code span opens nothing",
        "`<!--`\nb",
        [(0, "`<!--`"), (1, "b")],
    ),
    ("quote left out", "> a\nb", [(1, "b")]),
    ("quote after 3 spaces left out", "   > a\nb", [(1, "b")]),
    ("quoted fence does not open a fence", "> ```\nb", [(1, "b")]),
    ("fence inside the quote hides a quoted line", "```\n> a\n```\nb", [(3, "b")]),
    ("empty text", "", []),
]


@pytest.mark.parametrize(
    ("text", "expected"),
    [case[1:] for case in PROSE_CASES],
    ids=[case[0] for case in PROSE_CASES],
)
def test_prose_lines(text: str, expected: list[tuple[int, str]]) -> None:
    assert prose_lines(text) == expected


QUOTE_CASES = [
    ("markers removed", "> a\n>b\nc", [(0, "a"), (1, "b"), (2, "c")]),
    ("nested markers removed", "> > a", [(0, "a")]),
    ("code inside a quote still hidden", "> ```\n> b\n> ```\n> c", [(3, "c")]),
    ("quote ending closes its fence", "> ```\n> b\nc", [(2, "c")]),
    ("indented code inside a quote hidden", ">     code\n> b", [(1, "b")]),
    ("comment inside a quote blanked", "> <!--x--> b", [(0, "         b")]),
    ("lazy line ends a quoted fence", "> ```\nx\nb", [(1, "x"), (2, "b")]),
]


@pytest.mark.parametrize(
    ("text", "expected"),
    [case[1:] for case in QUOTE_CASES],
    ids=[case[0] for case in QUOTE_CASES],
)
def test_prose_lines_with_quotes(text: str, expected: list[tuple[int, str]]) -> None:
    assert prose_lines(text, include_quotes=True) == expected


@pytest.mark.parametrize("include_quotes", [False, True], ids=["plain", "quotes"])
@pytest.mark.parametrize(
    "text",
    [case[1] for case in PROSE_CASES + QUOTE_CASES],
    ids=[case[0] for case in PROSE_CASES + QUOTE_CASES],
)
def test_containing_skips_no_line_that_matters(text: str, include_quotes: bool) -> None:
    # Lines without the needle are skipped unscanned; the answer must not change.
    for needle in ("b", "c", "d"):
        every = prose_lines(text, include_quotes=include_quotes)
        wanted = [(i, line) for i, line in every if needle in line.lower()]
        found = prose_lines(text, include_quotes=include_quotes, containing=needle)
        assert found == wanted


def test_containing_ignores_case() -> None:
    assert prose_lines("/TWILL plan\nx", containing="/twill") == [(0, "/TWILL plan")]


def test_prose_lines_of_none_is_empty() -> None:
    assert prose_lines(None) == []


def test_split_lines_normalises_line_endings() -> None:
    assert split_lines("a\r\nb\rc\n") == ["a", "b", "c", ""]


INLINE_CASES = [
    ("no code", "a b", "a b"),
    ("single backticks", "a `b` c", "a     c"),
    ("double backticks hold a single one", "``a`b``", " " * 7),
    ("runs must have equal length", "`a``b`", " " * 6),
    ("unmatched run stays literal", "a ` b", "a ` b"),
    ("unmatched long run, later span", "``` `x`", "```    "),
    ("two spans", "`a` b `c`", "    b    "),
    ("emoji keep their position", "🚀 `x` 🚀", "🚀     🚀"),
]


@pytest.mark.parametrize(
    ("line", "expected"),
    [case[1:] for case in INLINE_CASES],
    ids=[case[0] for case in INLINE_CASES],
)
def test_strip_inline_code(line: str, expected: str) -> None:
    assert strip_inline_code(line) == expected
    assert len(strip_inline_code(line)) == len(line)


@pytest.mark.parametrize(
    "text",
    [
        " ".join("`" * length for length in range(1, 700)),
        "<!--" * 75_000,
        "`a`\n" * 75_000,
    ],
    ids=["many unmatched runs", "many comment openers", "many lines"],
)
def test_scanning_is_linear(text: str) -> None:
    started = time.perf_counter()
    prose_lines(text)
    strip_inline_code(text)
    assert time.perf_counter() - started < 0.5
