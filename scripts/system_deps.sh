#!/usr/bin/env bash
# Installs the Debian packages spiral_tf needs, only when they are missing.
#   libmypaint-dev, mypaint-brushes: the painter (headers + pkg-config for the C extension, brushes).
#   libegl1, libegl-mesa0, libgl1-mesa-dri: headless MuJoCo rendering through EGL (Mesa, CPU).
#   python3-venv, build tools, pkg-config: the virtualenv and the C extension.
set -euo pipefail
packages=(libmypaint-dev mypaint-brushes libegl1 libegl-mesa0 libgl1-mesa-dri pkg-config gcc)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "spiral_tf: installing Debian packages: ${missing[*]}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "spiral_tf: need root or sudo to install: ${missing[*]}" >&2; exit 1; }
  SUDO=sudo
fi
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
