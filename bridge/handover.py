"""Handing an issue's attachments to Twill in a form the agent can open.

Public repositories: the attachment URLs as found. Private ones: the signed
URLs from GitHub's HTML rendering, downloaded at once (they expire within
minutes), kept by the bridge and handed on either as the bridge's own signed,
expiring URLs under BRIDGE_PUBLIC_URL or, with BRIDGE_FILES_MODE=data, as
`data:` URLs. Whatever cannot be passed on is listed in the command, with the
reason, and the task is dispatched all the same.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import time
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bridge.attachments import Attachment
from bridge.fetch import Fetcher, FetchRefused
from bridge.files import (
    Missing,
    data_url,
    file_url,
    is_uploaded_file,
    pair_signed,
    signed_urls,
    type_allowed,
)
from bridge.github import GitHubClient
from bridge.models import StoredFile, utcnow
from bridge.settings import Settings
from bridge.triggers import IssueSnapshot, Trigger


@dataclass
class Handed:
    """What goes in the request's `files`, and what is listed as missing."""

    parts: list[dict[str, str]] = field(default_factory=list)
    missing: list[Missing] = field(default_factory=list)


class Handover:
    """Turns found attachments into FileParts, downloading what must be."""

    def __init__(
        self,
        settings: Settings,
        sessions: async_sessionmaker[AsyncSession],
        github: GitHubClient,
        fetcher: Fetcher,
        secret: str,
    ) -> None:
        self.settings = settings
        self.sessions = sessions
        self.github = github
        self.fetcher = fetcher
        self.secret = secret

    async def hand(
        self,
        attachments: list[Attachment],
        issue: IssueSnapshot,
        trigger: Trigger,
        installation: int,
        dispatch_id: int,
    ) -> Handed:
        """FileParts for `attachments`, within the caps; the rest as Missing."""
        handed = Handed()
        await self._forget_earlier(dispatch_id)
        allowed, over = (
            attachments[: self.settings.files_max_count],
            attachments[self.settings.files_max_count :],
        )
        for attachment in over:
            handed.missing.append(
                Missing(
                    attachment.filename,
                    attachment.url,
                    f"over the limit of {self.settings.files_max_count} files",
                )
            )
        candidates: list[str] | None = None
        for attachment in allowed:
            if not type_allowed(attachment.media_type, self.settings.files_types):
                handed.missing.append(
                    Missing(
                        attachment.filename,
                        attachment.url,
                        f"{attachment.media_type} files are not passed on",
                    )
                )
                continue
            if not issue.private:
                handed.parts.append(
                    _part(attachment.filename, attachment.media_type, attachment.url)
                )
                continue
            if is_uploaded_file(attachment):
                handed.missing.append(
                    Missing(
                        attachment.filename,
                        attachment.url,
                        "GitHub gives Apps no way to download files attached in a private repository",
                    )
                )
                continue
            if candidates is None:
                candidates = await self._signed_candidates(issue, trigger, installation)
            signed = pair_signed(attachment, candidates)
            if signed is None:
                handed.missing.append(
                    Missing(
                        attachment.filename,
                        attachment.url,
                        "GitHub's rendering of the issue has no signed link for it",
                    )
                )
                continue
            await self._download(attachment, signed, dispatch_id, handed)
        return handed

    async def _forget_earlier(self, dispatch_id: int) -> None:
        """Drop files an interrupted earlier check stored, so a retry cannot pile them up."""
        async with self.sessions() as session:
            earlier = (
                await session.scalars(
                    select(StoredFile.id).where(StoredFile.dispatch_id == dispatch_id)
                )
            ).all()
            if earlier:
                await session.execute(
                    delete(StoredFile).where(StoredFile.id.in_(earlier))
                )
            await session.commit()
        if self.settings.files_dir is not None:
            for file_id in earlier:
                await asyncio.to_thread(
                    Path(self.settings.files_dir, file_id).unlink, missing_ok=True
                )

    async def _signed_candidates(
        self, issue: IssueSnapshot, trigger: Trigger, installation: int
    ) -> list[str]:
        html = await self.github.rendered_html(
            installation, issue.repository, issue.number
        )
        found = signed_urls(html)
        if trigger.comment_id is not None:
            comment_html = await self.github.rendered_html(
                installation, issue.repository, issue.number, trigger.comment_id
            )
            found += signed_urls(comment_html)
        return found

    async def _download(
        self, attachment: Attachment, url: str, dispatch_id: int, handed: Handed
    ) -> None:
        try:
            fetched = await self.fetcher.fetch(url)
        except FetchRefused as refused:
            handed.missing.append(
                Missing(attachment.filename, attachment.url, str(refused))
            )
            return
        # Trust the declared type only when it is specific; GitHub's storage
        # sometimes answers application/octet-stream for images.
        media_type = (
            fetched.media_type
            if fetched.media_type not in ("", "application/octet-stream")
            else attachment.media_type
        )
        if not type_allowed(media_type, self.settings.files_types):
            handed.missing.append(
                Missing(
                    attachment.filename,
                    attachment.url,
                    f"GitHub served it as {media_type}, which is not passed on",
                )
            )
            return
        if self.settings.files_mode == "data":
            handed.parts.append(
                _part(
                    attachment.filename,
                    media_type,
                    data_url(media_type, fetched.content),
                )
            )
            return
        if not self.settings.public_url:
            handed.missing.append(
                Missing(
                    attachment.filename,
                    attachment.url,
                    "BRIDGE_PUBLIC_URL is not set, so the bridge cannot serve it",
                )
            )
            return
        file_id = await self._store(
            attachment.filename, media_type, fetched.content, dispatch_id
        )
        expires = int(time.time() + self.settings.files_url_ttl_seconds)
        handed.parts.append(
            _part(
                attachment.filename,
                media_type,
                file_url(
                    self.settings.public_url,
                    self.secret,
                    file_id,
                    attachment.filename,
                    expires,
                ),
            )
        )

    async def _store(
        self, filename: str, media_type: str, content: bytes, dispatch_id: int
    ) -> str:
        file_id = uuid.uuid4().hex
        folder = self.settings.files_dir
        if folder is not None:
            await asyncio.to_thread(_write, Path(folder, file_id), content)
        now = utcnow()
        async with self.sessions() as session:
            session.add(
                StoredFile(
                    id=file_id,
                    dispatch_id=dispatch_id,
                    filename=filename,
                    media_type=media_type,
                    size=len(content),
                    sha256=hashlib.sha256(content).hexdigest(),
                    content=None if folder is not None else content,
                    created_at=now,
                    expires_at=now
                    + timedelta(seconds=self.settings.files_retention_seconds),
                )
            )
            await session.commit()
        return file_id


def _write(path: Path, content: bytes) -> None:
    """Keep `content` at `path`, owner-only: attachments of private repositories.

    The folder is made owner-only when the bridge makes it; one that exists is
    the operator's, and left as it is.
    """
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    descriptor = os.open(
        path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600
    )
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(content)


def _part(filename: str, media_type: str, url: str) -> dict[str, str]:
    return {"filename": filename, "mediaType": media_type, "url": url}
