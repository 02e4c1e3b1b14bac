#!/usr/bin/env bash
# Installs what Sightline needs on Debian 12 and is missing: the system libraries (OpenBLAS, HDF5,
# libjpeg-turbo and libpng for the image pipeline) and, for the tests that check our files with the
# Python readers, h5py, numpy and safetensors. Idempotent.
#
#   scripts/setup.sh            the libraries and the Python file readers
#   scripts/setup.sh --interop  also CPU torch, transformers, peft, tensorboard and pytest (pinned), which the
#                               HF/PEFT/TensorBoard interop tests need; scripts/test.sh asks for it.
#
# The Python packages go into the interpreter the tests use: SIGHTLINE_PYTHON, else python3.
set -euo pipefail

interop=0
for arg in "$@"; do
  case "$arg" in
    --interop) interop=1 ;;
    *) echo "setup: unknown option $arg (expected --interop)" >&2; exit 2 ;;
  esac
done

# openmpi-bin + libopenmpi-dev: only the data-parallel tests need them (a single process never loads MPI).
apt_packages=(libopenblas-dev libhdf5-dev pkg-config libjpeg-dev libpng-dev openmpi-bin libopenmpi-dev)
pip_packages=(h5py numpy safetensors)
# The interop stack, pinned (the versions the committed fixtures and checks were made with are in
# Tests/Fixtures/VERSIONS.md). torch comes from PyTorch's CPU wheel index: no CUDA download.
torch_pin="torch==2.13.0"
# pillow: transformers' CLIP image processor (the exported Llava processor) resizes with it.
interop_pins=(transformers==5.25.0 peft==0.21.2 tensorboard==2.21.0 pytest==9.0.3 pillow==13.0.0)
python="${SIGHTLINE_PYTHON:-python3}"

missing=()
for p in "${apt_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

pip_install() {
  "$python" -m pip install -q "$@" 2>/dev/null || "$python" -m pip install -q --break-system-packages "$@"
}

if [ "${SIGHTLINE_SKIP_PIP:-0}" != 1 ]; then
  py_missing=()
  for p in "${pip_packages[@]}"; do
    "$python" -c "import $p" 2>/dev/null || py_missing+=("$p")
  done
  if ((${#py_missing[@]})); then
    echo "setup: pip installing ${py_missing[*]}"
    pip_install "${py_missing[@]}"
  fi
  if ((interop)); then
    if ! "$python" -c "import torch" 2>/dev/null; then
      echo "setup: pip installing $torch_pin (CPU wheel)"
      pip_install "$torch_pin" --index-url https://download.pytorch.org/whl/cpu \
        --extra-index-url https://pypi.org/simple
    fi
    if ! "$python" -c "import transformers, peft, tensorboard, pytest, PIL" 2>/dev/null; then
      echo "setup: pip installing ${interop_pins[*]}"
      pip_install "${interop_pins[@]}"
    fi
  fi
fi
