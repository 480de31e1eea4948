"""The README examples run as written: each `examples/readme_*.py` holds a
README block between its readme markers (ci/readme_snippets.py keeps them
equal) and asserts what the README promises when run as a program."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

import pytest

EXAMPLES = pathlib.Path(__file__).resolve().parent.parent / "examples"


@pytest.mark.parametrize("name", ["readme_quickstart.py", "readme_tour.py"])
def test_readme_example_runs(name: str) -> None:
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / name)],
        capture_output=True,
        text=True,
        timeout=60,
        env=dict(os.environ),
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "partner called" in done.stdout, done.stdout


def test_readme_probe_example_runs() -> None:
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / "readme_probe.py")],
        capture_output=True,
        text=True,
        timeout=60,
        env=dict(os.environ),
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "closed by the health probe after 2 checks" in done.stdout, done.stdout


def test_readme_shared_example_runs() -> None:
    """README "Host-shared breakers": a forked worker's failures open the
    parent's breaker, and a worker's registry on the segment opens the
    breaker of the parent's registry on it."""
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / "readme_shared.py")],
        capture_output=True,
        text=True,
        timeout=60,
        env=dict(os.environ),
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "open" in done.stdout, done.stdout
    assert "search: open" in done.stdout.splitlines(), done.stdout


def test_readme_http_example_runs() -> None:
    """README "HTTP clients": each client is refused /offers once its breaker
    opened on a 503 with Retry-After: 30, and the partner never saw those."""
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / "readme_http.py")],
        capture_output=True,
        text=True,
        timeout=60,
        env=dict(os.environ),
    )
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert any(l.startswith("httpx: 127.0.0.1:") and l.endswith("open, retry after 30 s") for l in lines), lines
    assert any(l.startswith("requests: 127.0.0.1:") and l.endswith("open, retry after 30 s") for l in lines), lines
    assert 'httpx async: {"offer": "10% off"}' in lines, lines
    assert "partner saw: /down /offers /down" in lines, lines


def test_readme_group_example_runs() -> None:
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / "readme_group.py")],
        capture_output=True,
        text=True,
        timeout=60,
        env=dict(os.environ),
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "3 of 10 open (at most 3); 7 trips refused" in done.stdout, done.stdout


def test_readme_snapshot_example_runs() -> None:
    """README "Snapshot and restore": the breaker saved at shutdown is still
    OPEN after the restart, for the 27 s that were left."""
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / "readme_snapshot.py")],
        capture_output=True,
        text=True,
        timeout=60,
        env=dict(os.environ),
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "after the restart: open, retry after 27 s" in done.stdout, done.stdout
