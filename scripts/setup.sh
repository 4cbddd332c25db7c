#!/usr/bin/env bash
# Installs what a fresh Debian machine lacks to build, test and run aniprint.
# Idempotent: skips apt when every package is already installed.
set -euo pipefail
PKGS=(libavformat-dev libavcodec-dev libavutil-dev libswresample-dev libswscale-dev
      libavfilter-dev libavdevice-dev clang libclang-dev pkg-config ffmpeg tmux)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
