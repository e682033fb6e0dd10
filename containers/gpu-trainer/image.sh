#!/usr/bin/env bash
# The gpu-trainer image on a CPU host without a container registry (Debian, root for the engine):
#
#   image.sh engine      install Docker Engine (Debian's docker.io) and start dockerd when none answers
#   image.sh base        vigil/bookworm-base: debootstrap --variant=minbase bookworm, docker import
#   image.sh wheelhouse  build/wheelhouse: every wheel the image installs, made on the host
#   image.sh build       vigil/gpu-trainer:latest from the three above (CPU torch, no index)
#   image.sh all         the four in turn (what `make image` runs)
#
# Every step is idempotent: what exists is kept (the engine running, the base image, a wheelhouse
# made from the same requirements; docker build's own layer cache). A step that cannot run here
# says why on stderr and exits 3 (`make image` and .ci/run report it and go on without the image).
# Host networking only: dockerd runs with --bridge=none --iptables=false, builds with --network host.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
DOCKER=${DOCKER:-$( [ -x /usr/bin/docker ] && echo /usr/bin/docker || echo docker )}
BASE_IMAGE=${BASE_IMAGE:-vigil/bookworm-base}
IMAGE=${VIGIL_TRAINER_IMAGE:-vigil/gpu-trainer:latest}
PY=${PY:-$ROOT/.venv/bin/python}
WHEELHOUSE=build/wheelhouse
ROOTFS=build/image/rootfs
TORCH_REQUIREMENT=${TORCH_REQUIREMENT:-torch==2.13.0}
# extra pip arguments for the wheelhouse, e.g. --extra-index-url https://download.pytorch.org/whl/cpu
# where CPU torch is not already on a find-links folder (it is here: /opt/wheels)
WHEELHOUSE_PIP_ARGS=${WHEELHOUSE_PIP_ARGS:-}

say() { echo "image.sh: $*" >&2; }
cannot() { say "cannot $*"; exit 3; }

engine_up() { "$DOCKER" version >/dev/null 2>&1; }

engine() {
  if engine_up; then say "engine: running ($("$DOCKER" version --format '{{.Server.Version}}'))"; return; fi
  [ "$(id -u)" = 0 ] || cannot "start Docker Engine: no daemon answers and this is not root (start dockerd, or add this user to the docker group)"
  if ! command -v dockerd >/dev/null; then
    command -v apt-get >/dev/null || cannot "install Docker Engine: no dockerd and no apt-get"
    say "engine: apt-get install docker.io"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io >/dev/null) \
      || cannot "install docker.io with apt-get"
    DOCKER=/usr/bin/docker
  fi
  # No systemd here: start the daemon ourselves, without a bridge or NAT rules (host networking).
  say "engine: starting dockerd --bridge=none --iptables=false (log /var/log/vigil-dockerd.log)"
  nohup dockerd --bridge=none --iptables=false >>/var/log/vigil-dockerd.log 2>&1 &
  for _ in $(seq 1 60); do engine_up && { say "engine: up ($("$DOCKER" version --format '{{.Server.Version}}'))"; return; }; sleep 1; done
  tail -5 /var/log/vigil-dockerd.log >&2 || true
  cannot "start dockerd: no answer after 60 s (see /var/log/vigil-dockerd.log)"
}

debian_mirror() {
  # the Debian mirror apt uses (deb822 .sources or one-line lists), else deb.debian.org
  local m
  m=$(grep -hE '^(URIs:|deb )' /etc/apt/sources.list /etc/apt/sources.list.d/*.sources /etc/apt/sources.list.d/*.list 2>/dev/null \
      | grep -oE 'https?://[^ ]+/debian/?' | grep -v security | head -1 || true)
  echo "${m:-http://deb.debian.org/debian}"
}

base() {
  engine_up || cannot "make $BASE_IMAGE: no Docker Engine answers (run: $0 engine)"
  if "$DOCKER" image inspect "$BASE_IMAGE" >/dev/null 2>&1; then say "base: $BASE_IMAGE exists"; return; fi
  if [ ! -f "$ROOTFS/.complete" ]; then
    [ "$(id -u)" = 0 ] || cannot "debootstrap a base image: needs root"
    command -v debootstrap >/dev/null || { command -v apt-get >/dev/null \
      && (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null); } \
      || cannot "install debootstrap"
    rm -rf "$ROOTFS"; mkdir -p "$(dirname "$ROOTFS")"
    local mirror; mirror=$(debian_mirror)
    say "base: debootstrap --variant=minbase bookworm $ROOTFS $mirror"
    debootstrap --variant=minbase bookworm "$ROOTFS" "$mirror" >build/image/debootstrap.log 2>&1 \
      || { tail -5 build/image/debootstrap.log >&2; cannot "debootstrap bookworm (log build/image/debootstrap.log)"; }
    touch "$ROOTFS/.complete"
  fi
  say "base: docker import $ROOTFS as $BASE_IMAGE"
  tar -C "$ROOTFS" --exclude=./.complete -c . | "$DOCKER" import - "$BASE_IMAGE" >/dev/null
}

requirements() {
  # the image's requirements, read from containers/gpu-trainer/pyproject.toml (one source of pins)
  "$PY" - "$TORCH_REQUIREMENT" <<'PY'
import sys, tomllib
p = tomllib.load(open("containers/gpu-trainer/pyproject.toml", "rb"))
reqs = [r for r in p["project"]["dependencies"] if not r.startswith("torch")]
print("\n".join([sys.argv[1], *reqs, *p["build-system"]["requires"], "wheel"]))
PY
}

wheelhouse() {
  [ -x "$PY" ] || cannot "make the wheelhouse: no $PY (run make install first)"
  local want; want=$(requirements | sha256sum | cut -c1-16)
  if [ "$(cat "$WHEELHOUSE/.complete" 2>/dev/null)" = "$want" ]; then say "wheelhouse: $WHEELHOUSE is up to date"; return; fi
  mkdir -p "$WHEELHOUSE" build/image
  # The versions the host venv runs (`make install`), so a stage in the image computes what the
  # local runner computes; the ranges themselves are the pyproject's.
  "$PY" -m pip list --format=freeze 2>/dev/null | grep -viE '^(vigil|pip)==' > build/image/constraints.txt
  say "wheelhouse: pip wheel into $WHEELHOUSE (versions of $PY's environment)"
  # shellcheck disable=SC2086
  requirements | "$PY" -m pip wheel -q $WHEELHOUSE_PIP_ARGS -c build/image/constraints.txt -w "$WHEELHOUSE" -r /dev/stdin \
    || cannot "make the wheelhouse (pip wheel failed)"
  echo "$want" > "$WHEELHOUSE/.complete"
}

build() {
  engine_up || cannot "build $IMAGE: no Docker Engine answers (run: $0 engine)"
  "$DOCKER" image inspect "$BASE_IMAGE" >/dev/null 2>&1 || cannot "build $IMAGE: no $BASE_IMAGE (run: $0 base)"
  [ -f "$WHEELHOUSE/.complete" ] || cannot "build $IMAGE: no wheelhouse (run: $0 wheelhouse)"
  # The wheelhouse is served on 127.0.0.1 for the build only (the build runs with --network host):
  # pip reads it as --find-links, and no wheel is copied into the context or a layer. A fixed
  # port: the URL is a build arg, and a new one each time would defeat docker's layer cache.
  local port=${WHEELHOUSE_PORT:-47313}
  "$PY" -m http.server --bind 127.0.0.1 --directory "$WHEELHOUSE" "$port" >/dev/null 2>&1 &
  WHEEL_SERVER=$!
  trap 'kill "$WHEEL_SERVER" 2>/dev/null || true' EXIT
  local ok=
  for _ in $(seq 1 50); do
    kill -0 "$WHEEL_SERVER" 2>/dev/null || break
    "$PY" -c "import urllib.request as u; u.urlopen('http://127.0.0.1:$port/.complete')" 2>/dev/null && { ok=1; break; }
    sleep 0.1
  done
  [ -n "$ok" ] || cannot "serve $WHEELHOUSE on 127.0.0.1:$port (port taken? set WHEELHOUSE_PORT)"
  say "build: $IMAGE from $BASE_IMAGE, $TORCH_REQUIREMENT, wheels from $WHEELHOUSE (served on 127.0.0.1:$port)"
  "$DOCKER" build -q --network host -f containers/gpu-trainer/Dockerfile -t "$IMAGE" \
    --build-arg BASE_IMAGE="$BASE_IMAGE" --build-arg TORCH_REQUIREMENT="$TORCH_REQUIREMENT" \
    --build-arg TORCH_INDEX= --build-arg TRAINER_EXTRAS= --build-arg WHEELHOUSE_URL="http://127.0.0.1:$port/" . >/dev/null \
    || cannot "build $IMAGE (docker build failed; rerun without -q to see why)"
  say "build: $IMAGE $("$DOCKER" image inspect -f '{{.Id}} {{.Size}}' "$IMAGE" | awk '{printf "%s, %d MB", substr($1,8,12), $2/1e6}')"
}

case "${1:-all}" in
  engine) engine ;;
  base) base ;;
  wheelhouse) wheelhouse ;;
  build) build ;;
  all) engine; base; wheelhouse; build ;;
  *) echo "usage: $0 engine|base|wheelhouse|build|all" >&2; exit 2 ;;
esac
