#!/usr/bin/env bash
# The main job on a fresh machine: set up, get Fashion-MNIST if missing, run the demo preset.
# A Chase run on Fashion-MNIST (90% weight sparsity, half of the prunable channels removed)
# that ends with a slim model in runs/fmnist-demo and a report of accuracy, density, channel
# sparsity, FLOPs and the measured CPU speedup of the slim model.
set -euo pipefail
cd "$(dirname "$0")/.."

python3 -m venv .venv
.venv/bin/pip install -q -c constraints.txt -e '.[all]'

data_dir="${CHASE_DATA_DIR:-/usr/share/datasets/fashion-mnist}"
if [ ! -e "$data_dir/train-images-idx3-ubyte.gz" ] && [ ! -e "$data_dir/train-images-idx3-ubyte" ]; then
  if [ -z "${CHASE_DATA_DIR:-}" ] && command -v apt-get >/dev/null 2>&1; then
    echo "Fashion-MNIST not found: installing the Debian package dataset-fashion-mnist"
    as_root=""
    [ "$(id -u)" = 0 ] || as_root="sudo"
    $as_root apt-get install -y dataset-fashion-mnist >/dev/null \
      || { $as_root apt-get update >/dev/null && $as_root apt-get install -y dataset-fashion-mnist >/dev/null; } \
      || true
  fi
  if [ ! -e "$data_dir/train-images-idx3-ubyte.gz" ] && [ ! -e "$data_dir/train-images-idx3-ubyte" ]; then
    echo "Fashion-MNIST is missing from $data_dir." >&2
    echo "Install it with 'sudo apt-get install dataset-fashion-mnist' (Debian/Ubuntu), or download" >&2
    echo "train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz and" >&2
    echo "t10k-labels-idx1-ubyte.gz from https://github.com/zalandoresearch/fashion-mnist into a" >&2
    echo "folder and run: CHASE_DATA_DIR=/that/folder bash scripts/demo.sh" >&2
    exit 1
  fi
fi

echo "chase is installed in .venv: 'source .venv/bin/activate' puts it on PATH (or run .venv/bin/chase)"
exec .venv/bin/chase train --preset fmnist-demo --data-dir "$data_dir" --out runs/fmnist-demo --overwrite "$@"
