"""otelstream as the README installs it: a wheel built from the clone, with its `client` extra,
in a fresh virtual environment, driving a real server.

pip fetches the dependencies from the package index this machine is configured with.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.conftest import ROOT, app_process

EXAMPLE = "examples.fastapi-telemetry.main:app"


def _uv() -> str:
    """uv as the scripts find it: on the PATH (or as `uv run` names it), else in `.tools/`."""
    found = os.environ.get("UV") or shutil.which("uv") or str(ROOT / ".tools" / "bin" / "uv")
    if not Path(found).exists() and shutil.which(found) is None:
        pytest.skip("uv is not installed: run scripts/check once to install it into .tools/")
    return found


def _run(*command: str | Path, cwd: Path, timeout: float) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [str(part) for part in command],
        cwd=cwd,
        env={**os.environ, "COLUMNS": "120", "PYTHONPATH": ""},
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert done.returncode == 0, f"{command} failed:\n{done.stdout}\n{done.stderr}"
    return done


@pytest.mark.timeout(300)
def test_the_wheel_installs_with_its_client_extra_and_runs(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    _run(_uv(), "build", "--wheel", "--out-dir", dist, ROOT, cwd=ROOT, timeout=120)
    [wheel] = dist.glob("otelstream-*-py3-none-any.whl")
    venv = tmp_path / "venv"
    _run(sys.executable, "-m", "venv", venv, cwd=tmp_path, timeout=60)
    bin_dir = venv / "bin"
    pip = [bin_dir / "python", "-m", "pip", "install", "--quiet", "--no-compile"]
    _run(*pip, f"{wheel}[client]", cwd=tmp_path, timeout=240)

    # away from the clone: what runs is the installed wheel, not the source tree
    usage = _run(bin_dir / "otelstream", "--help", cwd=tmp_path, timeout=30).stdout
    assert usage.startswith("usage: otelstream ")
    with app_process(EXAMPLE) as url:
        run = _run(
            bin_dir / "otelstream", "run", url.removeprefix("http://"), "nested",
            "-p", "seconds=0.01", cwd=tmp_path, timeout=60,
        )  # fmt: skip
        lines = run.stdout.splitlines()
        assert lines[0].startswith("started run ") and " done in " in lines[-1], run.stdout
        script = textwrap.dedent(
            f"""
            import otelstream.client
            from otelstream.client import Client
            assert otelstream.client.__file__.startswith({str(venv)!r}), otelstream.client.__file__
            with Client({url!r}) as client:
                print(" ".join(event["type"] for event in client.run("example", {{"seconds": 0}})))
            """
        )
        events = _run(bin_dir / "python", "-c", script, cwd=tmp_path, timeout=60).stdout.split()
    assert events[0] == "pipeline_started" and events[-1] == "pipeline_completed"


def test_the_readmes_install_from_the_clone_not_from_pypi() -> None:
    """otelstream is not on PyPI: `pip install 'otelstream[client]'` answers "No matching
    distribution". Every install line names the clone (`.`) or a wheel built from it."""
    pages = [ROOT / "README.md", *ROOT.glob("*/README.md"), *ROOT.glob("examples/*/README.md")]
    installs = [
        (page.relative_to(ROOT), line.strip())
        for page in pages
        for line in page.read_text().splitlines()
        if "pip install" in line or "uv tool install" in line
    ]
    assert installs
    for page, line in installs:
        assert re.search(r"install '?(\.|dist/)", line), f"{page}: {line}"
