"""Airflow UI plugin: a "Reports" entry in Airflow's navigation that opens the Vigil report site.

Airflow 3 replaced Flask-AppBuilder views with two extension points, both used here:

* ``fastapi_apps``: a small FastAPI app mounted on the API server at ``/vigil-reports`` serves
  the published site (``<VIGIL_SITE_DIR>/public``) as static files, so the link works wherever
  the Airflow UI does, without a second web server;
* ``external_views``: the nav entry itself (name, href, icon). With ``url_route`` set, the UI
  shows the site inside its own frame at ``/plugin/vigil-reports``.

The directory is resolved per request: the site builder swaps ``public/`` atomically, and a site
built after the API server started is served without a restart. Nothing is read at import time.

Every request needs an Airflow login: the JWT the UI keeps in its ``_token`` cookie (so the nav
entry and its frame just work) or an ``Authorization: Bearer`` token, validated by Airflow's own
auth manager. Without one the answer is 401 and a link to the login page.
"""

# No `from __future__ import annotations`: FastAPI resolves the dependency's `Request`
# annotation at runtime, and Request is imported inside create_reports_app.
from airflow.plugins_manager import AirflowPlugin

URL_PREFIX = "/vigil-reports"


def create_reports_app():
    """The FastAPI app serving the built site, or a page that says how to build it."""
    from pathlib import Path

    from fastapi import Depends, FastAPI, HTTPException, Request
    from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse

    async def require_login(request: Request) -> None:
        # imported per request: plugins load in every Airflow process, the API server code only here
        from airflow.api_fastapi.auth.managers.base_auth_manager import COOKIE_NAME_JWT_TOKEN
        from airflow.api_fastapi.core_api.security import resolve_user_from_token

        header = request.headers.get("authorization", "")
        token = header[7:] if header.lower().startswith("bearer ") else request.cookies.get(COOKIE_NAME_JWT_TOKEN)
        await resolve_user_from_token(token)  # 401 without a token, 403 for a bad one

    app = FastAPI(title="Vigil reports", docs_url=None, redoc_url=None, openapi_url=None,
                  dependencies=[Depends(require_login)])

    @app.exception_handler(HTTPException)
    async def login_page(request: Request, exc: HTTPException):
        from html import escape

        return HTMLResponse(f"<h1>Log in to Airflow to read the reports</h1><p>{exc.status_code}: {escape(str(exc.detail))}. "
                            '<a href="/">Open the Airflow UI</a>, log in, then use its Reports entry.</p>',
                            status_code=exc.status_code)

    def public_dir() -> Path:
        from vigil.settings import get_settings

        return get_settings().site_public_dir.resolve()

    @app.get("/", include_in_schema=False)
    def root():
        return RedirectResponse(url=f"{URL_PREFIX}/index.html")

    @app.get("/{path:path}", include_in_schema=False)
    def page(path: str):
        base = public_dir()
        target = (base / path).resolve()
        if target.is_dir():
            target = target / "index.html"
        # no escaping the site dir with ../ or symlinks
        if base not in target.parents and target != base:
            return HTMLResponse("not found", status_code=404)
        if not target.is_file():
            if not (base / "index.html").is_file():
                return HTMLResponse("<h1>No report site yet</h1><p>Build it with <code>vigil site build</code> "
                                    "or trigger the <code>publish_reports</code> DAG.</p>", status_code=404)
            return HTMLResponse("not found", status_code=404)
        return FileResponse(target)

    return app


class VigilReportsPlugin(AirflowPlugin):
    name = "vigil_reports"
    fastapi_apps = [{"app": create_reports_app(), "url_prefix": URL_PREFIX, "name": "Vigil reports"}]
    external_views = [{
        "name": "Reports",
        "href": f"{URL_PREFIX}/index.html",
        "destination": "nav",
        "url_route": "vigil-reports",
    }]
