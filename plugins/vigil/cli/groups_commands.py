"""`vigil groups ...`: model groups, champion/challenger, promotion, batch scoring, datasets."""

from __future__ import annotations

import json

import typer

groups_app = typer.Typer(help="Model groups: a champion, challengers with traffic weights, promotion with an audit trail.",
                         no_args_is_help=True)


def _fail(message: str) -> None:
    typer.secho(f"vigil: error: {message}", err=True, fg=typer.colors.RED)
    raise typer.Exit(1)


def _groups():
    from vigil.groups.membership import Groups
    from vigil.storage.db import DatabaseError
    from vigil.storage.warehouse import migrate

    try:
        return Groups(migrate())
    except DatabaseError as e:
        _fail(str(e))


def _dump(obj) -> None:
    typer.echo(json.dumps(obj, indent=2, default=str, ensure_ascii=False))


def _run(fn, *args, **kwargs):
    """Call a groups operation; bad input becomes one `vigil: error:` line and exit 1."""
    from evaluation.comparison import ComparisonError
    from vigil.airflow.stage_runner import StageRunError
    from vigil.groups.inference_log import InferenceError
    from vigil.groups.routing import RoutingError
    from vigil.registry.versions import RegistryError

    try:
        return fn(*args, **kwargs)
    except (RegistryError, InferenceError, RoutingError, ComparisonError, StageRunError) as e:
        _fail(str(e))


def _print_group(g) -> None:
    flags = [f"primary {g.primary_metric} ({'higher' if g.direction == 'max' else 'lower'} is better)",
             f"alpha {g.alpha:g}"]
    if g.min_effect:
        flags.append(f"min effect {g.min_effect:g}")
    if g.guardrails:
        flags.append("guardrails " + ", ".join(f"{k} <= -{v:g}" for k, v in g.guardrails.items()))
    if g.auto_promote:
        flags.append("auto-promote")
    if g.shadow:
        flags.append("shadow")
    typer.echo(f"{g.name}  [table {g.table}]")
    typer.echo("  " + "; ".join(flags))
    if not g.members:
        typer.echo("  no members yet: vigil groups add NAME MODEL:VERSION --role champion")
    for m in g.members:
        typer.echo(f"  {m.role:<10} {m.ref:<40} weight {m.traffic_weight:.3f}")


@groups_app.command("create")
def create(
    name: str = typer.Argument(..., help="Group name (any text; quotes, spaces and unicode are fine)."),
    primary_metric: str = typer.Option(..., "--primary-metric", help="Metric that decides promotions, e.g. roc_auc."),
    direction: str = typer.Option(..., "--direction", help="max (higher is better) or min (lower is better)."),
    guardrail: list[str] = typer.Option([], "--guardrail", help="METRIC:MAX_REGRESSION, repeatable, e.g. recall:0.02."),
    auto_promote: bool = typer.Option(False, "--auto-promote", help="Let the nightly comparison promote on its own."),
    shadow: bool = typer.Option(False, "--shadow", help="Score every batch row with every member by default."),
    alpha: float = typer.Option(0.05, "--alpha", help="Significance level of the comparison tests."),
    min_effect: float = typer.Option(0.0, "--min-effect", help="Smallest improvement worth promoting."),
    description: str = typer.Option("", "--description"),
    reason: str = typer.Option("", "--reason", help="Why the group exists (audit trail)."),
    actor: str | None = typer.Option(None, "--actor", help="Who is acting (default: VIGIL_ACTOR or the OS user)."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Create a group and its inference_log_<slug> table."""
    from vigil.groups.records import parse_guardrail

    guards = dict(_run(parse_guardrail, g) for g in guardrail)
    g = _run(_groups().create, name, primary_metric=primary_metric, direction=direction, guardrails=guards,
             auto_promote=auto_promote, shadow=shadow, alpha=alpha, min_effect=min_effect, description=description,
             actor=actor, reason=reason)
    if as_json:
        _dump(g.to_dict())
    else:
        typer.echo(f"created group {g.name!r} (inference log table {g.table})")


@groups_app.command("add")
def add(
    name: str = typer.Argument(..., help="Group name."),
    ref: str = typer.Argument(..., help="MODEL:VERSION (or MODEL for its latest version)."),
    role: str = typer.Option("challenger", "--role", help="champion or challenger."),
    weight: float = typer.Option(0.0, "--weight", help="Challenger's share of traffic (0..1); the champion gets the rest."),
    reason: str = typer.Option("", "--reason"),
    actor: str | None = typer.Option(None, "--actor"),
) -> None:
    """Add a member, or change a challenger's weight."""
    g = _run(_groups().add, name, ref, role=role, weight=weight, actor=actor, reason=reason)
    _print_group(g)


@groups_app.command("show")
def show(
    name: str = typer.Argument(...),
    as_json: bool = typer.Option(False, "--json"),
    events: int = typer.Option(10, "--events", help="How many audit events to show."),
) -> None:
    """Members, weights, the latest comparisons and the audit trail."""
    gs = _groups()
    g = _run(gs.get, name)
    evs = gs.events(name, limit=events)
    cmps = gs.comparisons(name, limit=10)
    if as_json:
        _dump({**g.to_dict(), "events": evs, "comparisons": cmps})
        return
    _print_group(g)
    if cmps:
        typer.echo("  comparisons:")
    for c in cmps:
        typer.echo(f"    {c['logical_date']}  {c['challenger']} vs {c['champion']}: {c['decision']}")
        if c["reasons"]:
            typer.echo(f"      {c['reasons'][0]}")
    if evs:
        typer.echo("  events:")
    for e in evs:
        move = f" {e['from_ref'] or '-'} -> {e['to_ref'] or '-'}" if e["from_ref"] or e["to_ref"] else ""
        typer.echo(f"    {e['at']:%Y-%m-%d %H:%M:%S}  {e['event_type']:<12} by {e['actor']}{move}"
                   + (f"  ({e['reason']})" if e["reason"] else ""))


@groups_app.command("list")
def list_(as_json: bool = typer.Option(False, "--json")) -> None:
    """Every live group."""
    gs = _groups().list()
    if as_json:
        _dump([g.to_dict() for g in gs])
        return
    if not gs:
        typer.echo("no model groups yet (vigil groups create NAME --primary-metric M --direction max)")
    for g in gs:
        champ = g.champion.ref if g.champion else "-"
        typer.echo(f"{g.name}  champion {champ}  challengers {len(g.challengers)}  primary {g.primary_metric} ({g.direction})")


@groups_app.command("promote")
def promote(
    name: str = typer.Argument(...),
    ref: str = typer.Argument(..., help="MODEL:VERSION to make champion."),
    reason: str = typer.Option(..., "--reason", help="Why (required; written to the audit trail)."),
    actor: str | None = typer.Option(None, "--actor"),
) -> None:
    """Make a version the champion (one transaction; the old champion is retired)."""
    g = _run(_groups().promote, name, ref, reason=reason, actor=actor)
    _print_group(g)


@groups_app.command("rollback")
def rollback(
    name: str = typer.Argument(...),
    reason: str = typer.Option("", "--reason"),
    actor: str | None = typer.Option(None, "--actor"),
) -> None:
    """Return to the previous champion."""
    g = _run(_groups().rollback, name, reason=reason, actor=actor)
    _print_group(g)


@groups_app.command("delete")
def delete(
    name: str = typer.Argument(...),
    reason: str = typer.Option("", "--reason"),
    yes: bool = typer.Option(False, "--yes", help="Do not ask for confirmation."),
    actor: str | None = typer.Option(None, "--actor"),
) -> None:
    """Archive the group's inference log to Parquet, drop the table, mark the group deleted."""
    gs = _groups()
    _run(gs.get, name)
    if not yes:
        typer.confirm(f"delete group {name!r} (its log is archived to Parquet first)?", abort=True)
    out = _run(gs.delete, name, reason=reason, actor=actor)
    typer.echo(f"deleted group {name!r}: {out['archived_rows']} log rows archived to {out['archive'] or '-'}")


@groups_app.command("score")
def score(
    name: str = typer.Argument(...),
    batch: str = typer.Argument(..., help="Parquet file with a request_id column and the models' features "
                                          "(LLM groups: a prompt column)."),
    shadow: bool | None = typer.Option(None, "--shadow/--routed", help="Every member scores every row (default: the group's setting)."),
    no_shap: bool = typer.Option(False, "--no-shap", help="Skip SHAP values."),
) -> None:
    """Score a batch through the traffic split (what the score_batch DAG runs). LLM members run
    the score-llm stage as a local subprocess."""
    from datetime import datetime, timezone

    from vigil.airflow.stage_runner import run_stage_locally
    from vigil.groups.inference_log import score_batch
    from vigil.lifecycle.specs import artifact_dir
    from vigil.registry.versions import RunRef

    now = datetime.now(timezone.utc)
    run = RunRef("cli", f"score__{now:%Y%m%dT%H%M%S}", "score", now)
    out = _run(score_batch, _groups().engine, name, batch, run, shadow=shadow, explain=not no_shap,
               llm_dir=artifact_dir("cli", run.run_id, "score"), run_stage=run_stage_locally)
    _dump(out)


@groups_app.command("labels")
def labels(name: str = typer.Argument(...), path: str = typer.Argument(..., help="Parquet with request_id, label.")) -> None:
    """Join late-arriving labels onto the group's inference log."""
    from vigil.groups.inference_log import ingest_labels

    _dump(_run(ingest_labels, _groups().engine, name, path))


@groups_app.command("live")
def live(name: str = typer.Argument(...)) -> None:
    """Metrics on labelled predictions, and champion vs challengers on them."""
    from vigil.groups.inference_log import live_metrics

    _dump(_run(live_metrics, _groups().engine, name))


@groups_app.command("compare")
def compare(
    day: str | None = typer.Option(None, "--date", help="Logical date YYYY-MM-DD (default today)."),
) -> None:
    """Run the nightly comparison for every group now (what nightly_evaluation calls)."""
    from datetime import date, datetime, timezone

    from vigil.groups.comparison import compare_groups
    from vigil.registry.versions import RunRef

    try:
        d = date.fromisoformat(day) if day else datetime.now(timezone.utc).date()
    except ValueError:
        _fail(f"--date {day!r} is not a date; use YYYY-MM-DD")
    run = RunRef("cli", f"compare__{d}", "compare_groups", d)
    out = _run(compare_groups, _groups().engine, d, run)
    _dump([{k: v for k, v in r.items() if k != "metrics"} for r in out])


@groups_app.command("dataset")
def dataset(
    name: str = typer.Argument(..., help="Dataset name."),
    path: str = typer.Argument(..., help=".parquet or .csv file."),
    target: str | None = typer.Option(None, "--target", help="Label column."),
    task: str = typer.Option("classifier", "--task", help="classifier or anomaly."),
    id_column: str = typer.Option("row_id", "--id-column"),
) -> None:
    """Validate a table and register it in the datasets table (refused with every problem listed)."""
    from vigil.groups.datasets import register_dataset

    out = _run(register_dataset, _groups().engine, name, path, target=target, task=task, id_column=id_column)
    _dump({k: out[k] for k in ("id", "name", "version", "sha256", "new")} | {"warnings": out["validation"]["warnings"]})
