"""The JupyterLab extension's build: its TypeScript unit tests, and the wheel that ships it.

- ``jlpm test`` in ``labextension/`` runs the vitest suite of the
  state-to-view logic (``labextension/test/``); it needs Node.js and the
  extension's node_modules (``make setup`` installs both through the build
  hook). Without Node the test is skipped, saying so.
- ``python -m build`` makes an sdist, then a wheel from it: the wheel must
  carry the prebuilt extension (``share/jupyter/labextensions/lazycell/``
  with ``install.json``), so ``pip install`` needs no Node. The sdist carries
  the built extension too (the wheel reuses it instead of rebuilding).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
LABEXTENSION = REPO / "labextension"
BUILT = REPO / "lazycell" / "labextension"


def jlpm() -> str:
    """JupyterLab's pinned yarn, from this interpreter's environment."""
    found = shutil.which("jlpm", path=str(Path(sys.executable).parent)) or shutil.which("jlpm")
    if found is None:
        pytest.fail("no jlpm next to this interpreter: install jupyterlab (make setup does)")
    return found


@pytest.mark.timeout(300)
def test_typescript_unit_tests_pass():
    if shutil.which("node") is None:
        pytest.skip("Node.js is not installed: the labextension's TypeScript tests cannot run")
    if not (LABEXTENSION / "node_modules").is_dir():
        subprocess.run([jlpm(), "install"], cwd=LABEXTENSION, check=True, timeout=280)
    run = subprocess.run(
        [jlpm(), "test"], cwd=LABEXTENSION, capture_output=True, text=True, timeout=280
    )
    output = run.stdout + run.stderr
    assert run.returncode == 0, output
    assert "Tests" in output and "passed" in output and "failed" not in output, output


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_the_wheel_ships_the_prebuilt_extension(tmp_path):
    if not (BUILT / "package.json").exists():
        pytest.skip("the extension is not built here yet (make setup builds it)")
    subprocess.run(
        [sys.executable, "-m", "build", "--outdir", str(tmp_path), str(REPO)],
        check=True,
        capture_output=True,
        timeout=880,
    )
    (wheel,) = tmp_path.glob("lazycell-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    data = "lazycell-0.1.0.data/data/share/jupyter/labextensions/lazycell/"
    assert data + "install.json" in names
    assert data + "package.json" in names
    assert data + "static/style.js" in names
    assert any(name.startswith(data + "static/remoteEntry.") for name in names)
    # The built files are shipped once, as shared data, not inside the package too.
    assert not [name for name in names if name.startswith("lazycell/labextension/")]
    (sdist,) = tmp_path.glob("lazycell-*.tar.gz")
    members = tarfile.open(sdist).getnames()
    assert "lazycell-0.1.0/lazycell/labextension/static/style.js" in members
    assert "lazycell-0.1.0/labextension/src/index.ts" in members
    assert not [name for name in members if "/node_modules/" in name]
