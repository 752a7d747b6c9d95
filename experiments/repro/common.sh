# Shared helpers of the reproducibility scripts (sourced, not run).
# Locates the gradzip binary: $GRADZIP if set, else <repo>/build/experiments/gradzip,
# else <repo>/build-*/experiments/gradzip; exits with a message saying how to build.
#
# Every script takes the same options (parse_repro_args):
#   --budget quick|standard|full  quick: a few minutes, a smoke test of the whole pipeline
#                                 (numbers far from converged); standard (default): what
#                                 fits this project's 2-core CPU machine (each script says
#                                 its sizes and time); full: paper scale, for a GPU host
#                                 (--device cuda is then the default)
#   --device cpu|cuda|cuda:N      where training runs (default: cuda for full, else cpu)
#   --parallel N                  runs at once (default: the budget's)
#   --dry-run                     write the sweep file and print the runs' commands only
#   -h, --help                    print the script's header
#   OUT_DIR                       where results go (default: out/<script name>)
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

# Comma-separated list of the finished run directories under $1 (sorted): summary.json
# says "status": "complete" (a run still going or one that failed is left out).
run_list() {
  local dirs=()
  for d in "$1"/*/; do grep -qs '"status": *"complete"' "$d/summary.json" && dirs+=("${d%/}"); done
  if [[ ${#dirs[@]} -eq 0 ]]; then echo "no finished runs under $1" >&2; exit 1; fi
  local IFS=,
  echo "${dirs[*]}"
}

# The calling script's header comment (its usage).
repro_usage() { sed -n '2,/^source /{/^source /d;s/^# \{0,1\}//;p}' "$0"; }

repro_usage_error() {
  echo "$(basename "$0"): $1 (see --help)" >&2
  exit 2
}

# Parses the shared options (header of this file) into budget, device (empty when not
# given), parallel (empty when not given), dry_run (0/1) and out (absolute, created;
# default out/<script name without .sh>). A script with options of its own defines
# script_option: called with the remaining arguments, it sets `consumed` to how many it
# used and returns 0, or returns 1 for an option it does not know.
parse_repro_args() {
  budget=standard; device=""; parallel=""; dry_run=0; out=""
  while [[ $# -gt 0 ]]; do
    case "$1" in
      --budget|--device|--parallel)
        [[ $# -ge 2 ]] || repro_usage_error "$1 needs a value"
        case "$1" in
          --budget) budget=$2 ;;
          --device) device=$2 ;;
          --parallel) parallel=$2 ;;
        esac
        shift 2 ;;
      --dry-run) dry_run=1; shift ;;
      -h|--help) repro_usage; exit 0 ;;
      -*)
        consumed=0
        if declare -F script_option > /dev/null && script_option "$@"; then shift "$consumed"; else
          repro_usage_error "unknown option $1"
        fi ;;
      *) [[ -z "$out" ]] || repro_usage_error "more than one OUT_DIR ('$out', '$1')"; out=$1; shift ;;
    esac
  done
  case "$budget" in
    quick|standard|full) ;;
    *) repro_usage_error "--budget must be quick, standard or full, not '$budget'" ;;
  esac
  if [[ -n "$parallel" && ! "$parallel" =~ ^[1-9][0-9]?$ ]]; then
    repro_usage_error "--parallel must be an integer 1..99, not '$parallel'"
  fi
  local name
  name=$(basename "$0" .sh)
  out=$(mkdir -p "${out:-$repo/out/$name}" && cd "${out:-$repo/out/$name}" && pwd)
}

# --device as given, else cuda for the full budget and cpu otherwise.
training_device() {
  if [[ -n "$device" ]]; then echo "$device"; elif [[ $budget == full ]]; then echo cuda; else echo cpu; fi
}

# Runs the sweep file $1 with gradzip $2 (--dry-run: prints the commands and exits 0).
run_sweep_file() { run_sweep_files "$2" "$1"; }

# Sweeps of a script that share one runs folder ($out/runs); each call appends its file
# to `sweeps`. write_sweep STUDY SUFFIX BASE AXES FIXED writes $out/STUDY$SUFFIX.sweep
# (base config BASE, [axes] lines AXES, [fixed] lines FIXED after the device), with the
# caller's $parallel / $default_parallel and $timeout. Every sweep but the main one
# (SUFFIX "") names every axis (names = all), so their runs stay apart in the folder.
sweeps=()
write_sweep() {
  local file="$out/$1$2.sweep"
  cat > "$file" <<SWEEP
# written by experiments/repro/$1.sh --budget $budget
[sweep]
base = $3
out = $out/runs
parallel = ${parallel:-$default_parallel}
timeout = $timeout
$([[ -n "$2" ]] && echo "names = all")
[axes]
$4
[fixed]
device = $(training_device)
$5
SWEEP
  sweeps+=("$file")
}

# Runs the sweep files $2... one after the other with gradzip $1 (--dry-run: prints
# every file's commands and exits 0).
run_sweep_files() {
  local gz=$1 file
  shift
  for file in "$@"; do
    if [[ $dry_run -eq 1 ]]; then "$gz" sweep --file "$file" --dry-run; else "$gz" sweep --file "$file"; fi
  done
  if [[ $dry_run -eq 1 ]]; then exit 0; fi
}

# Studies made of several sweeps ("groups": the link, straggler and scaling studies).
# run_sweep_group NAME AXES FIXED writes $out/NAME.sweep (base config $study_base, runs
# under $out/runs/NAME, ${parallel:-1} at a time, $timeout seconds each; AXES and FIXED
# are `key = value` lines) and runs it with $gz; --dry-run prints its commands only. A
# group with failed runs does not stop the study: the report shows what finished.
run_sweep_group() {
  local file="$out/$1.sweep"
  cat > "$file" <<SWEEP
# written by $(basename "$0") --budget $budget
[sweep]
base = $study_base
out = $out/runs/$1
parallel = ${parallel:-1}
timeout = $timeout
[axes]
$2
[fixed]
device = $(training_device)
$3
SWEEP
  if [[ $dry_run -eq 1 ]]; then
    "$gz" sweep --file "$file" --dry-run
  else
    "$gz" sweep --file "$file" || echo "$(basename "$0"): group $1 has failed runs (see $out/runs/$1)" >&2
  fi
}

# The sizes of every multi-group study at the full budget: the CNN at width 32 on all
# 60k training and 10k test images, 3 epochs (for a GPU host).
study_full_sizes="width = 32
train-subset = 0
test-subset = 0
epochs = 3"

# After a study's groups: one `gradzip report` per group of $out/runs (run names repeat
# across groups) into $out/report/<group>/ with links $2 (comma-separated) and target
# accuracy $3 (0: automatic); $out/command.txt (the command line, $4) and $out/host.json
# (a run's host.json, the load average, the study's seconds since $start); then
# study_table.py $1 writes $out/report.md, report.csv and the figures. A --dry-run exits.
study_finish() {
  [[ $dry_run -eq 1 ]] && exit 0
  local group first
  for group in "$out"/runs/*/; do
    group=$(basename "$group")
    "$gz" report --runs "$(run_list "$out/runs/$group")" --out "$out/report/$group" --links "$2" --target "$3" \
      --plots=false > /dev/null || echo "$(basename "$0"): report of group $group failed" >&2
  done
  echo "$4" > "$out/command.txt"
  first=$(find "$out/runs" -name host.json -print -quit 2>/dev/null || true)
  { echo "{\"study\": \"$(basename "$0" .sh)\", \"budget\": \"$budget\", \"loadavg_at_end\": \"$(cut -d' ' -f1-3 /proc/loadavg)\","
    echo " \"nproc\": $(nproc), \"finished\": \"$(date -u +%FT%TZ)\", \"seconds\": $(( $(date +%s) - start )),"
    echo " \"run_host\": $(if [[ -n "$first" ]]; then cat "$first"; else echo null; fi)}"; } > "$out/host.json"
  "$(find_python)" "$repro_dir/study_table.py" "$1" "$out"
  echo "$(basename "$0" .sh) ($budget budget): $(( $(date +%s) - start )) s; $out/report.md"
}
