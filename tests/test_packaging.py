"""The wheel holds one top-level package, ``mtnet``: the repository's export/, calibration/, android_bench/
and configs/ folders install inside it (pyproject's ``package-dir``), and no package is left out of
pyproject's explicit ``packages`` list."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# repository folder -> installed package
PACKAGE_DIRS = {"mtnet": "mtnet", "export": "mtnet/export", "calibration": "mtnet/calibration",
                "android_bench": "mtnet/android_bench", "configs": "mtnet/configs"}


@pytest.fixture(scope="module")
def wheel_names(tmp_path_factory) -> set[str]:
    """Entries of a wheel built from a copy of the working tree (the build writes nothing into the repo)."""
    src = tmp_path_factory.mktemp("src")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, src / name)
    for folder in PACKAGE_DIRS:
        shutil.copytree(REPO / folder, src / folder, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out),
                    str(src)], check=True, capture_output=True, timeout=300)
    (wheel,) = out.glob("mtnet-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        return set(zf.namelist())


def test_only_mtnet_and_its_dist_info_at_top_level(wheel_names):
    top = {name.split("/", 1)[0] for name in wheel_names}
    assert "mtnet" in top
    assert all(t == "mtnet" or (t.startswith("mtnet-") and t.endswith(".dist-info")) for t in top), sorted(top)


def test_top_level_folders_install_inside_mtnet(wheel_names):
    for name in ("mtnet/export/tflite.py", "mtnet/calibration/__init__.py", "mtnet/android_bench/adb.py",
                 "mtnet/configs/quickstart.yaml"):
        assert name in wheel_names, name


def test_every_package_folder_is_in_the_wheel(wheel_names):
    """A folder with an ``__init__.py`` missing from pyproject's ``packages`` list fails here."""
    missing = []
    for folder, installed in PACKAGE_DIRS.items():
        for init in sorted((REPO / folder).rglob("__init__.py")):
            rel = init.relative_to(REPO / folder).as_posix()
            if f"{installed}/{rel}" not in wheel_names:
                missing.append(f"{folder}/{rel}")
    assert not missing, f"packages not in the wheel (add them to pyproject's packages list): {missing}"
