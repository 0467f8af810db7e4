"""Attachments the agent can open: pure rules for finding, checking and handing them on.

In a private repository the attachment links in an issue's Markdown open only
in a logged-in browser. GitHub's HTML rendering of the issue (the REST API with
`Accept: application/vnd.github.full+json`, field `body_html`) carries, for
each image, a signed `private-user-images.githubusercontent.com/...?jwt=...`
URL that opens without auth for a few minutes; its path holds the asset's id,
which is how each one is paired with its attachment (never by position).
Non-image files get no such URL, so they cannot be fetched by an App.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass
from fnmatch import fnmatchcase
from urllib.parse import quote, urlsplit

from bridge.attachments import Attachment

_HTML_URL = re.compile(r"""(?:src|href)\s*=\s*["']([^"']+)["']""", re.IGNORECASE)

# Hosts GitHub serves uploads and their storage from (docs.github.com, "About
# GitHub's IP addresses" and the attachment URLs themselves).
GITHUB_STORAGE = ("github.com", "*.githubusercontent.com")
# GitHub's own buckets only: a bare wildcard would admit buckets anyone can make.
_GITHUB_BUCKET = re.compile(
    r"^github-production-(?:user-asset|repository-file)-[0-9a-f]{6}\.s3\.amazonaws\.com$"
)


@dataclass(frozen=True)
class Missing:
    """An attachment the agent will not get, and why."""

    filename: str
    url: str
    reason: str


def signed_urls(body_html: str | None) -> list[str]:
    """Every src/href URL in GitHub's HTML rendering, entities decoded, in order."""
    return [html.unescape(found) for found in _HTML_URL.findall(body_html or "")]


def pair_signed(attachment: Attachment, candidates: Iterable[str]) -> str | None:
    """The signed URL whose file name is this attachment's asset id, if any.

    GitHub names the signed file `<number>-<asset id>.<ext>`; only that exact
    shape counts, so a short id or a look-alike link cannot borrow another
    image's bytes.
    """
    asset = (attachment.asset_id or "").lower()
    if len(asset) < 16:
        return None
    shape = re.compile(rf"^(?:\d+-)?{re.escape(asset)}(?:\.[a-z0-9]{{1,8}})?$")
    for url in candidates:
        parts = urlsplit(url)
        if (
            parts.hostname != "private-user-images.githubusercontent.com"
            or "jwt=" not in parts.query
        ):
            continue
        if shape.match(parts.path.rsplit("/", 1)[-1].lower()):
            return url
    return None


def is_uploaded_file(attachment: Attachment) -> bool:
    """A non-image upload (`/files/...`), which private repositories never sign."""
    return attachment.kind == "file"


def host_allowed(host: str, extra_hosts: Iterable[str] = ()) -> bool:
    """Whether `host` is GitHub's own (or the configured Enterprise host)."""
    host = host.lower().rstrip(".")
    if _GITHUB_BUCKET.match(host):
        return True
    patterns = (*GITHUB_STORAGE, *(h.lower() for h in extra_hosts))
    return any(fnmatchcase(host, pattern) for pattern in patterns)


def refuse_url(url: str, configured_hosts: Iterable[str] = ()) -> str | None:
    """Why the bridge will not fetch `url` (None when it may).

    https only, and GitHub's hosts only; plain http only for a host the
    operator configured (GITHUB_API_URL, GITHUB_WEB_URL), as tests and some
    Enterprise servers use.
    """
    if any(ord(c) < 33 or ord(c) == 127 for c in url) or len(url) > 4096:
        return "the link is malformed"
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (raises ValueError for a bad port)
    except ValueError:
        return "the link is malformed"
    host = (parts.hostname or "").lower()
    configured = {h.lower() for h in configured_hosts}
    if not host:
        return "the link has no host"
    if parts.username or parts.password:
        return "the link carries credentials"
    if parts.scheme != "https" and not (parts.scheme == "http" and host in configured):
        return "only https links are fetched"
    if not host_allowed(host, configured):
        return f"{host} is not one of GitHub's hosts"
    return None


def address_allowed(address: str) -> bool:
    """Whether an IP address is a public one (not loopback, private, link-local...)."""
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


def type_allowed(media_type: str, patterns: Iterable[str]) -> bool:
    """Whether `media_type` (parameters ignored) matches one of `patterns`."""
    bare = media_type.split(";", 1)[0].strip().lower()
    return any(fnmatchcase(bare, pattern.lower()) for pattern in patterns)


def file_signature(secret: str, file_id: str, expires: int) -> str:
    """HMAC of a served file's id and expiry time, hex."""
    message = f"{file_id}:{expires}".encode()
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def file_url(
    base_url: str, secret: str, file_id: str, filename: str, expires: int
) -> str:
    """The signed, expiring URL under which the bridge serves a stored file."""
    signature = file_signature(secret, file_id, expires)
    name = quote(filename, safe="")
    return (
        f"{base_url.rstrip('/')}/files/{file_id}/{name}?exp={expires}&sig={signature}"
    )


def file_url_valid(
    secret: str, file_id: str, expires: str, signature: str, now: float
) -> bool:
    """Whether a served file's URL is genuine and not yet expired."""
    if not (expires.isascii() and expires.isdigit() and len(expires) <= 12):
        return False
    if int(expires) < now:
        return False
    expected = file_signature(secret, file_id, int(expires))
    return hmac.compare_digest(expected, signature)


def data_url(media_type: str, content: bytes) -> str:
    """An RFC 2397 `data:` URL holding `content`."""
    return f"data:{media_type};base64,{base64.b64encode(content).decode()}"


def content_disposition(filename: str, media_type: str) -> str:
    """Inline for images and text the agent may preview, attachment for the rest.

    The name goes both as a plain ASCII fallback and as RFC 5987 UTF-8.
    """
    inline = (
        media_type.startswith(("image/", "text/plain"))
        and media_type != "image/svg+xml"
    )
    fallback = "".join(
        c if c.isascii() and c not in '"\\' and c.isprintable() else "_"
        for c in filename
    )
    return f"{'inline' if inline else 'attachment'}; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"


def describe_missing(missing: list[Missing]) -> str:
    """The lines added to the command for attachments the agent will not get."""
    if not missing:
        return ""
    lines = ["Attachments on GitHub that could not be passed on (the issue has them):"]
    lines += [f"- {m.filename} ({m.url[:300]}): {m.reason}" for m in missing[:20]]
    if len(missing) > 20:
        lines.append(f"- and {len(missing) - 20} more")
    return "\n".join(lines)
