#!/usr/bin/env bash
# Install Dynamo's live frontend and mocker workers into a Python environment, and generate the
# tiny local model card they serve. Idempotent; used by scripts/setup.sh, CI and the live demo.
#
#   PYTHON=.venv/bin/python devcluster/dynamo/install.sh
#
# ai-dynamo declares a dependency that PyPI does not serve, so it goes in with --no-deps and the
# modules its frontend and mocker really import are listed here instead. ai-dynamo-runtime (the
# Rust core, same version) is already a dependency of the project itself.
set -euo pipefail
PY=${PYTHON:-python3}
DYNAMO_VERSION=1.6.1
# What `python -m dynamo.frontend` and `python -m dynamo.mocker` import beyond the project's own
# dependencies (msgspec), and what generates the model card's tokenizer (tokenizers).
EXTRA=(msgspec==0.22.0 tokenizers==0.23.3)

have() { "$PY" - "$@" <<'PY'
import sys
from importlib.metadata import version, PackageNotFoundError
for spec in sys.argv[1:]:
    name, want = spec.split("==")
    try:
        if version(name) != want:
            sys.exit(1)
    except PackageNotFoundError:
        sys.exit(1)
PY
}

if ! have "ai-dynamo==$DYNAMO_VERSION" "ai-dynamo-runtime==$DYNAMO_VERSION" "${EXTRA[@]}"; then
  echo "installing ai-dynamo $DYNAMO_VERSION (--no-deps) and ${EXTRA[*]}" >&2
  "$PY" -m pip install --quiet --disable-pip-version-check "ai-dynamo-runtime==$DYNAMO_VERSION" "${EXTRA[@]}"
  "$PY" -m pip install --quiet --disable-pip-version-check --no-deps "ai-dynamo==$DYNAMO_VERSION"
fi
# Fail here, not in a test, if an import is still missing.
"$PY" -c 'import dynamo.frontend.main, dynamo.mocker.main'
"$PY" -m devcluster.dynamo.model >&2
