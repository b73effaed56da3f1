"""Programs the tests compile (Java classes, a C program), built once per content in the temp
directory and shared by every run of the suite on the machine."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path


def built(name: str, key: bytes, product: str, argv: list[str]) -> Path:
    """The directory holding ``product``, made by running ``argv`` (in which ``{out}`` stands
    for the directory) unless a build with the same ``key`` is already there. Runs at once
    each build in a directory of their own and the first to finish wins."""
    out = Path(tempfile.gettempdir()) / f"zetcd-{name}-{hashlib.sha256(key).hexdigest()[:16]}"
    if out.exists() and out.stat().st_uid != os.getuid():  # not ours: never run what is there
        out = Path(tempfile.mkdtemp(prefix=f"zetcd-{name}-own-"))
    if not (out / product).exists():
        tmp = Path(tempfile.mkdtemp(prefix=f"zetcd-{name}-build-"))
        proc = subprocess.run(
            [arg.replace("{out}", str(tmp)) for arg in argv], capture_output=True, text=True
        )
        if proc.returncode != 0:
            shutil.rmtree(tmp, ignore_errors=True)
            raise AssertionError(f"{' '.join(argv)} failed:\n{proc.stdout}{proc.stderr}")
        try:
            os.replace(tmp, out)  # (over an empty directory of our own too)
        except OSError:  # another run built it first
            shutil.rmtree(tmp, ignore_errors=True)
    return out
