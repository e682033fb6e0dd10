"""`vigil models import PATH`: bring a model trained elsewhere, with its metadata, into the registry."""

from __future__ import annotations

import json

import typer

FAMILIES = ("auto", "llm", "sklearn", "external")


def _fail(message: str) -> None:
    typer.secho(f"vigil: error: {message}", err=True, fg=typer.colors.RED)
    raise typer.Exit(1)


def _print_report(result) -> None:
    plan = result.plan
    rep = plan.report
    if result.status == "dry-run":
        head = f"dry run: would import {plan.name!r} as {plan.family}"
        if plan.existing_ref:
            head += f" (already imported as {plan.existing_ref}: nothing would change)"
        typer.echo(head + "; nothing written")
    elif result.status == "already-imported":
        typer.echo(f"already imported as {result.ref} ({plan.family}, source=import): same content, same version")
    else:
        typer.echo(f"imported {result.ref} ({plan.family}, source=import)")
    typer.echo(f"  from:     {plan.path} ({rep['source']['kind_description']}; family {rep['family_from']})")
    typer.echo(f"  name:     {plan.name} (from {rep['name_from']})")
    if result.artifact_uri:
        typer.echo(f"  artifact: {result.artifact_uri}")
    typer.echo(f"  sha256:   {plan.sha256}  ({len(plan.files)} file{'s' if len(plan.files) != 1 else ''})")
    if rep.get("parent"):
        typer.echo(f"  parent:   {rep['parent']}")
    values = {**{f"metrics.{k}": v for k, v in plan.record.metrics.items()},
              **{f"params.{k}": v for k, v in plan.record.params.items()},
              **plan.record.model_dump(exclude={"metrics", "params"}, exclude_none=True)}
    if rep["mapped"]:
        typer.echo("  mapped:")
        for m in rep["mapped"]:
            v = values.get(m["target"])
            shown = json.dumps(v, default=str) if v is not None else ""
            if len(shown) > 60:
                shown = shown[:57] + "..."
            note = f"   ({m['note']})" if m.get("note") else ""
            typer.echo(f"    {m['target']} = {shown}  <- {m['source']}{note}")
    if rep["ignored"]:
        typer.echo("  ignored:")
        for i in rep["ignored"]:
            typer.echo(f"    {i['source']}: {i['reason']}")
    if rep["missing"]:
        typer.echo("  missing:  " + ", ".join(rep["missing"]))
    for n in rep["notes"]:
        typer.echo(f"  note:     {n}")
    if not rep["scorable"]:
        typer.echo(f"  scoring:  not scorable: {rep['scorable_reason']}")
    if result.group_membership:
        typer.echo(f"  group:    {json.dumps(result.group_membership, default=str)}")


def models_import(
    path: str = typer.Argument(..., help="A JSON/YAML metadata file, a model card (.md), an MLflow MLmodel or run "
                                         "folder, a causal-LM folder (config.json + weights) or a scikit-learn "
                                         "folder (.joblib/.pkl + metrics). Must lie under VIGIL_IMPORT_ROOTS."),
    name: str | None = typer.Option(None, "--name", help="Registry name (default: the name in the metadata, "
                                                             "else the file or folder name)."),
    family: str = typer.Option("auto", "--family", help="llm | sklearn | external | auto (detected from PATH)."),
    group: str | None = typer.Option(None, "--group", help="Model group to join as a challenger."),
    trust_pickle: bool = typer.Option(False, "--trust-pickle", help="Load a scikit-learn pickle (runs code from the "
                                                                     "file!). Without it the model is registered "
                                                                     "from metadata and hashes only, unscorable."),
    llm_mapper: bool = typer.Option(False, "--llm-mapper", help="Ask the OpenAI-compatible endpoint of Airflow "
                                                                 "connection vigil_llm_mapper about keys the rules "
                                                                 "do not know (its answer is validated)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Check and map only; write nothing."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Import a model trained elsewhere with its metadata (source=import, hashed, mapping report kept)."""
    if family not in FAMILIES:
        _fail(f"--family {family!r} is not one of {', '.join(FAMILIES)}")
    from vigil.importer import ImportRefused, import_path
    from vigil.registry.versions import Registry
    from vigil.settings import SettingsError
    from vigil.storage.db import DatabaseError
    from vigil.storage.warehouse import migrate

    try:
        registry = Registry(migrate())
        result = import_path(path, registry, name=name, family=None if family == "auto" else family, group=group,
                             trust_pickle=trust_pickle, llm_mapper=llm_mapper, dry_run=dry_run)
    except (ImportRefused, DatabaseError, SettingsError) as e:
        _fail(str(e))
    if as_json:
        typer.echo(json.dumps(result.to_dict(), indent=2, default=str))
    else:
        _print_report(result)
