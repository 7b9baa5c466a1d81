#!/usr/bin/env bash
# Copy the CRDs from crds/ (their one source of truth) into the chart, which cannot read files
# outside its own directory. tests/helm checks that the two never drift apart.
set -euo pipefail
cd "$(dirname "$0")/.."
rm -f helm/dynamo-scaling/files/crds/*.yaml
cp crds/*.yaml helm/dynamo-scaling/files/crds/
echo "synced: $(ls crds/*.yaml | wc -l) CRDs into helm/dynamo-scaling/files/crds/"
