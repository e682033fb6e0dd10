"""The import rules of ARCHITECTURE.md hold: `lint-imports` (contracts in pyproject.toml) passes.
`make test` runs it before pytest; this test keeps the rules checked when pytest runs alone."""

import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def test_import_contracts_are_kept():
    # From the repository root: `dags` (a folder of DAG files) is found there as a namespace package.
    p = subprocess.run([str(Path(sys.executable).parent / "lint-imports"), "--no-cache"], cwd=REPO_ROOT,
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stdout[-4000:] + p.stderr[-2000:]
    assert "0 broken" in p.stdout
