#!/usr/bin/env bash
# Install what this project needs on a fresh Debian machine, idempotently:
#   scripts/setup.sh            Python venv + package (enough for the embedded demo)
#   scripts/setup.sh --all      also Prometheus, Dynamo's live components and the control plane
# Every step says what it does; a step that has nothing to do is quick.
set -euo pipefail
cd "$(dirname "$0")/.."

all=0
[[ "${1:-}" == "--all" ]] && all=1
PY=${PYTHON:-python3}
step() { printf '==> %s\n' "$*" >&2; }

need_py() { "$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; }
if ! need_py; then
  echo "error: Python >= 3.11 is required (found: $("$PY" --version 2>&1))" >&2
  exit 1
fi

if [[ ! -x .venv/bin/python ]]; then
  step "creating .venv"
  "$PY" -m venv .venv
fi
stamp=.venv/.installed-$(sha256sum pyproject.toml | cut -c1-12)
if [[ ! -f $stamp ]]; then
  step "installing the package and its dependencies into .venv (about 2 minutes the first time)"
  .venv/bin/python -m pip install --quiet --upgrade pip
  .venv/bin/python -m pip install --quiet -e '.[test]'
  rm -f .venv/.installed-* && touch "$stamp"
fi

if (( all )); then
  # Debian packages the suite runs: Prometheus, and tmux for the demo's terminal test
  debs=()
  for tool in prometheus tmux; do command -v "$tool" >/dev/null 2>&1 || debs+=("$tool"); done
  if (( ${#debs[@]} )); then
    step "installing Debian packages: ${debs[*]} (about a minute)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${debs[@]}" >/dev/null
  fi
  step "installing Dynamo's frontend and mocker workers"
  PYTHON=.venv/bin/python devcluster/dynamo/install.sh
  # the modules Dynamo's own planner code imports, so the benchmarks and tests run it as a baseline
  own=.venv/.dynamo-planner-$(sha256sum benchmarks/dynamo_planner/requirements.txt | cut -c1-12)
  if [[ ! -f $own ]]; then
    step "installing the optional environment of Dynamo's own planner (benchmarks/dynamo_planner, under a minute)"
    .venv/bin/python -m pip install --quiet -r benchmarks/dynamo_planner/requirements.txt
    .venv/bin/python -c 'from benchmarks.dynamo_planner import baseline as b; assert b.available(), b.unavailable_reason()'
    rm -f .venv/.dynamo-planner-* && touch "$own"
  fi
  if ! command -v go >/dev/null 2>&1; then
    echo "error: the Go toolchain (go >= 1.26) is needed to build the local control plane" >&2
    exit 1
  fi
  step "building the local Kubernetes control plane (about 5 minutes the first time, cached after)"
  .venv/bin/dynamo-scaling devcluster build >/dev/null
  step "building helm from its Go module (about 2 minutes the first time, cached after)" && .venv/bin/python -m devcluster.helm >/dev/null
  step "building prometheus-adapter from its Go module (about 3 minutes the first time, cached after)"
  .venv/bin/python -m devcluster.prometheus_adapter >/dev/null
  if [[ -z "${SKIP_KEDA:-}" ]]; then  # tests marked `keda`; SKIP_KEDA=1 leaves them without KEDA
    step "building KEDA from its Go module (about 20 minutes the first time on 2 cores, cached after)"
    .venv/bin/python -m devcluster.keda >/dev/null
  fi
fi
