#!/usr/bin/env bash
# One command on a machine with a CUDA build of PyTorch (JAX optional), no network needed:
# the GPU tests, then the GPU benchmark rows for the four sizes in float32 and float64.
#   benchmarks/gpu.sh            # under 5 minutes on an H100-class GPU
#   PYTHON=python3 benchmarks/gpu.sh
set -uo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-$([ -x .venv/bin/python ] && echo .venv/bin/python || echo python3)}"
export PYTHONPATH="src${PYTHONPATH:+:$PYTHONPATH}"
echo "== GPU tests (tests/test_gpu.py) =="
"$PYTHON" -m pytest -q -p no:cacheprovider -rs -m gpu tests/test_gpu.py
tests=$?
echo "== benchmarks.gpu =="
"$PYTHON" -m benchmarks.gpu "$@"
bench=$?
exit $(( tests != 0 || bench != 0 ))
