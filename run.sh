#!/usr/bin/env bash
# stillguard developer entry point. Creates .venv on first use, then:
#   ./run.sh demo [ARGS]   protect the bundled sample photo against the shipped default model
#   ./run.sh test [ARGS]   run the fast offline test suite
#   ./run.sh test-slow     run the slow tests (SIGKILL resume, benchmark harnesses); CI runs both
#   ./run.sh sg ARGS       run any `stillguard` command inside .venv
set -euo pipefail
cd "$(dirname "$0")"
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ] || ! .venv/bin/python -c "import stillguard, pytest, cv2, dlib, gradio, playwright, ray, pillow_heif, av" 2>/dev/null; then
  echo "setting up .venv (first run only) ..." >&2
  [ -x .venv/bin/python ] || "$PY" -m venv .venv
  .venv/bin/python -m pip install -q --disable-pip-version-check "torch==2.13.0"
  .venv/bin/python -m pip install -q --disable-pip-version-check -e ".[dev]"
fi
cmd=${1:-demo}; shift || true
case "$cmd" in
  demo) exec .venv/bin/stillguard demo "$@" ;;
  test) exec .venv/bin/python -m pytest -m "not slow and not gpu and not weights" -q "$@" ;;
  test-slow) exec .venv/bin/python -m pytest -m "slow and not gpu and not weights" -q "$@" ;;
  sg)   exec .venv/bin/stillguard "$@" ;;
  *) echo "usage: ./run.sh [demo|test|test-slow|sg] [ARGS...]" >&2; exit 2 ;;
esac
