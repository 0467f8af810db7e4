"""What the benchmarks share: real-shaped signed deliveries, wrk, an open-loop
generator, servers as processes, and memory sampling.

Nothing here talks to anything but 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bridge.signature import sign
from tests import payloads
from tests.live import ROOT, free_port

SECRET = "bench-secret"
WEBHOOK = "/api/github/webhooks"
# The issue number in a delivery template; every delivery gets its own in its
# place (ten digits, so it cannot appear anywhere else in the payload).
MARK = "7777777777"

_USER_URLS = (
    "followers",
    "following{/other_user}",
    "gists{/gist_id}",
    "starred{/owner}{/repo}",
    "subscriptions",
    "organizations",
    "repos",
    "events{/privacy}",
    "received_events",
)
_REPO_URLS = (
    "forks",
    "keys{/key_id}",
    "collaborators{/collaborator}",
    "teams",
    "hooks",
    "issues/events{/number}",
    "events",
    "assignees{/user}",
    "branches{/branch}",
    "tags",
    "blobs{/sha}",
    "git/tags{/sha}",
    "git/refs{/sha}",
    "git/trees{/sha}",
    "statuses/{sha}",
    "languages",
    "stargazers",
    "contributors",
    "subscribers",
    "subscription",
    "commits{/sha}",
    "git/commits{/sha}",
    "comments{/number}",
    "issues/comments{/number}",
    "contents/{+path}",
    "compare/{base}...{head}",
    "merges",
    "{archive_format}{/ref}",
    "downloads",
    "issues{/number}",
    "pulls{/number}",
    "milestones{/number}",
    "notifications{?since,all,participating}",
    "labels{/name}",
    "releases{/id}",
    "deployments",
)


def _full_user(data: dict[str, Any]) -> dict[str, Any]:
    api = f"https://api.github.com/users/{data['login']}"
    for name in _USER_URLS:
        data[f"{name.split('{')[0]}_url"] = f"{api}/{name}"
    data.update(url=api, gravatar_id="", user_view_type="public")
    return data


def _full_repository(data: dict[str, Any]) -> dict[str, Any]:
    api = f"https://api.github.com/repos/{data['full_name']}"
    for name in _REPO_URLS:
        key = re.sub(r"[^a-z]+", "_", name.split("{")[0]).strip("_") or "archive"
        data[f"{key}_url"] = f"{api}/{name}"
    _full_user(data["owner"])
    data.update(
        url=api,
        description="Widgets for the web, with fewer crashes than before.",
        fork=False,
        created_at="2024-02-01T08:00:00Z",
        updated_at="2026-11-30T17:12:40Z",
        pushed_at="2026-12-01T09:40:11Z",
        git_url=f"git://github.com/{data['full_name']}.git",
        ssh_url=f"git@github.com:{data['full_name']}.git",
        clone_url=f"https://github.com/{data['full_name']}.git",
        svn_url=f"https://github.com/{data['full_name']}",
        homepage=None,
        size=48213,
        stargazers_count=412,
        watchers_count=412,
        language="Python",
        has_issues=True,
        has_projects=True,
        has_downloads=True,
        has_wiki=False,
        has_pages=False,
        has_discussions=True,
        forks_count=37,
        mirror_url=None,
        archived=False,
        disabled=False,
        open_issues_count=58,
        license=None,
        allow_forking=True,
        is_template=False,
        web_commit_signoff_required=False,
        topics=["widgets", "web"],
        forks=37,
        open_issues=58,
        watchers=412,
    )
    return data


def template(label: str = "twill", stamp: str = "2026-12-01T10:00:00Z") -> list[str]:
    """A real-shaped ~12 KB `issues.labeled` payload, split where the issue number goes.

    GitHub's payloads are mostly the repository and the users, each with their
    dozens of API URLs; the issue body here is a typical bug report's length.
    """
    body = (
        "Steps to reproduce:\n1. Open the widget\n2. Submit an empty form\n\n"
        "Expected: a validation message. Actual: a stack trace.\n\n```\n"
        + "".join(
            f'  File "widgets/form.py", line {100 + n}, in submit\n    '
            f"value = fields[{n}].clean(raw)\n"
            for n in range(40)
        )
        + "ValueError: empty input\n```\n"
    )
    data = payloads.issues_labeled(label, number=int(MARK), body=body, updated_at=stamp)
    data["issue"]["id"] = int(MARK)
    data["issue"]["milestone"] = None
    data["issue"]["assignees"] = []
    data["issue"]["reactions"] = {"total_count": 0, "+1": 0, "-1": 0, "url": ""}
    _full_repository(data["repository"])
    for who in (data["sender"], data["issue"]["user"]):
        _full_user(who)
    return json.dumps(data).split(MARK)


def delivery(parts: list[str], number: int) -> bytes:
    """The body of delivery `number` made from a template."""
    return str(number).join(parts).encode()


def headers(body: bytes, delivery_id: str) -> dict[str, str]:
    """The headers GitHub sends with a signed `issues` delivery."""
    return {
        "Content-Type": "application/json",
        "User-Agent": "GitHub-Hookshot/bench",
        "X-GitHub-Event": "issues",
        "X-GitHub-Delivery": delivery_id,
        "X-Hub-Signature-256": sign(SECRET, body),
    }


# --- processes --------------------------------------------------------------


def pinned(command: list[str], cpus: str | None) -> list[str]:
    """`command` run on the given CPUs (taskset), or as it is."""
    return ["taskset", "-c", cpus, *command] if cpus else command


class Server:
    """A server process on a loopback port, stopped with SIGTERM."""

    def __init__(
        self, name: str, command: list[str], env: dict[str, str], port: int
    ) -> None:
        self.name, self.port = name, port
        self.url = f"http://127.0.0.1:{port}"
        self.folder = Path(tempfile.mkdtemp(prefix=f"bench-{name}-"))
        self.log = self.folder / "server.log"
        self.process = subprocess.Popen(  # noqa: S603 - our own interpreter and modules
            command,
            cwd=self.folder,
            env={**os.environ, "PYTHONPATH": str(ROOT), **env},
            stdout=self.log.open("ab"),
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{name} exited:\n{self.log.read_text()[-2000:]}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"{name} did not start:\n{self.log.read_text()[-2000:]}")

    @property
    def pid(self) -> int:
        return self.process.pid

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)
        shutil.rmtree(self.folder, ignore_errors=True)


def _app_key() -> str:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    ).decode()


def bridge_server(database_url: str, cpus: str | None = None, **env: str) -> Server:
    """`twill-bridge serve` with its worker off, so only the webhook path is measured.

    It has credentials, so it is not in dry-run: each trigger queues a
    dispatch and is answered 202. Nothing is ever sent: the worker is off, and
    Twill and GitHub point at a closed loopback port.
    """
    port = free_port()
    return Server(
        "bridge",
        pinned([sys.executable, "-m", "bridge", "serve"], cpus),
        {
            "TWILL_API_KEY": "bench-key",
            "TWILL_API_URL": "http://127.0.0.1:9/api/v1",
            "GITHUB_APP_ID": "1",
            "GITHUB_APP_PRIVATE_KEY": _app_key(),
            "GITHUB_API_URL": "http://127.0.0.1:9",
            "DATABASE_URL": database_url,
            "GITHUB_WEBHOOK_SECRET": SECRET,
            "BRIDGE_WORKER": "false",
            # One JSON line per delivery, as in production.
            "BRIDGE_LOG_LEVEL": "info",
            "BRIDGE_LOG_FORMAT": "json",
            "BRIDGE_PORT": str(port),
            **env,
        },
        port,
    )


def reference_server(cpus: str | None = None) -> Server:
    """The reference receiver of bench/reference.py."""
    port = free_port()
    return Server(
        "reference",
        pinned([sys.executable, "-m", "bench.reference", "--port", str(port)], cpus),
        {"GITHUB_WEBHOOK_SECRET": SECRET},
        port,
    )


class MemorySampler:
    """VmRSS of a process, sampled every `interval` seconds in a thread."""

    def __init__(self, pid: int, interval: float = 0.02) -> None:
        self.pid, self.interval = pid, interval
        self.samples: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def rss(self) -> int:
        """The process's resident set now, in bytes."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise RuntimeError("no VmRSS line")

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.samples.append(self.rss())

    def __enter__(self) -> MemorySampler:
        self.samples.append(self.rss())
        self._thread.start()
        return self

    def __exit__(self, *_: Any) -> None:
        self._stop.set()
        self._thread.join()
        self.samples.append(self.rss())

    @property
    def peak(self) -> int:
        return max(self.samples)

    @property
    def median(self) -> int:
        return int(statistics.median(self.samples))


def load_average() -> str:
    """The 1, 5 and 15 minute load averages."""
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def machine() -> str:
    """CPUs, CPU model and memory of this machine, in one line."""
    model = "unknown CPU"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    memory = Path("/proc/meminfo").read_text().split()[1]
    return f"{os.cpu_count()} CPUs ({model}), {int(memory) / 1024**2:.1f} GiB RAM"


# --- wrk --------------------------------------------------------------------

WRK_SCRIPT = """\
-- Each request: delivery number thread + threads * k, its own body (the issue
-- number differs), its precomputed signature, and its own delivery id.
local parts, sigs, prefix, first
local threads, index, count = 1, 0, 0
local ok = 0

function setup(thread)
  thread:set("index", count)
  count = count + 1
end

function init(args)
  local data = dofile(args[1])
  parts, sigs, prefix, first = data.parts, data.sigs, data.prefix, data.first
  threads = tonumber(args[2])
end

function request()
  local n = first + index
  index = index + threads
  local sig = sigs[n - first + 1]
  if sig == nil then
    -- Out of precomputed signatures: the run was longer than planned.
    wrk.thread:stop()
  end
  local body = table.concat(parts, tostring(n))
  local headers = {
    ["Content-Type"] = "application/json",
    ["User-Agent"] = "GitHub-Hookshot/bench",
    ["X-GitHub-Event"] = "issues",
    ["X-GitHub-Delivery"] = prefix .. n,
    ["X-Hub-Signature-256"] = sig,
  }
  return wrk.format("POST", "/api/github/webhooks", headers, body)
end

function response(status, headers, body)
  if status >= 200 and status < 300 then ok = ok + 1 end
end

function done(summary, latency, requests)
  local io = require("io")
  local out = io.open(os.getenv("WRK_RESULT"), "w")
  out:write(string.format(
    '{"requests": %d, "seconds": %f, "p50": %d, "p90": %d, "p99": %d, "max": %d, '
    .. '"errors": %d, "non2xx": %d}\\n',
    summary.requests, summary.duration / 1e6,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
    summary.errors.connect + summary.errors.read + summary.errors.write
      + summary.errors.timeout, summary.errors.status))
  out:close()
end
"""


@dataclass
class WrkData:
    """Precomputed deliveries for one wrk run: numbers first .. first+count-1."""

    folder: Path
    prefix: str
    first: int
    count: int
    parts: list[str] = field(default_factory=list)

    @property
    def path(self) -> Path:
        return self.folder / "deliveries.lua"


def wrk_data(parts: list[str], prefix: str, first: int, count: int) -> WrkData:
    """Write the Lua data file: the template and each delivery's signature."""
    data = WrkData(Path(tempfile.mkdtemp(prefix="bench-wrk-")), prefix, first, count)
    data.parts = parts
    with data.path.open("w") as out:
        out.write("return {\n  parts = {")
        out.write(", ".join(_lua_string(part) for part in parts))
        out.write(f"}},\n  prefix = {_lua_string(prefix)},\n  first = {first},\n")
        out.write("  sigs = {\n")
        for n in range(first, first + count):
            out.write(f'    "{sign(SECRET, delivery(parts, n))}",\n')
        out.write("  },\n}\n")
    (data.folder / "script.lua").write_text(WRK_SCRIPT)
    return data


def _lua_string(text: str) -> str:
    # A long bracket string takes the text as it is; pick a level it cannot close.
    level = 0
    while f"]{'=' * level}]" in text:
        level += 1
    return f"[{'=' * level}[{text}]{'=' * level}]"


def run_wrk(
    url: str,
    data: WrkData,
    connections: int,
    seconds: float,
    threads: int = 1,
    cpus: str | None = None,
) -> dict[str, Any]:
    """One wrk run against `url`; its figures (latencies in microseconds)."""
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: apt-get install -y wrk")
    result = data.folder / "result.json"
    command = pinned(
        [
            "wrk",
            f"-t{threads}",
            f"-c{connections}",
            f"-d{max(1, round(seconds))}s",
            "--timeout",
            "10s",
            "-s",
            str(data.folder / "script.lua"),
            url,
            "--",
            str(data.path),
            str(threads),
        ],
        cpus,
    )
    done = subprocess.run(  # noqa: S603 - wrk, on loopback
        command,
        capture_output=True,
        env={**os.environ, "WRK_RESULT": str(result)},
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed: {done.stderr.decode(errors='replace')}")
    figures: dict[str, Any] = json.loads(result.read_text())
    figures["rate"] = figures["requests"] / figures["seconds"]
    return figures


# --- an open-loop generator -------------------------------------------------


@dataclass
class Sent:
    """What one scheduled delivery met: its latency from its scheduled time."""

    delivery_id: str
    status: int = 0
    latency: float = 0.0


class _Connection:
    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.reader, self.writer = reader, writer

    async def exchange(self, request: bytes) -> int:
        self.writer.write(request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        if length:
            await self.reader.readexactly(length)
        return status


def raw_request(host: str, body: bytes, delivery_id: str) -> bytes:
    """A whole HTTP/1.1 request, ready to write to a socket."""
    lines = [f"POST {WEBHOOK} HTTP/1.1", f"Host: {host}"]
    lines += [f"{k}: {v}" for k, v in headers(body, delivery_id).items()]
    lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def open_loop(
    port: int, requests: list[tuple[str, bytes]], rate: float, max_connections: int
) -> list[Sent]:
    """Send `requests` at `rate` a second on schedule, whatever the answers do.

    Each latency runs from the request's scheduled time, not from when it was
    written, so a server that falls behind is charged for the wait it causes
    (no coordinated omission). A request whose time has come takes an idle
    keep-alive connection, or opens one more (up to `max_connections`).
    """
    loop = asyncio.get_running_loop()
    idle: list[_Connection] = []
    opened = 0
    results = [Sent(delivery_id) for delivery_id, _ in requests]
    available = asyncio.Condition()

    async def connection() -> _Connection:
        nonlocal opened
        async with available:
            while not idle and opened >= max_connections:
                await available.wait()
            if idle:
                return idle.pop()
            opened += 1
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return _Connection(reader, writer)

    async def one(index: int, due: float) -> None:
        conn = await connection()
        try:
            results[index].status = await conn.exchange(requests[index][1])
        except (asyncio.IncompleteReadError, ConnectionResetError):
            # The server closed a connection that sat idle past its keep-alive
            # timeout, before reading this request: send it on a new one.
            conn.writer.close()
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            conn = _Connection(reader, writer)
            results[index].status = await conn.exchange(requests[index][1])
        results[index].latency = loop.time() - due
        async with available:
            idle.append(conn)
            available.notify()

    start = loop.time() + 0.1
    tasks: list[asyncio.Task[None]] = []
    for index in range(len(requests)):
        due = start + index / rate
        delay = due - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(index, due)))
    await asyncio.gather(*tasks)
    for conn in idle:
        conn.writer.close()
    return results


@contextmanager
def timed() -> Iterator[list[float]]:
    """Yields a list that holds the elapsed seconds once the block ends."""
    box: list[float] = []
    started = time.perf_counter()
    yield box
    box.append(time.perf_counter() - started)


def percentile(values: list[float], fraction: float) -> float:
    """The value at `fraction` (0..1) of the sorted values (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]
