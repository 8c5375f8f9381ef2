"""One import namespace: the folders pipeline/, trainer/ and eval/ are spatialdc.pipeline, .trainer and .eval;
nothing installs (or imports) a bare top-level name."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("pipeline", "trainer", "eval", "models")
OLD_IMPORT = re.compile(r"^\s*(from|import)\s+(pipeline|trainer|eval)\b", re.MULTILINE)


@pytest.mark.parametrize("name", PACKAGES)
def test_bare_package_names_do_not_import_anywhere(name, tmp_path):
    # from an empty folder: nothing installed the bare name; from the repository root: the folder refuses the name
    for cwd in (tmp_path, ROOT):
        proc = subprocess.run([sys.executable, "-c", f"import {name}"], cwd=cwd, capture_output=True, text=True)
        assert proc.returncode != 0, f"`import {name}` worked in {cwd}"
        assert ("No module named" in proc.stderr) or (f"import spatialdc.{name}, not {name}" in proc.stderr)
    proc = subprocess.run([sys.executable, "-c", f"import spatialdc.{name}"], cwd=tmp_path, capture_output=True,
                          text=True)
    assert proc.returncode == 0, proc.stderr


def test_no_source_file_uses_the_old_top_level_imports():
    offenders = []
    for folder in PACKAGES + ("tests", "benchmarks"):
        for path in (ROOT / folder).rglob("*.py"):
            for match in OLD_IMPORT.finditer(path.read_text()):
                offenders.append(f"{path.relative_to(ROOT)}: {match.group(0).strip()}")
    assert not offenders, offenders


def test_the_models_data_package_imports_nothing_of_spatialdc(tmp_path):
    code = ("import sys, spatialdc.models as m; m.card(m.DEFAULT_MODEL); "
            "print(sorted(k for k in sys.modules if k.startswith('spatialdc.') and k != 'spatialdc.models'))")
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stdout.strip() == "[]", proc.stdout + proc.stderr

