#!/usr/bin/env bash
# Install the Debian packages the toolchain needs; a no-op when all are present.
set -euo pipefail
packages=(
  git make gcc bc flex bison libelf-dev libssl-dev cpio rsync xz-utils dwarves python3-venv
  ccache sparse coccinelle
  gcc-aarch64-linux-gnu gcc-powerpc64le-linux-gnu gcc-s390x-linux-gnu
  qemu-system-x86 qemu-system-arm qemu-system-ppc qemu-system-misc
  busybox-static kexec-tools
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
echo "install-deps: installing ${missing[*]}"
if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps: need root to apt-get install: ${missing[*]}" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
