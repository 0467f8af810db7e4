"""The reference receiver: reads the body, checks its signature, answers 202.

It runs on the bridge's own stack (Starlette on uvicorn, with the options of
`twill-bridge serve`) and checks the signature with the bridge's own code, so
the ingest benchmark's ratio shows what recording a delivery costs, not the
difference between two servers. It records nothing.

    GITHUB_WEBHOOK_SECRET=... .venv/bin/python -m bench.reference --port 8001
"""

from __future__ import annotations

import argparse
import os

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from bridge import log
from bridge.cli import serve_forever, uvicorn_config
from bridge.signature import SignatureError, verify


def reference_app(secret: str) -> Starlette:
    """An app with the bridge's two routes that only checks signatures."""

    async def receive(request: Request) -> JSONResponse:
        body = await request.body()
        try:
            verify(body, [secret], request.headers.get("x-hub-signature-256"))
        except SignatureError as error:
            return JSONResponse({"error": error.reason}, status_code=401)
        delivery = request.headers.get("x-github-delivery", "")
        return JSONResponse({"delivery": delivery, "outcome": "ok"}, status_code=202)

    async def healthz(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    return Starlette(
        routes=[
            Route("/api/github/webhooks", receive, methods=["POST"]),
            Route("/healthz", healthz, methods=["GET"]),
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=8001)
    args = parser.parse_args()
    # The same logging set-up as the bridge at BRIDGE_LOG_LEVEL=warning.
    log.configure("WARNING", "json")
    app = reference_app(os.environ["GITHUB_WEBHOOK_SECRET"])
    config = uvicorn_config(app, "127.0.0.1", args.port, 25)
    serve_forever(uvicorn.Server(config))


if __name__ == "__main__":
    main()
