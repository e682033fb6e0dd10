"""The theme listing that skips dot folders (publish._list_theme_files_without_dot_dirs) finds the
same static files MkDocs' own listing finds, for the project's real theme (Material, overrides)."""

from __future__ import annotations

import shutil

import pytest


@pytest.fixture
def project(tmp_path):
    from vigil.settings import REPO_ROOT

    shutil.copytree(REPO_ROOT / "site", tmp_path / "site", ignore=shutil.ignore_patterns("docs", "public", ".build*"))
    (tmp_path / "site" / "docs").mkdir()
    # a dot folder of the project's own beside Material's .icons: skipped too, as MkDocs drops it
    (tmp_path / "site" / "overrides" / ".hidden").mkdir(parents=True, exist_ok=True)
    (tmp_path / "site" / "overrides" / ".hidden" / "x.css").write_text("a {}")
    (tmp_path / "site" / "overrides" / "extra.css").write_text("b {}")
    return tmp_path / "site"


def test_static_theme_files_are_the_ones_mkdocs_lists(project):
    from mkdocs.structure.files import Files

    from site_builder.publish import _list_theme_files_without_dot_dirs, load_mkdocs

    cfg = load_mkdocs(project / "mkdocs.yml")
    own, fast = cfg.theme.get_env(), cfg.theme.get_env()
    _list_theme_files_without_dot_dirs(fast)
    a, b = Files([]), Files([])
    a.add_files_from_theme(own, cfg)
    b.add_files_from_theme(fast, cfg)
    names = [f.src_uri for f in a]
    assert names == [f.src_uri for f in b]
    assert "extra.css" in names and not any("/." in n or n.startswith(".") for n in names)
    assert len(names) > 20  # Material's own assets are there
    # a caller whose filter keeps dot paths, or with no filter, gets Jinja's own listing
    assert fast.list_templates() == own.list_templates()
    assert fast.list_templates(filter_func=lambda n: True) == own.list_templates(filter_func=lambda n: True)
