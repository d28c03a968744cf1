#!/usr/bin/env bash
# Regenerate the committed bundle schema with the pinned Databricks CLI; fails on any other version.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=src/refarch/jobs/schema
want=$(tr -d '[:space:]' < "$dir/CLI_VERSION")
command -v databricks >/dev/null || { echo "databricks CLI $want is not on PATH" >&2; exit 2; }
have=$(databricks --version | grep -Eo '[0-9]+\.[0-9]+\.[0-9]+' | head -n1)
if [ "$have" != "$want" ]; then
  echo "databricks CLI is $have; the committed schema comes from $want ($dir/CLI_VERSION)" >&2
  exit 2
fi
databricks bundle schema > "$dir/databricks-bundle.schema.json"
echo "wrote $dir/databricks-bundle.schema.json from CLI $have"
