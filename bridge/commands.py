"""Reading a `/twill ...` command out of a GitHub comment: pure, text in, Command out.

Grammar, with one row per rule in tests/unit/test_commands.py:

    [list marker] [task box] /twill [:] [WORD [WORD]] [--agent provider/model] [text]

on a prose line (see bridge.markdown), followed by any lines up to the next
command line, which become part of the instruction.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache

from bridge.markdown import iter_prose_lines, split_lines, strip_inline_code

INTENT_WORDS: dict[str, str] = {
    "plan": "PLAN",
    "ask": "ASK",
    "dev-env": "DEV_ENVIRONMENT",
    "devenv": "DEV_ENVIRONMENT",
    "dev_env": "DEV_ENVIRONMENT",
    "dev-environment": "DEV_ENVIRONMENT",
    "swe": "SWE",
    "code": "SWE",
}

# Typos are only looked for near these words. Keywords of four or more letters
# accept any single edit; three-letter ones only a swap of neighbouring letters,
# because any other edit of "ask", "new" or "swe" lands on everyday words ("as",
# "task", "few", "now", "see", "she") that must stay free text.
_TYPO_TARGETS = ("plan", "help", "cancel", "code", "devenv", "dev-env", "dev_env")
_TYPO_TARGETS += ("dev-environment", "ask", "new", "swe")

# English words one edit away from a keyword: free text, never a typo.
_NOT_TYPOS = frozenset(
    {
        # plan
        "clan", "elan", "flan", "pan", "plain", "plane", "plank", "plans",
        "plant", "plat", "play",
        # help
        "heap", "held", "hell", "helm", "helps", "hemp", "hep", "kelp", "whelp",
        "yelp",
        # cancel
        "cancer", "cancels",
        # code
        "bode", "cede", "cod", "coda", "codec", "coded", "coder", "codes",
        "codex", "coed", "coke", "come", "cone", "cope", "core", "cote", "cove",
        "lode", "mode", "node", "ode", "rode",
        # swe
        "sew",
    }
)  # fmt: skip
_LONGEST_KEYWORD = max(len(word) for word in _TYPO_TARGETS)

_AGENT_OPTION = "--agent"
_AGENT_VALUE = re.compile(r"[a-z0-9][a-z0-9._-]*(?:/[A-Za-z0-9._:-]+)+")
_AGENT_EXAMPLE = "claude-code/sonnet"
_AGENT_MAX_CHARS = 200  # the dispatches.agent column
_TOKEN = re.compile(r"\S+")
# "--name" is an option anywhere on the line, "-x" only as the first word, so
# "/twill run the tests with -v" stays an instruction.
_OPTION = re.compile(r"(?<!\S)(?:--[A-Za-z][^\s=]*(?:=\S*)?|agent=\S*)", re.I)
_SHORT_OPTION = re.compile(r"-[a-z][^=]*(?:=.*)?")
_HEAD_WORDS = 3  # enough for "new plan" plus one word of text
# Punctuation people put after a keyword ("/twill plan: ...") that is not part of it.
_KEYWORD_TAIL = ".,:;!"
_ECHO_LIMIT = 40


@dataclass(frozen=True)
class Command:
    """A parsed `/twill` command; `problem` says what is wrong when kind is invalid."""

    kind: str  # "run" | "help" | "new" | "cancel" | "invalid"
    intent: str | None
    instruction: str
    agent: str | None
    line: int
    problem: str | None = None
    # Whether a word named the intent ("/twill plan"), rather than the default
    # SWE of free text; a follow-up without one keeps the task's own intent.
    intent_named: bool = field(default=False, compare=False)
    # A lone unknown word ("/twill approve"): too little for a new task, but a
    # fine follow-up to a running one.
    lone_word: str | None = field(default=None, compare=False)


_Span = tuple[int, int]


@dataclass(frozen=True)
class _Token:
    start: int
    end: int
    text: str
    in_code: bool  # inside an inline code span: never a keyword or an option


class _Invalid(Exception):
    """Raised inside the parser with the sentence that ends up in Command.problem."""


class _LoneWord(_Invalid):
    """One unknown word and nothing else: invalid, unless a task runs."""


def find_command(body: str | None, keyword: str = "twill") -> Command | None:
    """The first /twill command in a comment body, or None if there is none."""
    pattern = _command_line(keyword)
    found: tuple[int, str] | None = None
    stop: int | None = None
    lines = split_lines(body)
    in_html_code = _html_code_lines(lines)
    for index, text in iter_prose_lines(body, containing=f"/{keyword}"):
        # Matched on the raw line: the pattern holds no backtick, so a code span
        # can only come before `/twill`, and then the line is not a command.
        text = text.lstrip(_INVISIBLE)
        match = pattern.match(text)
        if match is None:
            dashed = _dashed(keyword).match(text)
            if dashed and found is None and index not in in_html_code:
                word = dashed.group(1).lower()
                problem = (
                    f"Write '/{keyword} {word}' with a space, not '/{keyword}-{word}'."
                )
                return Command("invalid", None, "", None, index, problem)
            continue
        if index in in_html_code:
            continue
        if found is not None:
            stop = index  # a second command line ends the first one's instruction
            break
        found = (index, text[match.end() :])
    if found is None:
        return None

    index, rest = found
    following = lines[index + 1 : stop]
    try:
        return _parse(index, rest.removeprefix(":"), following)
    except _LoneWord as invalid:
        word = rest.removeprefix(":").strip()
        return Command("invalid", None, "", None, index, str(invalid), lone_word=word)
    except _Invalid as invalid:
        return Command("invalid", None, "", None, index, str(invalid))


# Characters that editors and copy-paste leave in front of a line, unseen.
_INVISIBLE = "\ufeff\u200b\u200c\u200d\u2060"
_HTML_CODE = re.compile(r"<(/?)(pre|code)\b[^>]*>", re.IGNORECASE)


def _html_code_lines(lines: list[str]) -> set[int]:
    """Indices of lines that sit inside an HTML <pre> or <code> element."""
    inside: set[int] = set()
    if not any("<pre" in line.lower() or "<code" in line.lower() for line in lines):
        return inside
    depth = 0
    for index, line in enumerate(lines):
        if depth > 0:
            inside.add(index)
        for closing, _ in _HTML_CODE.findall(strip_inline_code(line)):
            depth = max(depth - 1, 0) if closing else depth + 1
    return inside


@lru_cache(maxsize=8)
def _dashed(keyword: str) -> re.Pattern[str]:
    """`/twill-plan`: the label's name typed as a command."""
    return re.compile(
        rf" {{0,3}}/{re.escape(keyword)}-([A-Za-z][\w-]{{0,20}})\b", re.IGNORECASE
    )


@lru_cache(maxsize=8)
def _command_line(keyword: str) -> re.Pattern[str]:
    """The start of a command line: indent, list marker, task box, then /keyword."""
    return re.compile(
        r" {0,3}"
        r"(?:(?:[-*+•]|\d{1,9}[.)])[ \t]+)?"
        r"(?:\[[ xX]\][ \t]+)?"
        rf"/{re.escape(keyword)}(?=[\s:]|$)",
        re.IGNORECASE,
    )


def _parse(index: int, rest: str, following: list[str]) -> Command:
    """The command whose line continues with `rest`, followed by `following` lines."""
    # Options are looked for with code spans blanked, so `--flag` in backticks
    # is text; the instruction keeps the code spans.
    searchable = strip_inline_code(rest)
    agent, options = _take_agent(rest, searchable)
    words = _head_words(rest, searchable, options)
    kind, intent, used = _read_words(words, has_more=_has_text(following))

    removed = sorted(options + [(word.start, word.end) for word in words[:used]])
    text_on_line = _cut(rest, removed)
    named = used == (2 if kind == "new" else 1) and kind in ("run", "new")
    return Command(
        kind,
        intent,
        _instruction(text_on_line, following),
        agent,
        index,
        intent_named=named,
    )


def _take_agent(rest: str, searchable: str) -> tuple[str | None, list[_Span]]:
    """The agent named on the command line, and where its option sits."""
    agent: str | None = None
    spans: list[_Span] = []
    for match in _OPTION.finditer(searchable):
        if spans and match.start() < spans[-1][1]:
            continue  # the value of the option before
        name, equals, value = match.group().partition("=")
        if name.lower() not in (_AGENT_OPTION, "agent"):
            raise _Invalid(_unknown_option(name))
        end = match.end()
        if not equals:
            following = _TOKEN.search(rest, end)
            if following is None:
                raise _Invalid(_missing_agent())
            value, end = following.group(), following.end()
        agent = _agent_value(value, agent)
        spans.append((match.start(), end))
    return agent, spans


def _head_words(rest: str, searchable: str, options: list[_Span]) -> list[_Token]:
    """The first few words of the command line that are not options."""
    words: list[_Token] = []
    option_end = dict(options)
    skip_to = 0
    for match in _TOKEN.finditer(rest):
        if match.start() < skip_to:
            continue
        if match.start() in option_end:
            skip_to = option_end[match.start()]
            continue
        in_code = searchable[match.start() : match.end()] != match.group()
        words.append(_Token(match.start(), match.end(), match.group(), in_code))
        if len(words) == _HEAD_WORDS:
            break
    return words


def _agent_value(value: str, earlier: str | None) -> str:
    """`value` if it names an agent as provider/model; raises _Invalid otherwise."""
    if earlier is not None:
        raise _Invalid("The agent is given more than once.")
    if not value:
        raise _Invalid(_missing_agent())
    if not _AGENT_VALUE.fullmatch(value):
        raise _Invalid(
            f"Agent '{_echo(value)}' is not of the form provider/model, "
            f"such as '{_AGENT_EXAMPLE}'."
        )
    if len(value) > _AGENT_MAX_CHARS:
        raise _Invalid(f"The agent name is over {_AGENT_MAX_CHARS} characters.")
    return value


def _missing_agent() -> str:
    return f"'{_AGENT_OPTION}' needs a value such as '{_AGENT_EXAMPLE}'."


def _unknown_option(text: str) -> str:
    """The problem sentence for an option the parser does not know."""
    name = text.partition("=")[0].lower()
    if _one_edit(name, _AGENT_OPTION):
        return f"Unknown option '{_echo(name)}'. Did you mean '{_AGENT_OPTION}'?"
    return f"Unknown option '{_echo(name)}'; the only option is '{_AGENT_OPTION}'."


def _read_words(words: list[_Token], *, has_more: bool) -> tuple[str, str | None, int]:
    """The kind and intent the leading words ask for, and how many words they use."""
    first = _keyword(words, 0)
    if first is not None and _SHORT_OPTION.fullmatch(first):
        raise _Invalid(_unknown_option(first))
    if first in INTENT_WORDS:
        return "run", INTENT_WORDS[first], 1
    if first in ("help", "cancel"):
        return first, None, 1
    if first == "new":
        second = _keyword(words, 1)
        if second in INTENT_WORDS:
            return "new", INTENT_WORDS[second], 2
        _reject_typo(second)
        return "new", "SWE", 1
    _reject_typo(first)
    if len(words) == 1 and not has_more:
        # One unknown word is too little to spend an agent run on.
        raise _LoneWord(
            f"Unknown word '{_echo(words[0].text)}'; describe the task in a few "
            "words or ask for help."
        )
    return "run", "SWE", 0


def _keyword(words: list[_Token], position: int) -> str | None:
    """The word at `position` as a keyword candidate, or None if it cannot be one."""
    if position >= len(words) or words[position].in_code:
        return None
    return words[position].text.lower().rstrip(_KEYWORD_TAIL)


def _reject_typo(word: str | None) -> None:
    """Raise _Invalid when `word` is one slip away from a keyword."""
    if word is None or word in _NOT_TYPOS or len(word) > _LONGEST_KEYWORD + 1:
        return
    for target in _TYPO_TARGETS:
        near = _one_edit(word, target) if len(target) >= 4 else _swapped(word, target)
        if near:
            raise _Invalid(f"Unknown word '{word}'. Did you mean '{target}'?")


def _one_edit(a: str, b: str) -> bool:
    """Whether a and b are exactly one Damerau-Levenshtein edit apart."""
    if a == b or abs(len(a) - len(b)) > 1:
        return False
    if len(a) > len(b):
        a, b = b, a
    i = 0
    while i < len(a) and a[i] == b[i]:
        i += 1
    if len(a) < len(b):
        return a[i:] == b[i + 1 :]  # one letter inserted
    return a[i + 1 :] == b[i + 1 :] or _swapped(a, b)


def _swapped(a: str, b: str) -> bool:
    """Whether a is b with exactly two neighbouring letters swapped."""
    if len(a) != len(b) or a == b:
        return False
    diff = [i for i in range(len(a)) if a[i] != b[i]]
    return (
        len(diff) == 2
        and diff[1] == diff[0] + 1
        and a[diff[0]] == b[diff[1]]
        and a[diff[1]] == b[diff[0]]
    )


def _cut(text: str, spans: list[_Span]) -> str:
    """`text` without the sorted `spans`, the pieces left joined by single spaces."""
    pieces: list[str] = []
    cursor = 0
    for start, end in spans:
        pieces.append(text[cursor:start])
        cursor = end
    pieces.append(text[cursor:])
    return " ".join(piece.strip() for piece in pieces if piece.strip())


def _instruction(text_on_line: str, following: list[str]) -> str:
    """The command line's text and the lines after it, without blank edges."""
    lines = [text_on_line, *following]
    while lines and not lines[-1].strip():
        lines.pop()
    start = 0
    while start < len(lines) and not lines[start].strip():
        start += 1
    return "\n".join(lines[start:])


def _has_text(lines: list[str]) -> bool:
    return any(line.strip() for line in lines)


def _echo(text: str) -> str:
    """`text` short enough to quote back in a reply."""
    return text if len(text) <= _ECHO_LIMIT else text[: _ECHO_LIMIT - 1] + "…"
