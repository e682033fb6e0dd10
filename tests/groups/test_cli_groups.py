"""`vigil groups ...` as a user types it."""

import json
import os
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from vigil.cli.main import app


def run(*args, ok=True):
    r = CliRunner().invoke(app, list(args))
    if ok:
        assert r.exit_code == 0, (r.output, r.stderr)
    return r


def test_group_lifecycle_from_the_command_line(fake_versions, store):
    a, b, c = fake_versions(3, name="fraud-clf")
    name = 'Fraud "v2" — ünï'
    run("groups", "create", name, "--primary-metric", "roc_auc", "--direction", "max",
        "--guardrail", "recall:0.02", "--reason", "new features", "--actor", "alice")
    run("groups", "add", name, a, "--role", "champion", "--actor", "alice")
    out = run("groups", "add", name, b, "--weight", "0.1").output
    assert "weight 0.900" in out and "weight 0.100" in out
    shown = json.loads(run("groups", "show", name, "--json").output)
    assert shown["name"] == name and shown["guardrails"] == {"recall": 0.02}
    assert [m["ref"] for m in shown["members"]] == [a, b]
    assert [e["event_type"] for e in shown["events"]] == ["add", "add", "create"]
    assert [g["name"] for g in json.loads(run("groups", "list", "--json").output)] == [name]
    run("groups", "promote", name, b, "--reason", "won the comparison", "--actor", "bob")
    assert json.loads(run("groups", "show", name, "--json").output)["members"][0]["ref"] == b
    text = run("groups", "show", name).output
    assert "promote" in text and "by bob" in text and "won the comparison" in text
    run("groups", "rollback", name, "--reason", "alerts")
    assert json.loads(run("groups", "show", name, "--json").output)["members"][0]["ref"] == a
    out = run("groups", "delete", name, "--yes", "--reason", "done").output
    assert "0 log rows archived" in out
    assert json.loads(run("groups", "list", "--json").output) == []


@pytest.mark.parametrize("args, message", [
    pytest.param(["create", "g", "--primary-metric", "f1", "--direction", "sideways"], "--direction 'sideways'", id="direction"),
    pytest.param(["create", "g", "--primary-metric", "f1", "--direction", "max", "--guardrail", "recall"],
                 "METRIC:MAX_REGRESSION", id="guardrail-format"),
    pytest.param(["create", "g", "--primary-metric", "f1", "--direction", "max", "--guardrail", "recall:lots"],
                 "is not a number", id="guardrail-value"),
    pytest.param(["add", "nope", "m:1"], "no model group 'nope'", id="unknown-group"),
    pytest.param(["show", "nope"], "no model group 'nope'", id="show-unknown"),
])
def test_bad_input_is_one_error_line_naming_the_field(fake_versions, args, message):
    fake_versions(1)
    r = run("groups", *args, ok=False)
    assert r.exit_code == 1
    assert r.stderr.startswith("vigil: error: ") and message in r.stderr
    assert "Traceback" not in r.output + r.stderr


def test_errors_through_the_real_entry_point_exit_1_without_traceback(fake_versions, warehouse_url):
    (a,) = fake_versions(1)
    run("groups", "create", "g", "--primary-metric", "accuracy", "--direction", "max")
    run("groups", "add", "g", a, "--role", "champion")
    p = subprocess.run([sys.executable, "-m", "vigil.cli", "groups", "add", "g", a, "--weight", "0.5", "--role", "boss"],
                       capture_output=True, text=True, env=dict(os.environ), timeout=120)
    assert p.returncode == 1
    assert p.stderr.strip() == ("vigil: error: --role 'boss' must be 'champion' or 'challenger' "
                                "(use promote to change the champion)")
