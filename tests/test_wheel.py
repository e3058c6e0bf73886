"""The package as a user installs it: a wheel, in a fresh venv, run from outside the checkout."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow
pytest.importorskip("pip", reason="builds and installs with pip, which this environment lacks (a uv venv)")


def run(cmd, cwd, **kwargs):
    done = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, **kwargs)
    assert done.returncode == 0, f"{cmd} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    dist = tmp_path_factory.mktemp("dist")
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(dist), str(ROOT)], cwd=dist)
    (path,) = dist.glob("moncae-*.whl")
    return path


def test_wheel_holds_the_presets_and_no_top_level_cli(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    assert {f"moncae/presets/{p}.toml" for p in ("smoke", "quick", "cpu", "paper")} <= set(names)
    tops = {n.split("/")[0] for n in names if not n.split("/")[0].endswith((".dist-info", ".data"))}
    assert tops == {"moncae"}, tops


def test_installed_wheel_runs_a_smoke_search_outside_the_checkout(wheel, tmp_path):
    """A fresh venv gets the wheel (no dependencies); the dependencies come from this test's
    environment through a .pth line, so nothing is downloaded twice. moncae itself must come
    from the wheel, not from the checkout."""
    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", str(venv)], cwd=tmp_path)
    bin_dir = venv / "bin"
    run([str(bin_dir / "python"), "-m", "pip", "install", "--no-deps", "--quiet", str(wheel)], cwd=tmp_path,
        env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"})
    site = run([str(bin_dir / "python"), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
               cwd=tmp_path).strip()
    (Path(site) / "moncae_test_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    work = tmp_path / "elsewhere"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    where = run([str(bin_dir / "python"), "-c", "import moncae; print(moncae.__file__)"], cwd=work, env=env)
    assert where.startswith(site), f"moncae imported from {where}, not from the wheel"
    moncae = str(bin_dir / "moncae")
    assert "moncae" in run([moncae, "--version"], cwd=work, env=env)
    assert "mnist_5k" in run([moncae, "datasets"], cwd=work, env=env)
    out = run([moncae, "search", "--dataset", "mnist_5k", "--preset", "smoke", "--seed", "1", "--out",
               str(work / "results"), "--quiet"], cwd=work, env=env)
    assert "done: 4/4 final models trained" in out
    assert (work / "results" / "mnist_5k" / "seed-1" / "models" / "index.csv").is_file()
