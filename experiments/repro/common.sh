# Shared helpers of the reproducibility scripts (sourced, not run).
# Locates the gradzip binary: $GRADZIP if set, else <repo>/build/experiments/gradzip,
# else <repo>/build-*/experiments/gradzip; exits with a message saying how to build.
set -euo pipefail
repro_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$repro_dir/../.." && pwd)

find_gradzip() {
  if [[ -n "${GRADZIP:-}" ]]; then echo "$GRADZIP"; return; fi
  for candidate in "$repo/build/experiments/gradzip" "$repo"/build-*/experiments/gradzip; do
    if [[ -x "$candidate" ]]; then echo "$candidate"; return; fi
  done
  echo "gradzip binary not found; build it first:" >&2
  echo "  cmake -S $repo -B $repo/build -G Ninja && ninja -C $repo/build gradzip" >&2
  echo "or point GRADZIP at it." >&2
  exit 2
}

find_python() {
  for p in /usr/bin/python3 python3; do
    if "$p" -c 'import matplotlib' 2>/dev/null; then echo "$p"; return; fi
  done
  echo "no python3 with matplotlib (Debian: apt-get install python3-matplotlib)" >&2
  exit 2
}

# Comma-separated list of the run directories under $1 (sorted).
run_list() {
  local dirs=()
  for d in "$1"/*/; do [[ -f "$d/summary.json" ]] && dirs+=("${d%/}"); done
  if [[ ${#dirs[@]} -eq 0 ]]; then echo "no finished runs under $1" >&2; exit 1; fi
  local IFS=,
  echo "${dirs[*]}"
}
