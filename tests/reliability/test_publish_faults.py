"""Two site builds at once, and a build SIGKILLed mid-way (after rendering, before its swap): whoever reads the published site sees
a whole old site or a whole new one, never a mix, and the site that stays loads in a browser.

A reader pins ``public/`` with a directory file descriptor (what a web server's open() resolves
at one instant) and checks that snapshot: every page the build stamp lists is there, and every
internal link of the home page resolves inside the same snapshot."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import sqlalchemy as sa

from tests.site.fill import fill

BUILD = [sys.executable, "-m", "vigil.cli", "site", "build", "--no-pdf", "--workers", "1"]


def _read(dirfd: int, rel: str) -> bytes:
    with os.fdopen(os.open(rel, os.O_RDONLY, dir_fd=dirfd), "rb") as f:
        return f.read()


def _exists(dirfd: int, rel: str) -> bool:
    try:
        os.stat(rel, dir_fd=dirfd)
        return True
    except FileNotFoundError:
        return False


class Unpublished(Exception):
    """The pinned tree was swapped out while being read and is being removed: a reader in flight
    gets a 404 and retries. Not a partial site: what is published never changed under it."""


def _check_snapshot(public: Path) -> str:
    """Pin one instant of the published tree; check it is whole; return what round it shows."""
    dirfd = os.open(public, os.O_RDONLY | os.O_DIRECTORY)
    try:
        return _whole(dirfd)
    except (AssertionError, FileNotFoundError, NotADirectoryError, json.JSONDecodeError) as e:
        if os.stat(public).st_ino != os.fstat(dirfd).st_ino:
            raise Unpublished() from None
        raise AssertionError(f"the published tree is not whole: {e}") from None
    finally:
        os.close(dirfd)


def _whole(dirfd: int) -> str:
    stamp = json.loads(_read(dirfd, "vigil-build.json"))
    rounds, pages = set(), 0
    for _root, _dirs, files, rootfd in os.fwalk(".", dir_fd=dirfd):
        for name in files:
            if name.endswith(".html"):
                pages += 1
                rounds |= set(re.findall(r"round \d", _read(rootfd, name).decode(errors="replace")))
    assert len(rounds) <= 1, f"pages of different builds in one published tree: {sorted(rounds)}"
    assert pages >= len(stamp["pages"]), f"{pages} html files for {len(stamp['pages'])} pages"
    home = _read(dirfd, "index.html").decode()
    for href in re.findall(r'href="([^"#?:]+)"', home):
        if not href.startswith(("/", "http")):
            target = os.path.normpath(href)
            assert _exists(dirfd, target) or _exists(dirfd, os.path.join(target, "index.html")), f"home links {href}: missing"
    return next(iter(rounds), "initial")


def test_concurrent_and_killed_builds_never_publish_a_mixed_site(engine, vigil_env):
    site = vigil_env / "site"
    warehouse = vigil_env / "var" / "warehouse"
    fill(engine, warehouse, lineages=2, sklearn_models=2, sklearn_versions=2, groups=2, nights=2, evil=True)
    env = dict(os.environ, VIGIL_SITE_DIR=str(site))
    first = subprocess.run(BUILD, capture_output=True, text=True, env=env, timeout=600)
    assert first.returncode == 0, first.stderr[-2000:]
    public = site / "public"

    seen: set[str] = set()
    problems: list[str] = []
    stop = threading.Event()

    vanished = [0]

    def reader():
        while not stop.is_set():
            try:
                seen.add(_check_snapshot(public))
            except AssertionError as e:
                problems.append(str(e))
            except Unpublished:
                vanished[0] += 1
            time.sleep(0.01)

    t = threading.Thread(target=reader)
    t.start()
    try:
        for round_ in range(2):
            with engine.begin() as c:  # every page changes, so each build rewrites everything
                c.execute(sa.text("UPDATE models SET description = :d"), {"d": f"round {round_}"})
            # the victim dies by SIGKILL after building, just before its swap (the latest, worst moment);
            # the other build runs at the same time and must publish
            victim = subprocess.Popen(BUILD, env=dict(env, VIGIL_FAULT_POINT="publish:before-swap"),
                                      stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            other = subprocess.Popen(BUILD, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            assert victim.wait(600) == -signal.SIGKILL, victim.stderr.read()[-2000:]
            assert other.wait(600) == 0, other.stderr.read()[-2000:]
    finally:
        stop.set()
        t.join(30)
    assert problems == [], problems[:5]
    assert {"initial", "round 0", "round 1"} & seen and len(seen) >= 2, seen  # old and new sites, each whole
    again = subprocess.run(BUILD, capture_output=True, text=True, env=env, timeout=600)  # a killed build left nothing stuck
    assert again.returncode == 0, again.stderr[-2000:]
    assert _check_snapshot(public) == "round 1"
