#!/usr/bin/env bash
# The one prepared GPU check (about 10 minutes on one H200): the CUDA tests, dense-vs-slim
# inference speed of VGG-19 (CIFAR input) and ResNet-50 (ImageNet input) at batch 1 and 256
# (eager, channels_last, bf16, torch.compile), the training-speed benchmark, and as much of
# the accuracy study as the remaining time allows. Every part is guarded: one failing or
# running out of time does not stop the others. Results are JSON files in one folder (at
# most 8 files, so a device tool can bring them all back) plus a log. docs/benchmarks.md
# ("The GPU check") says what each file holds and which tables cite it.
#
#   bash benchmarks/gpu_check.sh [--out DIR] [--data-dir DIR] [--wheels DIR] [--budget S]
#   bash benchmarks/gpu_check.sh --cpu-smoke     # every part tiny, on the CPU: checks the paths
#
# --out: default $OUT if set, else gpu_results/. --data-dir: Fashion-MNIST IDX files for the
# study (default $CHASE_DATA_DIR, /usr/share/datasets/fashion-mnist or .data/fashion-mnist).
# --wheels: a folder of wheels (torch-pruning) installed with pip --no-index if `import
# torch_pruning` fails (default .whl). --budget: seconds for the whole check (default 570).
set -uo pipefail
cd "$(dirname "$0")/.."
root=$PWD

out="${OUT:-gpu_results}"
data_dir="${CHASE_DATA_DIR:-}"
wheels=".whl"
budget=570
smoke=0
while [ $# -gt 0 ]; do
  case "$1" in
    --out) out="$2"; shift 2 ;;
    --data-dir) data_dir="$2"; shift 2 ;;
    --wheels) wheels="$2"; shift 2 ;;
    --budget) budget="$2"; shift 2 ;;
    --cpu-smoke) smoke=1; shift ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
    *) echo "gpu_check.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
mkdir -p "$out"
out=$(cd "$out" && pwd)
log="$out/gpu_check.log"
: > "$log"
exec > >(tee -a "$log") 2>&1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
began=$(date +%s)
export PYTHONUNBUFFERED=1

# -- Python: this checkout's .venv if it holds torch, else python3; chase from src/ ---------
py=python3
if [ -x .venv/bin/python ] && .venv/bin/python -c 'import torch' 2>/dev/null; then
  py="$root/.venv/bin/python"
fi
export PYTHONPATH="$root/src:$root/benchmarks${PYTHONPATH:+:$PYTHONPATH}"
if ! "$py" -c 'import torch_pruning' 2>/dev/null && ls "$wheels"/*.whl >/dev/null 2>&1; then
  echo "installing $(ls "$wheels"/*.whl | xargs -n1 basename | tr '\n' ' ')from $wheels"
  "$py" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$work/site" \
    "$wheels"/*.whl && export PYTHONPATH="$PYTHONPATH:$work/site"
fi
if ! "$py" -c 'import torch, torch_pruning, chase' ; then
  echo "gpu_check.sh: $py cannot import torch, torch_pruning and chase; see above" >&2
  exit 2
fi
cuda=$("$py" -c 'import torch; print(torch.cuda.is_available())')
device=cuda
if [ "$smoke" = 1 ]; then
  device=cpu
elif [ "$cuda" != True ]; then
  echo "gpu_check.sh: torch.cuda.is_available() is $cuda here; use --cpu-smoke on a CPU" >&2
  exit 2
fi
echo "gpu_check.sh: python $py, device $device, results in $out, budget ${budget}s"

# -- one guarded part: a time limit, its exit code and duration in parts.jsonl --------------
# Its own messages go to stderr (the log), so a part's stdout can be redirected to a file.
part() {  # part NAME SECONDS COMMAND...
  local name=$1 limit=$2 start rc
  shift 2
  local left=$(( budget - ($(date +%s) - began) ))
  if [ "$left" -lt 20 ]; then
    echo "== $name: skipped, ${left}s of the budget left" >&2
    echo "{\"part\": \"$name\", \"exit\": null, \"seconds\": 0, \"skipped\": true}" >> "$work/parts.jsonl"
    return
  fi
  [ "$limit" -gt "$left" ] && limit=$left
  echo "== $name (at most ${limit}s): $*" >&2
  start=$(date +%s)
  timeout -k 20 "$limit" "$@"
  rc=$?
  echo "== $name: exit $rc after $(( $(date +%s) - start ))s" >&2
  echo "{\"part\": \"$name\", \"exit\": $rc, \"seconds\": $(( $(date +%s) - start )), \"limit\": $limit}" >> "$work/parts.jsonl"
}

# -- 1. the machine --------------------------------------------------------------------------
"$py" - "$device" > "$out/env.json" <<'EOF'
import json, sys
import torch
from common import environment
env = environment(sys.argv[1])
env["cuda"] = torch.version.cuda
env["cudnn"] = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
print(json.dumps(env, indent=1))
EOF
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv

# -- 2. the CUDA tests (tests/gpu, marked gpu; skipped without CUDA) -------------------------
part gpu-tests 150 "$py" -m pytest tests/gpu -m gpu -q -p no:cacheprovider --junitxml "$work/gpu_tests.xml"
"$py" - "$work/gpu_tests.xml" > "$out/gpu_tests.json" <<'EOF'
import json, sys
import xml.etree.ElementTree as ET
try:
    root = ET.parse(sys.argv[1]).getroot()
except (OSError, ET.ParseError) as exc:
    print(json.dumps({"error": f"no test results: {exc}"}))
    raise SystemExit
cases = []
for case in root.iter("testcase"):
    outcome = next((c.tag for c in case if c.tag in ("failure", "error", "skipped")), "passed")
    cases.append({"test": f"{case.get('classname')}::{case.get('name')}", "outcome": outcome,
                  "seconds": float(case.get("time", 0))})
print(json.dumps({"cases": cases}, indent=1))
EOF

# -- 3. dense vs slim inference speed (benchmarks/slim_speed.py) -----------------------------
# VGG-19 at the paper's S_c 0.5, ResNet-50 at its S_c 0.4 (also with prune_skip, the paper's
# 1.7x anchor); batch 1 (latency) and 256 (throughput). Eager variants first, round_to 1 and
# 8; the compiled variant (round_to 8 only: each shape of each model compiles once) after the
# training-speed part, so that a long compilation cannot crowd it out.
vgg=vgg19 resnet=resnet50
if [ "$smoke" = 1 ]; then  # one small model, batch 1 and 2, two timed calls
  vgg=cifar_resnet20 resnet=cifar_resnet20
  speed=(--batch-sizes 1,2 --warmup 1 --repeats 2)
  round=(--round-to 1) round8=(--round-to 1)
else
  speed=(--batch-sizes 1,256 --warmup 10 --repeats 30 --threads 1)
  round=(--round-to 1,8) round8=(--round-to 8)
fi
slim_speed() {  # slim_speed VARIANT LIMIT FLAGS...: VGG-19, ResNet-50 (and prune-skip for bf16)
  local name=$1 limit=$2
  shift 2
  part "slim-speed-vgg19-$name" "$limit" "$py" benchmarks/slim_speed.py --models "$vgg" \
    --sparsities 0.5 --device "$device" "${speed[@]}" "$@" --json > "$work/speed-vgg19-$name.json"
  part "slim-speed-resnet50-$name" "$limit" "$py" benchmarks/slim_speed.py --models "$resnet" \
    --sparsities 0.4 --device "$device" "${speed[@]}" "$@" --json \
    > "$work/speed-resnet50-$name.json"
  if [ "$name" = bf16 ]; then
    part "slim-speed-resnet50-skip-$name" "$limit" "$py" benchmarks/slim_speed.py \
      --models "$resnet" --sparsities 0.4 --prune-skip --device "$device" "${speed[@]}" "$@" \
      --json > "$work/speed-resnet50-skip-$name.json"
  fi
}
slim_speed eager 45 "${round[@]}"
slim_speed channels_last 45 "${round[@]}" --channels-last
slim_speed bf16 45 "${round[@]}" --channels-last --amp bf16

# -- 4. training speed (benchmarks/train_speed.py; shrink on/off is its business) ------------
if [ -f benchmarks/train_speed.py ]; then
  train=(--device "$device" --batch-size 256 --channels-last --amp bf16)
  [ "$smoke" = 1 ] && train=(--device cpu --cases resnet50 --steps 6 --batch-size 4)
  part train-speed 180 "$py" benchmarks/train_speed.py "${train[@]}" --json "$out/train_speed.json"
else
  echo "== train-speed: benchmarks/train_speed.py is missing, skipped"
  echo '{"error": "benchmarks/train_speed.py is missing"}' > "$out/train_speed.json"
fi

compiled=("${round8[@]}" --channels-last --amp bf16 --compile)
[ "$smoke" = 1 ] && compiled+=(--batch-sizes 1)
slim_speed compile 150 "${compiled[@]}"
"$py" - "$work" > "$out/slim_speed.json" <<'EOF'
import json, sys
from pathlib import Path
merged = {}
for path in sorted(Path(sys.argv[1]).glob("speed-*.json")):
    try:
        merged[path.stem.removeprefix("speed-")] = json.loads(path.read_text())
    except json.JSONDecodeError:
        merged[path.stem.removeprefix("speed-")] = {"error": "no JSON (failed or timed out)"}
print(json.dumps(merged, indent=1))
EOF

# -- 5. the accuracy study, resumable, for what is left of the budget ------------------------
for d in "$data_dir" /usr/share/datasets/fashion-mnist "$root/.data/fashion-mnist"; do
  if [ -n "$d" ] && { [ -e "$d/train-images-idx3-ubyte.gz" ] || [ -e "$d/train-images-idx3-ubyte" ]; }; then
    data_dir=$d
    break
  fi
  data_dir=""
done
study=(--study-dir "$work/study" --device "$device")
if [ "$smoke" = 1 ]; then
  study+=(--size smoke --models small_cnn --methods dense,rigl,chase-sc0.5 --densities 0.1 --seeds 0)
  [ -z "$data_dir" ] && study+=(--dataset synthetic)
fi
if [ -n "$data_dir" ] || [ "$smoke" = 1 ]; then
  [ -n "$data_dir" ] && study+=(--data-dir "$data_dir")
  left=$(( budget - ($(date +%s) - began) - 40 ))
  part accuracy-study "$left" "$py" benchmarks/accuracy_study.py "${study[@]}"
  if compgen -G "$work/study/*/*/report.json" >/dev/null; then
    part study-report 30 "$py" benchmarks/accuracy_study.py --study-dir "$work/study" --report \
      --results "$work/report/results.md"
    # run folders without checkpoints and slim models (report.json, metrics, channels, config)
    tar -czf "$out/study.tar.gz" --exclude='*.pt' -C "$work" study report 2>/dev/null \
      || tar -czf "$out/study.tar.gz" --exclude='*.pt' -C "$work" study
  fi
else
  echo "== accuracy-study: no Fashion-MNIST files (give --data-dir), skipped"
fi

"$py" -c 'import json, sys; print(json.dumps([json.loads(l) for l in open(sys.argv[1])], indent=1))' \
  "$work/parts.jsonl" > "$out/parts.json"
echo "gpu_check.sh: done in $(( $(date +%s) - began ))s; results in $out:"
ls "$out"
