"""Reading what the user points at, safely: import roots, size limit, text, JSON/YAML/model cards.

Every failure is an ``ImportRefused`` that names the file and, for syntax errors, the line and
column, so the user can fix the file without guessing. Nothing here writes anything.
"""

from __future__ import annotations

import json
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from vigil.importer.errors import ImportRefused

METADATA_SUFFIXES = (".json", ".yaml", ".yml", ".md", ".markdown")
MLMODEL = "MLmodel"


# ---------------------------------------------------------------------------------------------
# Paths
def resolve_import_path(raw: str | os.PathLike[str], roots: tuple[Path, ...]) -> Path:
    """The real path (symlinks resolved, ``..`` collapsed) of PATH, refused outside the roots."""
    text = str(raw)
    if not text.strip():
        raise ImportRefused("PATH is empty: give the file or folder to import")
    if "\x00" in text:
        raise ImportRefused("PATH contains a NUL byte; give a plain file or folder path")
    p = Path(text).expanduser()
    if not p.is_absolute():
        p = Path.cwd() / p
    try:
        real = p.resolve(strict=True)
    except FileNotFoundError:
        raise ImportRefused(f"PATH {text!r} does not exist (or is a broken symlink); check the path") from None
    except (OSError, RuntimeError) as e:
        raise ImportRefused(f"PATH {text!r} cannot be resolved ({e}); check the path and its symlinks") from None
    check_inside_roots(real, roots, text)
    return real


def check_inside_roots(real: Path, roots: tuple[Path, ...], shown: str) -> None:
    if not any(real == r or real.is_relative_to(r) for r in roots):
        listed = os.pathsep.join(str(r) for r in roots)
        raise ImportRefused(
            f"PATH {shown!r} resolves to {real}, outside the allowed import roots ({listed}); move it under one "
            "of them or add its folder to VIGIL_IMPORT_ROOTS"
        )


def check_regular_file(path: Path, shown: str, max_bytes: int) -> int:
    """Size of a regular file within the limit; refuses FIFOs, devices and too-large files."""
    try:
        st = os.stat(path)
    except OSError as e:
        raise ImportRefused(f"cannot read {shown}: {e.strerror or e}; check that it exists and is readable") from None
    if not stat.S_ISREG(st.st_mode):
        raise ImportRefused(f"{shown} is not a regular file (a FIFO, socket or device); import plain files only")
    if st.st_size > max_bytes:
        raise ImportRefused(
            f"{shown} is {st.st_size} bytes, above VIGIL_IMPORT_MAX_BYTES={max_bytes}; raise VIGIL_IMPORT_MAX_BYTES "
            "if the file is expected to be this large"
        )
    return st.st_size


def read_bytes(path: Path, shown: str, max_bytes: int) -> bytes:
    check_regular_file(path, shown, max_bytes)
    try:
        with open(path, "rb") as f:
            data = f.read(max_bytes + 1)
    except OSError as e:
        raise ImportRefused(f"cannot read {shown}: {e.strerror or e}; check its permissions") from None
    if len(data) > max_bytes:  # grew after the stat
        raise ImportRefused(f"{shown} is larger than VIGIL_IMPORT_MAX_BYTES={max_bytes}")
    return data


def read_text(path: Path, shown: str, max_bytes: int) -> str:
    data = read_bytes(path, shown, max_bytes)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise ImportRefused(
            f"{shown} is not UTF-8 text (invalid byte at offset {e.start}); metadata must be UTF-8 JSON, YAML or "
            "Markdown"
        ) from None


# ---------------------------------------------------------------------------------------------
# Parsers
def parse_json(text: str, shown: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise ImportRefused(f"{shown}: invalid JSON at line {e.lineno}, column {e.colno}: {e.msg}; fix the syntax") from None
    except RecursionError:
        raise ImportRefused(f"{shown}: JSON nested too deeply to read") from None


def parse_yaml(text: str, shown: str, line_offset: int = 0) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        where = f" at line {mark.line + 1 + line_offset}, column {mark.column + 1}" if mark else ""
        what = e.problem or e.context or "syntax error"
        raise ImportRefused(f"{shown}: invalid YAML{where}: {what}; fix the syntax") from None
    except yaml.YAMLError as e:
        raise ImportRefused(f"{shown}: invalid YAML: {e}; fix the syntax") from None
    except RecursionError:
        raise ImportRefused(f"{shown}: YAML nested too deeply to read") from None


def split_front_matter(text: str) -> tuple[str | None, str, int]:
    """(front matter YAML or None, body, line number of the YAML's first line - 1)."""
    lines = text.splitlines(keepends=True)
    if not lines or lines[0].strip() != "---":
        return None, text, 0
    for i in range(1, len(lines)):
        if lines[i].strip() in ("---", "..."):
            return "".join(lines[1:i]), "".join(lines[i + 1:]), 1
    return None, text, 0


def first_paragraph(markdown: str, limit: int = 2000) -> str | None:
    """The first prose paragraph of a model card body (headings, HTML comments, tables skipped)."""
    para: list[str] = []
    in_comment = False
    for line in markdown.splitlines():
        s = line.strip()
        if in_comment:
            in_comment = "-->" not in s
            continue
        if s.startswith("<!--"):
            in_comment = "-->" not in s
            continue
        if not s:
            if para:
                break
            continue
        if s.startswith(("#", "|", "```", "<", "![", "---")):
            if para:
                break
            continue
        para.append(s)
    text = " ".join(para).strip()
    return text[:limit] or None


@dataclass
class Document:
    """One metadata file: its verbatim text and what it parsed into."""

    rel: str                  # name shown in reports (relative to the imported folder)
    text: str                 # verbatim, recorded with the version
    data: Any                 # parsed content handed to the mapper
    format: str               # json | yaml | model_card | mlflow_run
    section: str | None = None  # the file IS a metrics/params section (by file name rule)
    body_description: str | None = None  # a model card's first prose paragraph


def load_document(path: Path, rel: str, max_bytes: int, section: str | None = None) -> Document:
    """Read and parse one metadata file by its suffix (or the name ``MLmodel``)."""
    text = read_text(path, rel, max_bytes)
    suffix = path.suffix.lower()
    body_description = None
    if suffix == ".json":
        data, fmt = parse_json(text, rel), "json"
    elif suffix in (".yaml", ".yml") or path.name == MLMODEL:
        data, fmt = parse_yaml(text, rel), "yaml"
    elif suffix in (".md", ".markdown"):
        front, body, offset = split_front_matter(text)
        data = parse_yaml(front, rel, line_offset=offset) if front is not None else {}
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise ImportRefused(f"{rel}: the YAML front matter must be a mapping of keys to values")
        body_description = first_paragraph(body)
        fmt = "model_card"
    else:
        raise ImportRefused(
            f"{rel}: unsupported file type {path.suffix or path.name!r}; import a .json, .yaml/.yml, .md model card or "
            "MLmodel file, or a model folder"
        )
    if data is None:
        raise ImportRefused(f"{rel} is empty: it holds no metadata")
    doc = Document(rel=rel, text=text, data=data, format=fmt, section=section)
    if fmt == "model_card":
        doc.body_description = body_description
    return doc
