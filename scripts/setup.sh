#!/usr/bin/env bash
# Set up medfuse on a fresh machine.
#   bash scripts/setup.sh          # the package and its Python dependencies
#   bash scripts/setup.sh --test   # + test tools: dicom3tools (dciodvfy), dcmtk, Orthanc, pytest,
#                                  # ruff and mypy
#
# torch: if no torch is importable, this installs torch==2.13.0 (a CPU wheel on the medfuse
# development machines). GPU users: install the CUDA build of torch you want FIRST
# (see https://pytorch.org/get-started/locally/), and this script keeps it.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
want_test=0
[ "${1:-}" = "--test" ] && want_test=1

if [ "$want_test" = 1 ]; then
  need=()
  command -v dciodvfy >/dev/null 2>&1 || need+=(dicom3tools)
  command -v dcmdump >/dev/null 2>&1 || need+=(dcmtk)
  command -v Orthanc >/dev/null 2>&1 || need+=(orthanc)
  [ -e /usr/share/orthanc/plugins/libOrthancDicomWeb.so ] || need+=(orthanc-dicomweb)
  # the PACS tests run Orthanc in a private network namespace: unshare/nsenter and ip
  command -v nsenter >/dev/null 2>&1 || need+=(util-linux)
  command -v ip >/dev/null 2>&1 || need+=(iproute2)
  if [ ${#need[@]} -gt 0 ]; then
    SUDO=""
    [ "$(id -u)" = 0 ] || SUDO="sudo"
    echo "setup: installing Debian packages: ${need[*]}"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
    # Orthanc's Debian service is not wanted: tests start their own in a network namespace.
    $SUDO service orthanc stop >/dev/null 2>&1 || true
  fi
fi

if ! $PY -c "import torch" >/dev/null 2>&1; then
  echo "setup: installing torch==2.13.0 (GPU users: install your CUDA torch first)"
  $PY -m pip install -q torch==2.13.0
fi

if [ "$want_test" = 1 ]; then
  $PY -m pip install -q -e ".[all]"
else
  $PY -m pip install -q -e .
fi
echo "setup: medfuse $($PY -c 'import medfuse; print(medfuse.__version__)') ready"
