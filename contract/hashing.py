"""Content hashes of artifacts, one definition for every side. Standard library only.

A file's hash is the sha256 of its bytes. A folder's is the sha256 of its files listed as
``<relative posix path> NUL <file hash> LF``, ordered by path components (the order of
``sorted(pathlib.Path(...).rglob("*"))``, which the registry's earliest hashes were made with).
The stages write these into their manifests, the record step and ``vigil models verify`` check
them, and the importer computes the same digest from a file listing without copying the files.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from pathlib import Path, PurePosixPath

_CHUNK = 1 << 20


def sha256_file(path: str | os.PathLike[str]) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def tree_sha256(files: Mapping[str, str]) -> str:
    """The folder digest from ``{relative posix path: file sha256}``."""
    h = hashlib.sha256()
    for rel in sorted(files, key=lambda r: PurePosixPath(r).parts):
        h.update(rel.encode())
        h.update(b"\0")
        h.update(files[rel].encode())
        h.update(b"\n")
    return h.hexdigest()


def sha256_path(path: str | os.PathLike[str]) -> str:
    """sha256 of a file, or of a folder (see the module docstring)."""
    p = Path(path)
    if p.is_file():
        return sha256_file(p)
    if p.is_dir():
        return tree_sha256({f.relative_to(p).as_posix(): sha256_file(f) for f in p.rglob("*") if f.is_file()})
    raise FileNotFoundError(f"cannot hash {p}: no such file or directory")
