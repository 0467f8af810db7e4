"""The documented settings are exactly the ones the code reads."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def read_by_code() -> set[str]:
    source = (ROOT / "bridge" / "settings.py").read_text()
    return set(re.findall(r'"((?:TWILL|GITHUB|BRIDGE|DATABASE)_[A-Z0-9_]*)"', source))


def test_env_example_documents_every_setting_and_no_other() -> None:
    documented = set(
        re.findall(r"^([A-Z][A-Z0-9_]+)=", (ROOT / ".env.example").read_text(), re.M)
    )
    assert documented == read_by_code()


def test_readme_names_every_setting() -> None:
    readme = (ROOT / "README.md").read_text()
    missing = sorted(name for name in read_by_code() if f"`{name}`" not in readme)
    assert missing == []
