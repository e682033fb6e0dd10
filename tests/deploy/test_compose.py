"""deploy/docker-compose.yaml: parsed the way Docker Compose reads it (YAML merge keys resolved,
``${VAR}`` interpolated from deploy/compose.env.example), validated by the Compose
Specification's own strict parser (the ``compose-spec`` bindings of the Rust ``compose_spec``
crate: unknown keys, bad enum values and malformed device reservations are refused), then the
cross-references Compose only checks at ``up`` time and what Vigil needs of the file."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "deploy" / "docker-compose.yaml"
ENV_EXAMPLE = ROOT / "deploy" / "compose.env.example"

AIRFLOW_COMPONENTS = {"api-server", "scheduler", "dag-processor", "triggerer"}
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}|\$\$")


def env_example() -> dict[str, str]:
    out = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            k, v = line.split("=", 1)
            out[k.strip()] = v.strip()
    return out


def interpolate(value, env: dict[str, str]):
    """Compose's interpolation: ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?error}, $$."""
    if isinstance(value, dict):
        return {k: interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env) for v in value]
    if not isinstance(value, str):
        return value

    def sub(m: re.Match) -> str:
        if m.group(0) == "$$":
            return "$"
        name, op, arg = m.group(1), m.group(2), m.group(3)
        if name in env and (env[name] or op not in (":-", ":?")):
            return env[name]
        if op in (":-", "-"):
            return arg
        raise KeyError(f"${{{name}}} is required ({arg or 'no message'}) and not in {ENV_EXAMPLE.name}")

    return _VAR.sub(sub, value)


@pytest.fixture(scope="module")
def raw() -> dict:
    return yaml.safe_load(COMPOSE.read_text())  # safe_load resolves the `<<:` merge keys, as Compose does


@pytest.fixture(scope="module")
def compose(raw) -> dict:
    return interpolate(raw, env_example())


def test_valid_against_the_compose_specification(compose):
    from compose_spec import PyCompose

    parsed = PyCompose.from_json(json.dumps(compose))  # raises ValueError naming the bad key
    assert set(parsed.service_names()) == set(compose["services"])


def test_the_strict_parser_refuses_what_compose_refuses(compose):
    """The validator is not a rubber stamp: a typo'd key and a bad device count are refused."""
    from compose_spec import PyCompose

    bad = json.loads(json.dumps(compose))
    bad["services"]["scheduler"]["comand"] = ["scheduler"]
    with pytest.raises(ValueError, match="comand"):
        PyCompose.from_json(json.dumps(bad))
    bad = json.loads(json.dumps(compose))
    bad["services"]["worker-gpu"]["deploy"]["resources"]["reservations"]["devices"][0]["count"] = "every"
    with pytest.raises(ValueError, match="\"all\" or an integer"):
        PyCompose.from_json(json.dumps(bad))


def test_every_variable_is_in_the_example_env_or_has_a_default(raw):
    interpolate(raw, env_example())  # KeyError names the variable otherwise
    with pytest.raises(KeyError, match="POSTGRES_PASSWORD"):
        interpolate(raw, {k: v for k, v in env_example().items() if k != "POSTGRES_PASSWORD"})


def test_no_secret_is_written_in_the_file(raw):
    """Every secret-looking environment value, and every password inside a URL, is a ${VAR}."""
    secret_key = re.compile(r"PASSWORD|SECRET|FERNET|ACCESS_KEY|TOKEN")
    url_password = re.compile(r"://[^:/@\s]+:([^@\s]+)@")
    for name, svc in raw["services"].items():
        env = svc.get("environment") or {}
        assert isinstance(env, dict), f"{name}: write environment as a mapping"
        for key, value in env.items():
            value = str(value)
            if secret_key.search(key) and key != "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS":
                assert value.startswith("${"), f"{name}: {key} is written in the file; use ${{{key}}}"
            for pw in url_password.findall(value):
                assert pw.startswith("${"), f"{name}: {key} has a literal password in a URL"
            if key.startswith("AIRFLOW_CONN_"):
                conn = json.loads(interpolate(value, {k: "${" + k + "}" for k in env_example()}))
                assert conn["password"].startswith("${") and conn["login"].startswith("${"), key


def test_services_the_issue_asks_for(compose):
    services = compose["services"]
    assert AIRFLOW_COMPONENTS <= set(services)
    assert {"redis", "postgres", "object-store", "worker", "worker-gpu"} <= set(services)
    for name in AIRFLOW_COMPONENTS:
        assert services[name]["command"][0] == name


def test_celery_executor_with_redis_broker_and_metadata_db_result_backend(compose):
    for name in (*AIRFLOW_COMPONENTS, "worker", "worker-gpu"):
        env = compose["services"][name]["environment"]
        assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor", name
        assert env["AIRFLOW__CELERY__BROKER_URL"].startswith("redis://redis:")
        assert env["AIRFLOW__CELERY__RESULT_BACKEND"].startswith("db+postgresql://")
        assert "@postgres:" in env["AIRFLOW__CELERY__RESULT_BACKEND"]
        assert env["VIGIL_STORAGE_URL"].startswith("s3://"), "workers share no disk: the store is the object store"
        conn = json.loads(env["AIRFLOW_CONN_" + env["VIGIL_STORAGE_CONN_ID"].upper()])
        assert conn["conn_type"] == "aws" and conn["extra"]["endpoint_url"].startswith("http://object-store:")


def test_gpu_worker_reserves_gpus_and_serves_only_the_gpu_queue(compose):
    from contract.stages import GPU_QUEUE

    gpu = compose["services"]["worker-gpu"]
    assert gpu["command"][:2] == ["celery", "worker"]
    assert gpu["command"][gpu["command"].index("--queues") + 1] == GPU_QUEUE
    devices = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert devices and devices[0]["capabilities"] == ["gpu"] and devices[0]["driver"] == "nvidia"
    cpu = compose["services"]["worker"]
    assert cpu["command"][cpu["command"].index("--queues") + 1] == "default"
    assert "deploy" not in cpu or "devices" not in str(cpu["deploy"])


def test_workers_share_no_scratch_volume(compose):
    def scratch(svc):
        env = svc["environment"]
        mounts = [m if isinstance(m, dict) else {"source": m.split(":")[0], "target": m.split(":")[1]}
                  for m in svc.get("volumes", [])]
        return next((m for m in mounts if m["target"] == env["VIGIL_DATA_DIR"]), None)

    a, b = scratch(compose["services"]["worker"]), scratch(compose["services"]["worker-gpu"])
    assert a is not None and b is not None
    assert a.get("type") == "tmpfs" or a.get("source") != b.get("source")


def test_cross_references(compose):
    services, volumes = compose["services"], set(compose.get("volumes") or {})
    for name, svc in services.items():
        deps = svc.get("depends_on") or {}
        for dep, how in (deps.items() if isinstance(deps, dict) else ((d, {}) for d in deps)):
            assert dep in services, f"{name} depends on unknown service {dep}"
            if how.get("condition") == "service_healthy":
                assert "healthcheck" in services[dep], f"{name} waits for {dep} to be healthy; {dep} has no healthcheck"
        for m in svc.get("volumes", []):
            src = m.get("source") if isinstance(m, dict) else m.split(":")[0]
            kind = m.get("type", "volume") if isinstance(m, dict) else ("bind" if src.startswith((".", "/")) else "volume")
            if kind == "volume":
                assert src in volumes, f"{name} mounts named volume {src!r}, not declared under volumes:"
    # nothing started before the schema exists
    for name in (*AIRFLOW_COMPONENTS, "worker", "worker-gpu"):
        assert services[name]["depends_on"]["airflow-init"]["condition"] == "service_completed_successfully"
    # the build the file points at exists
    build = services["api-server"]["build"]
    assert (COMPOSE.parent / build["context"] / build["dockerfile"]).is_file()
