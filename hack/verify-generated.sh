#!/usr/bin/env bash
# Fails, naming the stale files, when `make generate manifests` would change what is in the
# tree. The tree is left as it was, so the failure repeats until someone regenerates.
set -euo pipefail
cd "$(dirname "$0")/.."

generated=(api/v1alpha1/zz_generated.deepcopy.go api/events/v1alpha1/zz_generated.deepcopy.go receiver/eventsapi/schema config/crd/bases config/rbac/role.yaml config/rbac/receiver charts/hookgate/crds charts/hookgate/files)
snapshot="$(mktemp -d)"
trap 'rm -rf "$snapshot"' EXIT
for path in "${generated[@]}"; do
  if [ -e "$path" ]; then mkdir -p "$snapshot/$(dirname "$path")"; cp -R "$path" "$snapshot/$path"; fi
done

make --no-print-directory -s generate manifests >/dev/null

stale=()
while IFS= read -r file; do
  if [ ! -f "$snapshot/$file" ] || ! cmp -s "$file" "$snapshot/$file"; then stale+=("$file"); fi
done < <(find "${generated[@]}" -type f 2>/dev/null | sort)
while IFS= read -r file; do
  [ -e "${file#"$snapshot"/}" ] || stale+=("${file#"$snapshot"/} (would be deleted)")
done < <(find "$snapshot" -type f | sort)

# Put the tree back exactly as it was.
for path in "${generated[@]}"; do rm -rf "$path"; done
cp -R "$snapshot"/. .

if [ "${#stale[@]}" -gt 0 ]; then
  echo "generated files are stale; run 'make generate manifests' and commit the result:" >&2
  printf '  %s\n' "${stale[@]}" >&2
  exit 1
fi
echo "generated files are up to date"
