"""The benchmark scripts still run, at tiny sizes (their figures are not checked)."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from tests.live import ROOT

pytestmark = pytest.mark.slow


def run_bench(*args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


@pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is not installed")
def test_ingest_benchmark_runs_and_finds_every_delivery_recorded() -> None:
    out = run_bench(
        "bench.ingest",
        "--seconds",
        "1",
        "--rounds",
        "1",
        "--postgres-url",
        "",
        "--max-rate",
        "3000",
        "--connections",
        "4",
    )
    assert "% of the reference" in out
    assert "MISMATCH" not in out and "dispatches queued" in out


def test_fixed_rate_benchmark_runs_and_finds_every_delivery_recorded() -> None:
    out = run_bench("bench.rate", "--rate", "40", "--seconds", "1", "--rounds", "1")
    assert "recorded 40" in out


def test_big_delivery_benchmark_runs() -> None:
    out = run_bench("bench.bigbody", "--megabytes", "2", "--concurrent", "2")
    assert out.count("RSS before") == 4
