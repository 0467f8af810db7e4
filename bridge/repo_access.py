"""Reading a repository's `.github/twill.yml` and people's permissions, cached.

Both caches live in the process: a config for `CONFIG_TTL` seconds (and its
parsed form for as long as the file's sha is unchanged), a permission for
`PERMISSION_TTL` seconds, so that a burst of triggers costs GitHub one call
each, and a changed file or a revoked role is seen within minutes.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace

from bridge import log
from bridge.github import GitHubClient
from bridge.repo_config import CONFIG_PATH, ConfigProblem, RepoConfig, parse_config

CONFIG_TTL = 300.0
PERMISSION_TTL = 60.0


class ConfigCache:
    """`.github/twill.yml` per repository, falling back to the organisation's."""

    def __init__(
        self, github: GitHubClient, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.github = github
        self.clock = clock
        self._configs: dict[str, tuple[float, RepoConfig]] = {}
        self._parsed: dict[str, RepoConfig] = {}

    def cached(self, repository: str) -> RepoConfig | None:
        """The config read in the last CONFIG_TTL seconds, if any; no I/O."""
        entry = self._configs.get(repository.lower())
        if entry is None or self.clock() - entry[0] > CONFIG_TTL:
            return None
        return entry[1]

    async def get(self, installation_id: int, repository: str) -> RepoConfig:
        """The repository's config, read from GitHub when the cached one is old."""
        found = self.cached(repository)
        if found is not None:
            return found
        config = await self._read(installation_id, repository)
        self._configs[repository.lower()] = (self.clock(), config)
        return config

    async def _read(self, installation_id: int, repository: str) -> RepoConfig:
        owner = repository.split("/", 1)[0]
        for source in (repository, f"{owner}/.github"):
            found = await self.github.file_text(installation_id, source, CONFIG_PATH)
            if found is None:
                continue
            sha, text = found
            if sha in self._parsed:
                return self._parsed[sha]
            try:
                config = parse_config(text)
            except ConfigProblem as problem:
                log.warning(
                    "invalid repository config", repository=source, problem=str(problem)
                )
                config = RepoConfig(
                    problem=f"{source}/{CONFIG_PATH} is invalid: {problem}"
                )
            config = replace(config, source=source, sha=sha)
            self._parsed[sha] = config
            return config
        return RepoConfig()


class PermissionCache:
    """People's role on a repository, as GitHub's collaborator API says."""

    def __init__(
        self, github: GitHubClient, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.github = github
        self.clock = clock
        self._roles: dict[tuple[str, str], tuple[float, tuple[str, str]]] = {}

    async def get(
        self, installation_id: int, repository: str, login: str
    ) -> tuple[str, str]:
        """(role_name, permission), from a cache at most PERMISSION_TTL seconds old."""
        key = (repository.lower(), login.lower())
        entry = self._roles.get(key)
        if entry is not None and self.clock() - entry[0] <= PERMISSION_TTL:
            return entry[1]
        role = await self.github.permission(installation_id, repository, login)
        self._roles[key] = (self.clock(), role)
        return role
