"""The ``zetcd-fuzz`` command line as docs/fuzzing.md shows it: flags, exit codes, --spawn."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from fuzz.ops import Create, GetChildren, GetData, Open, SetData, Step, step_to_json
from fuzz.replay import FORMAT

FUZZ = [sys.executable, "-m", "fuzz"]
DOCS = Path(__file__).parent.parent / "docs" / "fuzzing.md"


def fuzz(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*FUZZ, *args], capture_output=True, text=True, timeout=timeout)


def test_the_documented_flags_exist() -> None:
    documented = set(re.findall(r"--[a-z][a-z-]+", DOCS.read_text()))
    helps = fuzz("run", "--help").stdout + fuzz("replay", "--help").stdout
    assert documented <= set(re.findall(r"--[a-z][a-z-]+", helps)) | {"--help"}
    for flag in ("--zetcd", "--zookeeper", "--spawn", "--examples", "--max-steps", "--seed",
                 "--time-budget", "--out"):  # fmt: skip
        assert flag in documented, flag


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    assert fuzz("run", "--zetcd", "127.0.0.1:1").returncode == 2
    assert fuzz("run", "--spawn", "--zetcd", "127.0.0.1:1").returncode == 2
    assert fuzz("replay", str(tmp_path / "missing.json"), "--spawn").returncode == 2
    for flag in ("--examples", "--max-steps", "--expiry-odds"):
        assert fuzz("run", "--spawn", flag, "0").returncode == 2, flag
    assert fuzz("run", "--spawn", "--time-budget", "-1").returncode == 2


@pytest.mark.timeout(400)
def test_replay_with_spawned_servers(tmp_path: Path) -> None:
    steps = [Step(0, Open()), Step(0, Create("/a", b"x")), Step(0, GetData("/a", True))]
    case = tmp_path / "case.json"
    case.write_text(json.dumps({"format": FORMAT, "steps": [step_to_json(s) for s in steps]}))
    result = fuzz("replay", str(case), "--spawn")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no divergence" in result.stdout
    assert "getData" in result.stdout
    # the planted divergence's case (a child's setData fires the parent's child watch) is
    # clean on its own, and diverges through the proxy that plants it
    steps = [Step(0, Open()), Step(0, Create("/a", b"x")), Step(0, GetChildren("/", True)),
             Step(0, SetData("/a", b"y"))]  # fmt: skip
    case.write_text(json.dumps({"format": FORMAT, "steps": [step_to_json(s) for s in steps]}))
    assert fuzz("replay", str(case), "--spawn").returncode == 0
    planted = fuzz("replay", str(case), "--spawn", "--plant", "setdata-child-watch")
    assert planted.returncode == 1, planted.stdout + planted.stderr
    assert "diverges: " in planted.stdout
