"""Publishing: incremental rebuilds, the atomic swap, empty warehouses, the CLI and the Airflow link."""

from __future__ import annotations

import json
import shutil
from datetime import datetime, timezone

import pytest
import sqlalchemy as sa

from site_builder.publish import SiteBuildError, build_site
from tests.site.fill import fill


def _info(site_dir):
    return json.loads((site_dir / "public" / "vigil-build.json").read_text())


def test_empty_warehouse_builds_a_site_that_says_how_to_start(engine, vigil_env):
    r = build_site(engine, vigil_env / "site", pdf=False)
    home = r.index_html.read_text()
    assert "No models yet." in home and "make demo" in home
    assert (vigil_env / "site" / "public" / "models" / "index.html").is_file()
    assert r.pdfs == [] and r.pages_written == r.pages_total == 5  # home, models, groups, runs, coverage


def test_unchanged_pages_are_not_rerendered_and_one_group_change_rebuilds_little(engine, vigil_env):
    site = vigil_env / "site"
    f = fill(engine, vigil_env / "var" / "warehouse", lineages=1, sklearn_models=2, sklearn_versions=2, groups=2, nights=1,
             evil=False)
    first = build_site(engine, site, pdf=False, parquet_dir=vigil_env / "var" / "warehouse")
    again = build_site(engine, site, pdf=False, parquet_dir=vigil_env / "var" / "warehouse")
    assert (again.pages_written, again.pages_unchanged) == (0, first.pages_total)
    before = _info(site)["pages"]
    with engine.begin() as c:  # one group changes: an audit event, as a promotion would write
        c.execute(sa.text("""INSERT INTO group_events (group_id, event_type, actor, reason, at)
                             VALUES (:g, 'weights', 'bob', 'shift traffic', :at)"""),
                  {"g": f.groups["fraud_1"], "at": datetime(2026, 11, 23, 12, tzinfo=timezone.utc)})
    third = build_site(engine, site, pdf=False, parquet_dir=vigil_env / "var" / "warehouse")
    after = _info(site)["pages"]
    changed = sorted(k for k in after if after[k] != before.get(k))
    assert changed == ["groups/fraud_1"], changed  # the group's own page; its index row did not change
    assert third.pages_written == 1


def _site_files(public):
    """The built site's pages, charts and search index (not the build stamp, not the sitemap's dates)."""
    return {str(p.relative_to(public)): p.read_bytes() for p in public.rglob("*")
            if p.is_file() and p.suffix in (".html", ".json", ".svg") and p.name != "vigil-build.json"}


def test_pages_converted_in_the_render_workers_match_mkdocs_own_conversion(engine, vigil_env, monkeypatch):
    """The render workers convert each page's Markdown and make its search entries (publish.PRERENDER);
    the site must be byte for byte the one MkDocs makes when it converts every page itself."""
    from site_builder import publish

    wh = vigil_env / "var" / "warehouse"
    fill(engine, wh, lineages=2, sklearn_models=1, sklearn_versions=2, groups=1, nights=2)  # hostile names too
    monkeypatch.setattr(publish, "PRERENDER", False)
    own = build_site(engine, vigil_env / "own", pdf=False, parquet_dir=wh)
    assert not list((vigil_env / "own" / ".build-cache").glob("*/page.html"))
    monkeypatch.setattr(publish, "PRERENDER", True)
    pre = build_site(engine, vigil_env / "pre", pdf=False, parquet_dir=wh)
    assert len(list((vigil_env / "pre" / ".build-cache").glob("*/page.html"))) == pre.pages_total
    a, b = _site_files(own.public_dir), _site_files(pre.public_dir)
    assert "search/search_index.json" in a and len(a) > pre.pages_total
    assert sorted(a) == sorted(b)
    assert [k for k in a if a[k] != b[k]] == []


def test_an_incremental_build_keeps_unchanged_pages_html_and_equals_a_fresh_build(engine, vigil_env):
    wh = vigil_env / "var" / "warehouse"
    f = fill(engine, wh, lineages=1, sklearn_models=2, sklearn_versions=2, groups=2, nights=1, evil=False)
    site = vigil_env / "site"
    first = build_site(engine, site, pdf=False, parquet_dir=wh)
    assert first.timings["pages_reused"] == 0
    same = build_site(engine, site, pdf=False, parquet_dir=wh)
    assert same.timings["pages_reused"] == same.pages_total and same.pages_written == 0
    with engine.begin() as c:
        c.execute(sa.text("""INSERT INTO group_events (group_id, event_type, actor, reason, at)
                             VALUES (:g, 'weights', 'bob', 'shift traffic', :at)"""),
                  {"g": f.groups["fraud_0"], "at": datetime(2026, 11, 23, 12, tzinfo=timezone.utc)})
    inc = build_site(engine, site, pdf=False, parquet_dir=wh)
    assert inc.pages_written == 1 and inc.timings["pages_reused"] == inc.pages_total - 1
    fresh = build_site(engine, vigil_env / "fresh", pdf=False, parquet_dir=wh)
    a, b = _site_files(inc.public_dir), _site_files(fresh.public_dir)
    assert sorted(a) == sorted(b) and [k for k in a if a[k] != b[k]] == []
    # a new version changes the nav every page shows: nothing is reused
    from vigil.registry.versions import Registry, RunRef

    run = RunRef("import", "cli__new", "import", datetime(2026, 11, 24, tzinfo=timezone.utc))
    Registry(engine).register_version(name="late-arrival", family="external", artifact_uri="/imports/late.json",
                                      producer_key="import:" + "e" * 64, source="import", run=run)
    grown = build_site(engine, site, pdf=False, parquet_dir=wh)
    assert grown.pages_total == inc.pages_total + 1
    if grown.timings["pages_reused"]:  # the nav may list only some versions; then the rest must still match
        fresh2 = build_site(engine, vigil_env / "fresh2", pdf=False, parquet_dir=wh)
        a, b = _site_files(grown.public_dir), _site_files(fresh2.public_dir)
        assert [k for k in a if a.get(k) != b.get(k)] == []


def test_a_group_event_redoes_its_pdf_but_not_a_summary_report(engine, vigil_env, monkeypatch):
    """Beyond REPORT_GROUP_DETAIL_LIMIT groups the full report shows one summary row per group, so a
    group's new event (its own page changes, its summary row does not) must not re-render the report."""
    from site_builder import render

    monkeypatch.setattr(render, "REPORT_GROUP_DETAIL_LIMIT", 1)
    wh = vigil_env / "var" / "warehouse"
    f = fill(engine, wh, lineages=0, sklearn_models=2, sklearn_versions=2, groups=2, nights=1, evil=False)
    site = vigil_env / "site"
    first = build_site(engine, site, pdf=True, parquet_dir=wh)
    assert "report_pdf" in first.timings and (first.public_dir / "pdf" / "vigil-report.pdf").is_file()
    with engine.begin() as c:
        c.execute(sa.text("""INSERT INTO group_events (group_id, event_type, actor, reason, at)
                             VALUES (:g, 'weights', 'bob', 'shift traffic', :at)"""),
                  {"g": f.groups["fraud_1"], "at": datetime(2026, 11, 23, 12, tzinfo=timezone.utc)})
    again = build_site(engine, site, pdf=True, parquet_dir=wh)
    assert again.pages_written == 1 and again.pdfs_written == 1 and "report_pdf" not in again.timings
    assert (again.public_dir / "pdf" / "vigil-report.pdf").is_file()


def test_a_failed_build_leaves_the_published_site_whole(engine, vigil_env):
    site = vigil_env / "site"
    fill(engine, vigil_env / "var" / "warehouse", lineages=1, sklearn_models=1, sklearn_versions=1, groups=0, nights=1)
    good = build_site(engine, site, pdf=False, parquet_dir=vigil_env / "var" / "warehouse")
    files = sorted(p.relative_to(site / "public") for p in (site / "public").rglob("*"))
    stamp = (site / "public" / "vigil-build.json").read_text()
    # A real MkDocs failure: the site's own project names a theme that does not exist.
    from site_builder.publish import project_dir

    shutil.copytree(project_dir(site), site, dirs_exist_ok=True, ignore=shutil.ignore_patterns("public", ".build*", "docs"))
    cfg = (site / "mkdocs.yml").read_text().replace("name: material", "name: no-such-theme")
    (site / "mkdocs.yml").write_text(cfg)
    with engine.begin() as c:
        c.execute(sa.text("UPDATE models SET description = 'changed'"))
    with pytest.raises(SiteBuildError, match="mkdocs build failed"):
        build_site(engine, site, pdf=False, parquet_dir=vigil_env / "var" / "warehouse")
    assert sorted(p.relative_to(site / "public") for p in (site / "public").rglob("*")) == files
    assert (site / "public" / "vigil-build.json").read_text() == stamp
    assert good.index_html.is_file()
    # (a finished build's swapped-out tree, .build-old-*, is removed in the background)
    left = [p.name for p in site.glob(".build-*") if p.name != ".build-cache" and not p.name.startswith(".build-old-")]
    assert left == [], "failed build dir left behind"


def test_cli_builds_and_reports_bad_settings(engine, vigil_env, monkeypatch):
    from typer.testing import CliRunner

    from vigil.cli.main import app

    runner = CliRunner()
    res = runner.invoke(app, ["site", "build", "--no-pdf"])
    assert res.exit_code == 0, res.output
    assert "site: " in res.output and (vigil_env / "site" / "public" / "index.html").is_file()
    monkeypatch.setenv("VIGIL_DATABASE_URL", "mysql://nobody@localhost/x")
    res = runner.invoke(app, ["site", "build"])
    assert res.exit_code == 1 and "vigil: error: VIGIL_DATABASE_URL must be a PostgreSQL URL" in res.output
    assert "Traceback" not in res.output
    res = runner.invoke(app, ["site", "serve", "--site-dir", str(vigil_env / "nowhere")])
    assert res.exit_code == 1 and "vigil site build" in res.output


def test_airflow_plugin_serves_the_site_and_nothing_outside_it(engine, vigil_env, airflow_db):
    import importlib.util

    from airflow.api_fastapi.app import create_auth_manager
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from vigil.settings import REPO_ROOT

    spec = importlib.util.spec_from_file_location("vigil_airflow_plugin",
                                                  REPO_ROOT / "plugins" / "vigil" / "airflow" / "reports_plugin.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    plugin = mod.VigilReportsPlugin
    assert plugin.external_views[0]["name"] == "Reports" and plugin.external_views[0]["href"].startswith(mod.URL_PREFIX)
    root = FastAPI()
    root.mount(plugin.fastapi_apps[0]["url_prefix"], plugin.fastapi_apps[0]["app"])
    anonymous = TestClient(root)
    assert anonymous.get(f"{mod.URL_PREFIX}/index.html").status_code == 401
    # a real token from Airflow's own auth manager (the one the API server validates with)
    token = create_auth_manager().generate_jwt(SimpleAuthManagerUser(username="admin", role="admin"))
    client = TestClient(root, headers={"Authorization": f"Bearer {token}"})
    assert "No report site yet" in client.get(f"{mod.URL_PREFIX}/index.html").text
    build_site(engine, vigil_env / "site", pdf=False)
    r = client.get(f"{mod.URL_PREFIX}/index.html")
    assert r.status_code == 200 and "Vigil reports" in r.text
    (vigil_env / "secret.txt").write_text("secret")
    assert client.get(f"{mod.URL_PREFIX}/%2e%2e/%2e%2e/secret.txt").status_code == 404


def _same_as_fresh(engine, wh, built, fresh_dir):
    fresh = build_site(engine, fresh_dir, pdf=False, parquet_dir=wh)
    a, b = _site_files(built.public_dir), _site_files(fresh.public_dir)
    assert sorted(a) == sorted(b) and [k for k in a if a[k] != b[k]] == []


def test_kept_reads_and_version_pages_follow_every_change_of_their_inputs(engine, vigil_env):
    """An incremental build reuses what the previous one read (evaluations, Parquet) and planned
    (version pages) while their sources did not change; each kind of change is still seen, and the
    site equals a fresh build's after each."""
    from site_builder import pagedata
    from vigil.storage.parquet_store import ParquetStore

    wh = vigil_env / "var" / "warehouse"
    f = fill(engine, wh, lineages=1, sklearn_models=2, sklearn_versions=2, groups=2, nights=1, evil=False)
    site = vigil_env / "site"
    build_site(engine, site, pdf=False, parquet_dir=wh)
    assert (site / ".build-cache" / ".plan" / "version-pages.pkl").is_file()
    assert (site / ".build-cache" / ".snapshot" / "evaluations.pkl").is_file()

    made = []
    own = pagedata.Planner.version_page

    def counting(self, vid):
        made.append(vid)
        return own(self, vid)

    pagedata.Planner.version_page = counting
    try:
        # a group's event: no version page is planned again, one page is rendered
        with engine.begin() as c:
            c.execute(sa.text("""INSERT INTO group_events (group_id, event_type, actor, reason, at)
                                 VALUES (:g, 'weights', 'bob', 'shift traffic', :at)"""),
                      {"g": f.groups["fraud_0"], "at": datetime(2026, 11, 23, 12, tzinfo=timezone.utc)})
        inc = build_site(engine, site, pdf=False, parquet_dir=wh)
        assert made == [] and inc.pages_written == 1
        _same_as_fresh(engine, wh, inc, vigil_env / "fresh1")

        # an evaluation's metric changes in place (an UPDATE: same row count, same ids)
        with engine.begin() as c:
            eid, vid = c.execute(sa.text("SELECT id, model_version_id FROM evaluations WHERE status = 'succeeded' "
                                         "ORDER BY id LIMIT 1")).one()
            c.execute(sa.text("UPDATE evaluations SET metrics = metrics || '{\"vigil_test_metric\": 0.123}' "
                              "WHERE id = :e"), {"e": eid})
        made.clear()
        inc = build_site(engine, site, pdf=False, parquet_dir=wh)
        assert vid in made and inc.pages_written >= 1
        _same_as_fresh(engine, wh, inc, vigil_env / "fresh2")

        # a training curve is written again (Parquet: the read sees the file changed)
        store = ParquetStore(wh)
        key = next(p.parent.name.split("=", 1)[1] for p in store.files("training_curve"))
        day = next(p.parent.parent.name.split("=", 1)[1] for p in store.files("training_curve", key=key))
        df = store.read("training_curve", logical_date=day, key=key).drop(columns=["logical_date", "key"], errors="ignore")
        df["loss"] = df["loss"] * 0.5
        store.write("training_curve", day, key, df)
        made.clear()
        inc = build_site(engine, site, pdf=False, parquet_dir=wh)
        assert made and inc.pages_written >= 1
        _same_as_fresh(engine, wh, inc, vigil_env / "fresh3")
    finally:
        pagedata.Planner.version_page = own


def test_a_version_page_that_reads_an_undeclared_field_fails_naming_it(engine, vigil_env, monkeypatch):
    """Version pages are planned from a view holding only VERSION_PAGE_READS: reading anything else
    is an error that says where to declare it, never a stale kept page."""
    from site_builder import pagedata

    fill(engine, vigil_env / "var" / "warehouse", lineages=1, sklearn_models=1, sklearn_versions=1, groups=1, nights=1,
         evil=False)
    monkeypatch.setattr(pagedata, "VERSION_PAGE_READS", pagedata.VERSION_PAGE_READS - {"curves"})
    with pytest.raises(pagedata.PlanReadError, match="'curves'.*VERSION_PAGE_READS does not"):
        build_site(engine, vigil_env / "site", pdf=False, parquet_dir=vigil_env / "var" / "warehouse")
