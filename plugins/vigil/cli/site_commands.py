"""`vigil site build|serve`: the report site. site_builder is imported inside the commands, so the
core never imports the site at module level (see ARCHITECTURE.md, "Which way the imports run")."""

from __future__ import annotations

import json
from pathlib import Path

import typer

site_app = typer.Typer(help="The report site and its PDFs (built from the warehouse into site/public/).",
                       no_args_is_help=True)


def _fail(message: str) -> None:
    typer.secho(f"vigil: error: {message}", err=True, fg=typer.colors.RED)
    raise typer.Exit(1)


@site_app.command("build")
def site_build(
    pdf: bool = typer.Option(True, "--pdf/--no-pdf", help="Also render the PDFs (one per version, per group, full report)."),
    site_dir: Path | None = typer.Option(None, "--site-dir", help="MkDocs project and output dir (default: VIGIL_SITE_DIR or ./site)."),
    workers: int | None = typer.Option(None, "--workers", min=1, max=64, help="Render processes (default: CPU count, at most 4)."),
    as_json: bool = typer.Option(False, "--json", help="Print the build summary as JSON."),
) -> None:
    """Read the warehouse, render changed pages, run mkdocs and swap the result into <site>/public."""
    from vigil.settings import SettingsError
    from vigil.storage.db import DatabaseError
    from vigil.storage.warehouse import migrate

    try:
        engine = migrate()
    except (DatabaseError, SettingsError) as e:
        _fail(str(e))
    from site_builder.publish import SiteBuildError, build_site

    try:
        result = build_site(engine, site_dir, pdf=pdf, workers=workers)
    except SiteBuildError as e:
        _fail(f"{e} (the previously published site was left as it was)")
    if as_json:
        typer.echo(json.dumps(result.to_dict(), indent=2))
        return
    typer.echo(f"{result.pages_total} pages: {result.pages_written} rendered, {result.pages_unchanged} unchanged; "
               f"{len(result.pdfs)} PDFs; {result.seconds:.1f} s")
    typer.echo(f"site: {result.index_html}")


@site_app.command("serve")
def site_serve(
    port: int = typer.Option(8000, "--port", min=1, max=65535, help="TCP port."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to bind (127.0.0.1 keeps it local)."),
    site_dir: Path | None = typer.Option(None, "--site-dir", help="Site dir (default: VIGIL_SITE_DIR or ./site)."),
) -> None:
    """Serve the built site (site/public) over HTTP until Ctrl-C."""
    import functools
    import http.server

    from vigil.settings import get_settings

    public = (site_dir or get_settings().site_dir) / "public"
    if not (public / "index.html").is_file():
        _fail(f"no site at {public}: build it first with `vigil site build`")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(public))
    try:
        server = http.server.ThreadingHTTPServer((host, port), handler)
    except OSError as e:
        _fail(f"cannot listen on {host}:{port} ({e.strerror}); pick another with --port")
    typer.echo(f"serving {public} at http://{host}:{port}/ (Ctrl-C to stop)")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
