"""Which GitHub uploads bridge.attachments finds in Markdown, and how it names them."""

import time

import pytest

from bridge.attachments import Attachment, find_attachments

U1 = "0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0"
U2 = "9f8e7d6c-5b4a-4938-8271-605f4e3d2c1b"
ASSET = f"https://github.com/user-attachments/assets/{U1}"
FILE = "https://github.com/user-attachments/files/17230123/build.log"
REPO_ASSET = f"https://github.com/octo/app/assets/583231/{U2}"
REPO_FILE = "https://github.com/octo/app/files/1234567/report.pdf"
USER_IMAGE = "https://user-images.githubusercontent.com/583231/195811232-ab12cd34.jpg"
PRIVATE = "https://private-user-images.githubusercontent.com/583231/298765-c0ffee.png"
GHE_ASSET = f"https://ghe.example.com/user-attachments/assets/{U2}"
GHE_FILE = "https://ghe.example.com/octo/app/files/77/trace.txt"
FENCE = "```"


def image(
    url: str, filename: str, asset_id: str, media: str = "image/png"
) -> Attachment:
    return Attachment(url, filename, media, "image", asset_id)


def upload(url: str, filename: str, asset_id: str, media: str) -> Attachment:
    return Attachment(url, filename, media, "file", asset_id)


ASSET_PNG = image(ASSET, f"{U1}.png", U1)
BUILD_LOG = upload(FILE, "build.log", "17230123", "text/plain")

# (id, markdown, attachments found on github.com)
CASES = [
    # Every URL form
    ("asset with generic alt", f"![Image]({ASSET})", [ASSET_PNG]),
    ("asset with empty alt", f"![]({ASSET})", [ASSET_PNG]),
    (
        "asset alt names it",
        f"![Login page]({ASSET})",
        [image(ASSET, "Login page.png", U1)],
    ),
    (
        "asset alt with extension",
        f"![flow.svg]({ASSET})",
        [image(ASSET, "flow.svg", U1, "image/svg+xml")],
    ),
    (
        "asset with a title",
        f'![shot]({ASSET} "A title")',
        [image(ASSET, "shot.png", U1)],
    ),
    ("file link", f"[build.log]({FILE})", [BUILD_LOG]),
    ("file link text is not a name", f"[the log]({FILE})", [BUILD_LOG]),
    ("repository asset", f"![]({REPO_ASSET})", [image(REPO_ASSET, f"{U2}.png", U2)]),
    (
        "repository file",
        f"[report.pdf]({REPO_FILE})",
        [upload(REPO_FILE, "report.pdf", "1234567", "application/pdf")],
    ),
    (
        "user-images URL",
        USER_IMAGE,
        [
            image(
                USER_IMAGE, "195811232-ab12cd34.jpg", "195811232-ab12cd34", "image/jpeg"
            )
        ],
    ),
    (
        "user-images alt keeps the URL's extension",
        f"![Crash]({USER_IMAGE})",
        [image(USER_IMAGE, "Crash.jpg", "195811232-ab12cd34", "image/jpeg")],
    ),
    (
        "private-user-images keeps its query",
        f"![]({PRIVATE}?jwt=eyJ.a-b.c_d)",
        [image(f"{PRIVATE}?jwt=eyJ.a-b.c_d", "298765-c0ffee.png", "298765-c0ffee")],
    ),
    # HTML forms
    (
        "img with width then alt",
        f'<img width="640" alt="Login" src="{ASSET}">',
        [image(ASSET, "Login.png", U1)],
    ),
    (
        "img with src first, single quotes",
        f"<img src='{ASSET}' alt='Login' width=300 />",
        [image(ASSET, "Login.png", U1)],
    ),
    ("img with generic alt", f'<img alt="image" src="{ASSET}">', [ASSET_PNG]),
    ("anchor to a file", f'<a href="{FILE}">build output</a>', [BUILD_LOG]),
    (
        "anchor text names the file",
        f'<a href="{REPO_FILE}">Q3 report.pdf</a>',
        [upload(REPO_FILE, "Q3 report.pdf", "1234567", "application/pdf")],
    ),
    # Bare URLs
    ("bare URL ending a sentence", f"See {ASSET}.", [ASSET_PNG]),
    ("URL in angle brackets", f"<{ASSET}>", [ASSET_PNG]),
    ("URL in parentheses", f"(see {ASSET})", [ASSET_PNG]),
    (
        "parentheses in a file name",
        "[r](https://github.com/user-attachments/files/9/report(1).pdf)",
        [
            upload(
                "https://github.com/user-attachments/files/9/report(1).pdf",
                "report(1).pdf",
                "9",
                "application/pdf",
            )
        ],
    ),
    ("link glued to text", f"[x]({ASSET})and more", [image(ASSET, "x.png", U1)]),
    # Code never counts; quotes do
    ("fenced code", f"{FENCE}\n![x]({ASSET})\n{FENCE}", []),
    ("tilde fence", f"~~~\n{ASSET}\n~~~", []),
    ("indented code", f"    {ASSET}", []),
    ("inline code", f"Look: `{ASSET}`", []),
    ("html comment", f"<!-- ![x]({ASSET}) -->", []),
    ("quoted reply counts", f"> ![x]({ASSET})", [image(ASSET, "x.png", U1)]),
    ("code inside a quote", f"> {FENCE}\n> {ASSET}\n> {FENCE}", []),
    # Duplicates and order
    ("same URL twice", f"![]({ASSET})\n![]({ASSET})", [ASSET_PNG]),
    (
        "later mention names it",
        f"{ASSET}\n![Login]({ASSET})",
        [image(ASSET, "Login.png", U1)],
    ),
    (
        "image inside a link to itself",
        f"[![Login]({ASSET})]({ASSET})",
        [image(ASSET, "Login.png", U1)],
    ),
    (
        "private image signed twice",
        f"{PRIVATE}?jwt=one {PRIVATE}?jwt=two",
        [image(f"{PRIVATE}?jwt=one", "298765-c0ffee.png", "298765-c0ffee")],
    ),
    (
        "order of first appearance",
        f"[log]({FILE}) then {ASSET}",
        [BUILD_LOG, ASSET_PNG],
    ),
    # URLs as written
    (
        "entity in a URL decoded",
        f'<img src="{PRIVATE}?jwt=a&amp;v=1">',
        [image(f"{PRIVATE}?jwt=a&v=1", "298765-c0ffee.png", "298765-c0ffee")],
    ),
    (
        "host in capitals",
        f"https://GitHub.com/user-attachments/assets/{U1}",
        [image(f"https://GitHub.com/user-attachments/assets/{U1}", f"{U1}.png", U1)],
    ),
    ("crlf", f"a\r\n![x]({ASSET})\r\n", [image(ASSET, "x.png", U1)]),
    ("other host", f"https://example.com/user-attachments/assets/{U1}", []),
    ("plain http", f"http://github.com/user-attachments/assets/{U1}", []),
    ("issue link", "https://github.com/octo/app/issues/1", []),
    ("empty", "", []),
    ("none", None, []),
    # File names and media types
    (
        "emoji in the name",
        "[🚀 launch.mov](https://github.com/user-attachments/files/42/launch.mov)",
        [
            upload(
                "https://github.com/user-attachments/files/42/launch.mov",
                "🚀 launch.mov",
                "42",
                "video/quicktime",
            )
        ],
    ),
    (
        "percent-encoded name",
        "https://github.com/user-attachments/files/9/my%20notes.md",
        [
            upload(
                "https://github.com/user-attachments/files/9/my%20notes.md",
                "my notes.md",
                "9",
                "text/markdown",
            )
        ],
    ),
    (
        "unknown extension",
        "https://github.com/user-attachments/files/9/dump.xyz",
        [
            upload(
                "https://github.com/user-attachments/files/9/dump.xyz",
                "dump.xyz",
                "9",
                "application/octet-stream",
            )
        ],
    ),
    (
        "heic alt",
        f"![IMG_0001.HEIC]({ASSET})",
        [image(ASSET, "IMG_0001.HEIC", U1, "image/heic")],
    ),
    ("webp alt", f"![a.webp]({ASSET})", [image(ASSET, "a.webp", U1, "image/webp")]),
    (
        "dotted words are not an extension",
        f"![Screenshot 2024-05-01 at 10.22.33]({ASSET})",
        [image(ASSET, "Screenshot 2024-05-01 at 10.22.33.png", U1)],
    ),
    (
        "separators replaced",
        f"![../../etc/x.png]({ASSET})",
        [image(ASSET, ".._.._etc_x.png", U1)],
    ),
    (
        "control characters dropped",
        f'<img alt="a\tb.png" src="{ASSET}">',
        [image(ASSET, "ab.png", U1)],
    ),
    (
        "markdown escapes resolved",
        f"![my\\_shot.png]({ASSET})",
        [image(ASSET, "my_shot.png", U1)],
    ),
    (
        "entities in alt resolved",
        f'<img alt="R&amp;D.png" src="{ASSET}">',
        [image(ASSET, "R&D.png", U1)],
    ),
    (
        "long name cut to 255, extension kept",
        f"![{'n' * 300}.png]({ASSET})",
        [image(ASSET, "n" * 251 + ".png", U1)],
    ),
]


@pytest.mark.parametrize(
    ("markdown", "expected"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_find_attachments(markdown: str | None, expected: list[Attachment]) -> None:
    assert find_attachments(markdown) == expected


# (id, markdown, attachments found on ghe.example.com)
ENTERPRISE_CASES = [
    ("asset", f"![]({GHE_ASSET})", [image(GHE_ASSET, f"{U2}.png", U2)]),
    ("repository file", GHE_FILE, [upload(GHE_FILE, "trace.txt", "77", "text/plain")]),
    ("github.com URL is someone else's", f"![]({ASSET})", []),
    ("user-images is github.com's", USER_IMAGE, []),
]


@pytest.mark.parametrize(
    ("markdown", "expected"),
    [case[1:] for case in ENTERPRISE_CASES],
    ids=[case[0] for case in ENTERPRISE_CASES],
)
def test_enterprise_host(markdown: str, expected: list[Attachment]) -> None:
    assert find_attachments(markdown, web_host="ghe.example.com") == expected


LARGE_BODIES = [
    ("many lines without URLs", "text\n" * 60_000),
    ("one long line", "x" * 300_000 + f" {ASSET}"),
    ("huge log in a fence", f"{FENCE}\n" + f"{ASSET}\n" * 5_000 + f"{FENCE}"),
    ("many images", f"![a]({ASSET})\n" * 3_000),
    ("unclosed brackets", "[" * 300_000 + f"]({ASSET})"),
    ("one endless URL", "https://github.com/" + "a" * 300_000),
]


@pytest.mark.parametrize(
    "markdown",
    [case[1] for case in LARGE_BODIES],
    ids=[case[0] for case in LARGE_BODIES],
)
def test_large_body_is_fast(markdown: str) -> None:
    started = time.perf_counter()
    find_attachments(markdown)
    assert time.perf_counter() - started < 0.1
