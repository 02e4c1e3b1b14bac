#!/usr/bin/env bash
# Installs what Sightline needs on Debian 12 and is missing: the system libraries (OpenBLAS, HDF5,
# libjpeg-turbo and libpng for the image pipeline)
# and, for the tests that check files with the Python readers, h5py, numpy and safetensors. Idempotent.
set -euo pipefail

apt_packages=(libopenblas-dev libhdf5-dev pkg-config libjpeg-dev libpng-dev)
pip_packages=(h5py numpy safetensors)

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

if [ "${SIGHTLINE_SKIP_PIP:-0}" != 1 ]; then
  py_missing=()
  for p in "${pip_packages[@]}"; do
    python3 -c "import $p" 2>/dev/null || py_missing+=("$p")
  done
  if ((${#py_missing[@]})); then
    echo "setup: pip installing ${py_missing[*]}"
    python3 -m pip install -q "${py_missing[@]}" 2>/dev/null \
      || python3 -m pip install -q --break-system-packages "${py_missing[@]}"
  fi
fi
