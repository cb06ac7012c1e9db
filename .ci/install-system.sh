#!/usr/bin/env bash
# System packages the tests need: ffmpeg (video I/O), Mesa's lavapipe from bookworm-backports (a software
# Vulkan driver, so the WebGPU provider runs without a GPU), Blender 3.4 and its Python deps (add-on tests),
# Slurm (the farm tests).
# Idempotent: skips what is already installed.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
need=()
command -v ffmpeg >/dev/null || need+=(ffmpeg)
command -v blender >/dev/null || need+=(blender python3-numpy python3-msgpack python3-websocket)
command -v xz >/dev/null || need+=(xz-utils)
command -v xvfb-run >/dev/null || need+=(xvfb xauth)   # the add-on's UI test (Blender with a display)
# A one-node Slurm for the farm tests (test/farm/slurm-cluster.ts starts it; munge for sites that want it).
{ command -v sbatch && [ -x /usr/sbin/slurmctld ]; } >/dev/null || need+=(slurm-wlm munge)
lvp_ok=0
if [ -f /usr/share/vulkan/icd.d/lvp_icd.json ]; then
  v=$(dpkg-query -W -f='${Version}' mesa-vulkan-drivers 2>/dev/null || echo 0)
  dpkg --compare-versions "$v" ge 25 && lvp_ok=1
fi
if [ ${#need[@]} -eq 0 ] && [ $lvp_ok = 1 ]; then echo "install-system: all present"; exit 0; fi
if [ $lvp_ok = 0 ] && [ ! -f /etc/apt/sources.list.d/backports.sources ]; then
  # backports from the same archive the machine already uses (no host named here)
  mirror=$(bash "$(dirname "$0")/debian-mirror.sh")
  cat > /etc/apt/sources.list.d/backports.sources <<SRC
Types: deb
URIs: $mirror
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
fi
apt-get update -qq
if [ ${#need[@]} -gt 0 ]; then apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null; fi
if [ $lvp_ok = 0 ]; then
  apt-get install -y -qq --no-install-recommends -t bookworm-backports mesa-vulkan-drivers libvulkan1 >/dev/null
fi
echo "install-system: ffmpeg $(ffmpeg -version | head -1 | cut -d' ' -f3), mesa $(dpkg-query -W -f='${Version}' mesa-vulkan-drivers), $(blender --version 2>/dev/null | head -1)"
