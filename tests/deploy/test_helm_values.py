"""deploy/helm-values.yaml for the official Airflow chart: every key is one the chart reads (the
chart's parameters reference, workers.celery.* layout of chart 1.20+), with the types it expects,
and it says what Vigil needs: CeleryExecutor, KEDA (not HPA) on the Celery workers, a `gpu` worker
set on the queue contract/stages.py sends GPU stages to, with nvidia.com/gpu limits, a node
selector and a toleration, the object store instead of shared disk, and no secret in the file."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from contract.stages import DEFAULT_QUEUE, GPU_QUEUE

VALUES = Path(__file__).resolve().parents[2] / "deploy" / "helm-values.yaml"

# Keys of the chart this file may set, with the type the chart's values.schema.json gives them.
# (A typo such as `worker:` or `keda.enable` is silently ignored by Helm; here it fails.)
CHART_KEYS: dict[str, type | tuple[type, ...]] = {
    "executor": str, "airflowVersion": str,
    "images": dict, "images.airflow": dict, "images.airflow.repository": str, "images.airflow.tag": str,
    "images.airflow.pullPolicy": str,
    "postgresql": dict, "postgresql.enabled": bool,
    "data": dict, "data.metadataSecretName": str, "data.resultBackendSecretName": str, "data.brokerUrlSecretName": str,
    "redis": dict, "redis.enabled": bool,
    "fernetKeySecretName": str, "apiSecretKeySecretName": str, "jwtSecretName": str,
    "config": dict, "env": list, "extraEnvFrom": str,
    "apiServer": dict, "apiServer.replicas": int, "scheduler": dict, "scheduler.replicas": int,
    "dagProcessor": dict, "dagProcessor.enabled": bool, "triggerer": dict, "triggerer.enabled": bool,
    "workers": dict, "workers.celery": dict, "workers.celery.enableDefault": bool, "workers.celery.queue": str,
    "workers.celery.replicas": int, "workers.celery.persistence": dict, "workers.celery.persistence.enabled": bool,
    "workers.celery.keda": dict, "workers.celery.keda.enabled": bool, "workers.celery.keda.pollingInterval": int,
    "workers.celery.keda.cooldownPeriod": int, "workers.celery.keda.minReplicaCount": int,
    "workers.celery.keda.maxReplicaCount": int, "workers.celery.hpa": dict, "workers.celery.hpa.enabled": bool,
    "workers.celery.resources": dict, "workers.celery.sets": list,
}
# What a worker set may override (it inherits the rest from workers.celery).
SET_KEYS = {"name": str, "queue": str, "replicas": int, "keda": dict, "resources": dict, "nodeSelector": dict,
            "tolerations": list}
KEDA_KEYS = {"enabled", "pollingInterval", "cooldownPeriod", "minReplicaCount", "maxReplicaCount"}
# Free-form maps the chart passes through (airflow.cfg sections, k8s resource quantities).
OPAQUE = ("config", "workers.celery.resources")


@pytest.fixture(scope="module")
def values() -> dict:
    return yaml.safe_load(VALUES.read_text())


def _walk(node: dict, prefix: str = ""):
    for key, value in node.items():
        path = f"{prefix}{key}"
        yield path, value
        if isinstance(value, dict) and path not in OPAQUE:
            yield from _walk(value, path + ".")


def test_every_key_is_a_chart_key_of_the_right_type(values):
    for path, value in _walk(values):
        assert path in CHART_KEYS, f"{path}: not a key of the Airflow chart (a typo Helm would ignore)"
        assert isinstance(value, CHART_KEYS[path]), f"{path}: the chart expects {CHART_KEYS[path]}, got {type(value).__name__}"


def test_the_check_catches_a_typo(values):
    bad = {**values, "workers": {"celery": {**values["workers"]["celery"], "keda": {"enable": True}}}}
    with pytest.raises(AssertionError, match="workers.celery.keda.enable"):
        test_every_key_is_a_chart_key_of_the_right_type(bad)


def test_celery_executor_with_keda_not_hpa(values):
    assert values["executor"] == "CeleryExecutor"
    celery = values["workers"]["celery"]
    assert celery["keda"]["enabled"] is True and celery["hpa"]["enabled"] is False
    assert celery["keda"]["minReplicaCount"] <= celery["keda"]["maxReplicaCount"]
    assert celery["queue"] == DEFAULT_QUEUE == values["config"]["operators"]["default_queue"]
    # KEDA divides queued+running task instances by worker_concurrency: it must be set here.
    assert int(values["config"]["celery"]["worker_concurrency"]) >= 1


def test_gpu_worker_set(values):
    sets = {s["name"]: s for s in values["workers"]["celery"]["sets"]}
    for s in sets.values():
        for key, value in s.items():
            assert key in SET_KEYS and isinstance(value, SET_KEYS[key]), f"workers.celery.sets[{s['name']}].{key}"
        assert set(s.get("keda", {})) <= KEDA_KEYS
    gpu = sets["gpu"]
    assert gpu["queue"] == GPU_QUEUE
    assert int(gpu["resources"]["limits"]["nvidia.com/gpu"]) >= 1
    assert gpu["nodeSelector"] and all(isinstance(v, str) for v in gpu["nodeSelector"].values())
    assert any(t["key"] == "nvidia.com/gpu" and t["effect"] == "NoSchedule" for t in gpu["tolerations"])
    assert gpu["keda"]["enabled"] is True


def test_object_store_not_shared_disk(values):
    env = {e["name"]: e.get("value") for e in values["env"]}
    assert re.match(r"s3://[a-z0-9.-]+/", env["VIGIL_STORAGE_URL"])
    assert env["VIGIL_STORAGE_CONN_ID"]
    assert values["workers"]["celery"]["persistence"]["enabled"] is False


def test_no_secret_in_the_file(values):
    assert values["postgresql"]["enabled"] is False and values["data"]["metadataSecretName"]
    for path, _value in _walk(values):
        leaf = path.rsplit(".", 1)[-1]
        if re.search(r"(?i)password|secret|fernetKey$|connection$", leaf):
            assert leaf.endswith("SecretName"), f"{path}: put the value in a Kubernetes Secret and name it"
    text = VALUES.read_text()
    assert not re.search(r"://[^:/@\s]+:[^@\s.]+@", "\n".join(line for line in text.splitlines()
                                                            if not line.lstrip().startswith("#")))
    for e in values["env"]:
        assert not re.search(r"(?i)password|secret|key$", e["name"]) or e["name"] == "VIGIL_STORAGE_CONN_ID", e["name"]
