"""The pod the kubernetes runner sends, built by the provider's own code path
(``KubernetesPodOperator.build_pod_request_obj(dry_run=True)``, what ``execute`` creates) after
the task's templates are rendered, and serialised with the Kubernetes client's own
``sanitize_for_serialization`` (the JSON body of the API call). No cluster here."""

from __future__ import annotations

import pytest

pytest.importorskip("airflow.providers.cncf.kubernetes", reason="the fleet extra: pip install -e '.[fleet]'")

from kubernetes.client import ApiClient  # noqa: E402

from vigil.airflow.stage_runner import STAGE_ENV, STAGES, stage_operator  # noqa: E402
from vigil.settings import SettingsError, get_settings  # noqa: E402

K8S_ENV = {
    "VIGIL_STAGE_RUNNER": "kubernetes",
    "VIGIL_GPU_COUNT": "2",
    "VIGIL_K8S_NAMESPACE": "ml-stages",
    "VIGIL_K8S_ARTIFACTS_PVC": "vigil-artifacts",
    "VIGIL_K8S_GPU_NODE_SELECTOR": "nvidia.com/gpu.present=true, cloud.google.com/gke-accelerator=nvidia-h100-80gb",
    "VIGIL_K8S_GPU_TOLERATIONS": "nvidia.com/gpu:NoSchedule,dedicated=ml:NoExecute",
    "VIGIL_K8S_SERVICE_ACCOUNT": "vigil-stage",
    "VIGIL_TRAINER_IMAGE": "registry.example.com/vigil/gpu-trainer:1.2",
}


@pytest.fixture
def k8s_env(monkeypatch, tmp_path):
    monkeypatch.setenv("VIGIL_DATA_DIR", str(tmp_path / "var"))
    for k, v in K8S_ENV.items():
        monkeypatch.setenv(k, v)
    return get_settings()


def pod_body(settings, stage_name: str, spec="/art/run/spec.json", out="/art/run/out") -> dict:
    op = stage_operator(STAGES[stage_name], spec_path=spec, out_dir=out, task_id="run", settings=settings)
    pod = op.build_pod_request_obj(dry_run=True)
    return op, ApiClient().sanitize_for_serialization(pod)


def test_gpu_stage_pod(k8s_env):
    op, body = pod_body(k8s_env, "train-backdoor")
    assert op.pool == "gpu" and op.queue == "gpu"
    spec = body["spec"]
    assert body["metadata"]["namespace"] == "ml-stages"
    assert body["metadata"]["labels"]["vigil.stage"] == "train-backdoor"
    assert body["metadata"]["name"].startswith("vigil-train-backdoor")
    (c,) = spec["containers"]
    assert c["image"] == "registry.example.com/vigil/gpu-trainer:1.2"
    assert c["command"][0].endswith("gpu-trainer")
    assert c["args"] == ["train-backdoor", "--spec", "/art/run/spec.json", "--out", "/art/run/out"]
    assert c["resources"]["limits"]["nvidia.com/gpu"] == "2"
    assert c["resources"]["requests"]["cpu"] == "2.0"
    assert spec["nodeSelector"] == {"nvidia.com/gpu.present": "true",
                                    "cloud.google.com/gke-accelerator": "nvidia-h100-80gb"}
    assert spec["tolerations"] == [
        {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"},
        {"key": "dedicated", "operator": "Equal", "value": "ml", "effect": "NoExecute"},
    ]
    # the artifact store at the same path as on the workers, from the claim; shm in memory
    mounts = {m["name"]: m["mountPath"] for m in c["volumeMounts"]}
    assert mounts == {"artifacts": str(k8s_env.artifacts_dir), "dshm": "/dev/shm"}
    vols = {v["name"]: v for v in spec["volumes"]}
    assert vols["artifacts"]["persistentVolumeClaim"] == {"claimName": "vigil-artifacts"}
    assert vols["dshm"]["emptyDir"] == {"medium": "Memory", "sizeLimit": "2Gi"}
    # unprivileged, no secrets, never restarted, its own service account
    assert spec["securityContext"] == {"runAsUser": 1000, "runAsGroup": 1000, "fsGroup": 1000, "runAsNonRoot": True}
    assert c["securityContext"] == {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}
    assert {e["name"]: e["value"] for e in c["env"]} == STAGE_ENV
    assert spec["restartPolicy"] == "Never" and spec["serviceAccountName"] == "vigil-stage"
    assert op.on_finish_action.value == "delete_pod"


def test_cpu_stage_pod_has_no_gpu_limit_selector_or_toleration(k8s_env):
    op, body = pod_body(k8s_env, "train-sklearn")
    assert op.pool == "default_pool" and op.queue == "default"
    spec = body["spec"]
    (c,) = spec["containers"]
    assert "nvidia.com/gpu" not in (c["resources"].get("limits") or {})
    assert not spec.get("nodeSelector") and not spec.get("tolerations")


def test_gpu_count_zero_sends_no_gpu_request(k8s_env, monkeypatch):
    monkeypatch.setenv("VIGIL_GPU_COUNT", "0")
    _, body = pod_body(get_settings(), "evaluate")
    assert "nvidia.com/gpu" not in (body["spec"]["containers"][0]["resources"].get("limits") or {})
    assert not body["spec"].get("nodeSelector") and not body["spec"].get("tolerations")


def test_templated_paths_are_rendered_into_the_pod_args(k8s_env):
    """spec/out come from the spec task's XCom at run time: the args are a templated field."""
    op = stage_operator(STAGES["evaluate"], spec_path="{{ params.spec }}", out_dir="{{ params.out }}", task_id="run",
                        settings=k8s_env)
    assert "arguments" in op.template_fields
    op.render_template_fields({"params": {"spec": "/a/spec.json", "out": "/a/out"}})
    args = op.build_pod_request_obj(dry_run=True).spec.containers[0].args
    assert args == ["evaluate", "--spec", "/a/spec.json", "--out", "/a/out"]


@pytest.mark.parametrize("var, value, match", [
    ("VIGIL_K8S_ARTIFACTS_PVC", "", "VIGIL_K8S_ARTIFACTS_PVC"),
    ("VIGIL_K8S_ARTIFACTS_PVC", "Vigil_Artifacts", "VIGIL_K8S_ARTIFACTS_PVC"),
    ("VIGIL_GPU_COUNT", "-1", "VIGIL_GPU_COUNT=-1.*e.g. 1"),
    ("VIGIL_K8S_NAMESPACE", "ML Stages", "VIGIL_K8S_NAMESPACE"),
    ("VIGIL_K8S_GPU_NODE_SELECTOR", "gpu", "VIGIL_K8S_GPU_NODE_SELECTOR.*key=value"),
    ("VIGIL_K8S_GPU_TOLERATIONS", "nvidia.com/gpu", "VIGIL_K8S_GPU_TOLERATIONS.*NoSchedule"),
    ("VIGIL_K8S_GPU_TOLERATIONS", "nvidia.com/gpu:Never", "VIGIL_K8S_GPU_TOLERATIONS.*one of"),
    ("VIGIL_K8S_GPU_TOLERATIONS", "bad key!:NoSchedule", "not a taint key"),
])
def test_bad_kubernetes_settings_name_the_variable_and_the_fix(k8s_env, monkeypatch, var, value, match):
    monkeypatch.setenv(var, value)
    with pytest.raises(SettingsError, match=match):
        get_settings()


def test_kubernetes_settings_are_not_required_by_other_runners(monkeypatch, tmp_path):
    monkeypatch.setenv("VIGIL_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("VIGIL_STAGE_RUNNER", "local")
    monkeypatch.delenv("VIGIL_K8S_ARTIFACTS_PVC", raising=False)
    monkeypatch.setenv("VIGIL_GPU_COUNT", "-1")
    s = get_settings()
    assert s.kubernetes.artifacts_pvc is None
    assert [(t.key, t.operator, t.effect) for t in s.kubernetes.gpu_tolerations] == [("nvidia.com/gpu", "Exists", "NoSchedule")]


def test_building_the_operator_does_no_io(k8s_env, monkeypatch):
    """No cluster, no kube config, no connection lookup while a DAG file is parsed."""
    import socket

    def refuse(*a, **k):
        raise AssertionError("the operator touched the network while being built")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setenv("KUBECONFIG", "/nonexistent/kubeconfig")
    op = stage_operator(STAGES["scan"], spec_path="/s", out_dir="/o", task_id="run", settings=k8s_env)
    assert op.kubernetes_conn_id == "kubernetes_default"
