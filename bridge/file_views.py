"""`GET /files/{id}/{name}`: the attachments the bridge keeps, for Twill to fetch.

A URL is good only with its signature and before its expiry (both made by
bridge/files.py); the answer carries the file's type and a Content-Disposition,
and headers that stop a browser from running anything in it.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from starlette.requests import Request
from starlette.responses import Response

from bridge.files import content_disposition, file_url_valid
from bridge.models import StoredFile, utcnow
from bridge.webhooks import problem


async def serve_file(request: Request) -> Response:
    """The stored file, or 403 for a bad or expired link, 404 for a gone file."""
    state = request.app.state
    file_id = request.path_params["file_id"]
    expires = request.query_params.get("exp", "")
    signature = request.query_params.get("sig", "")
    if not file_url_valid(state.files_secret, file_id, expires, signature, time.time()):
        return problem(403, "bad_link", "the link is not valid or has expired")
    async with state.sessions() as session:
        stored = await session.get(StoredFile, file_id)
    if stored is None or stored.expires_at < utcnow():
        return problem(404, "gone", "the file is no longer kept")
    content = stored.content
    if content is None and state.settings.files_dir is not None:
        path = Path(state.settings.files_dir, file_id)
        try:
            content = await asyncio.to_thread(path.read_bytes)
        except OSError:
            return problem(404, "gone", "the file is no longer kept")
    return Response(
        content or b"",
        media_type=stored.media_type,
        headers={
            "Content-Disposition": content_disposition(
                stored.filename, stored.media_type
            ),
            "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": "default-src 'none'; sandbox",
            "Cache-Control": "private, max-age=300",
        },
    )
