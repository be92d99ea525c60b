#!/bin/sh
# Installs druse's build and test dependencies from Debian's packages.
# Idempotent: packages already present are skipped, and apt is not touched at all
# when nothing is missing. Needs root (or sudo) only when something must be installed.
set -eu

BUILD_PKGS="build-essential cmake pkg-config zlib1g-dev
libopenmpi-dev openmpi-bin libopenblas-dev libhdf5-openmpi-dev hdf5-tools
libsymspg-dev libcodcif-dev libcexceptions-dev libcyaml-dev libyaml-dev libcmocka-dev"
# Referees: run under /usr/bin/python3 by the tests, never by druse itself.
TEST_PKGS="python3 python3-numpy python3-spglib python3-pymatgen python3-ase python3-h5py python3-torch"

want="$BUILD_PKGS"
[ "${1:-}" = "--build-only" ] || want="$want $TEST_PKGS"

missing=""
for p in $want; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
        missing="$missing $p"
done
if [ -z "$missing" ]; then
    echo "install-deps: all dependencies present"
    exit 0
fi
echo "install-deps: installing:$missing"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
# shellcheck disable=SC2086
$SUDO apt-get install -y -q --no-install-recommends $missing
