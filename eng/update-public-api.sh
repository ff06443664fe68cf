#!/usr/bin/env bash
# Adds every public symbol the analyzer reports as undeclared (RS0016) to the project's
# PublicAPI.Unshipped.txt, and drops the ones it reports as gone (RS0017).
# Run it after a deliberate change of a public surface, then review the diff.
set -euo pipefail
project_dir=${1:?usage: eng/update-public-api.sh src/OpenPurse.Protocol}
cd "$project_dir"
file=PublicAPI.Unshipped.txt
log=$(dotnet build --no-incremental 2>&1 || true)
added=$(grep -oP "RS0016: Symbol '\K.*(?=' is not part of the declared public API)" <<<"$log" | sort -u || true)
removed=$(grep -oP "RS0017: Symbol '\K.*(?=' is part of the declared API, but)" <<<"$log" | sort -u || true)
{
  echo '#nullable enable'
  { grep -v '^#nullable' "$file" || true; [ -n "$added" ] && echo "$added"; } \
    | grep -vxF -f <(printf '%s\n' "${removed:-}" | grep . || echo '\0') | grep . | sort -u
} > "$file.new"
mv "$file.new" "$file"
echo "$(wc -l < "$file") lines in $project_dir/$file"
