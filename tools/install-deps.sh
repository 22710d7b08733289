#!/usr/bin/env bash
# Install the Debian packages the toolchain needs; a no-op when all are present.
# The per-arch ones (compilers, binutils, QEMU) are read from the arch registry.
set -euo pipefail
registry="$(dirname "${BASH_SOURCE[0]}")/kseries/kernel/arches.toml"
packages=(
  git make gcc bc flex bison libelf-dev libssl-dev cpio rsync xz-utils dwarves python3-venv
  ccache sparse coccinelle
  busybox-static kexec-tools makedumpfile
  chromium  # headless: the tests render the html export in a real browser
  nodejs  # npm: gitlab-ci-local (Makefile) runs the generated CI pipeline in the tests
  libc6-dev-arm64-cross
  redis-server distcc  # a shared ccache and distcc (KSERIES_CCACHE_REMOTE, KSERIES_DISTCC_HOSTS)
)
# Runs before the venv exists: the system python3 (Debian 12: 3.11, which has tomllib).
arch_packages="$(python3 -c '
import sys, tomllib
with open(sys.argv[1], "rb") as registry:
    for arch in tomllib.load(registry).values():
        for key in ("gcc_package", "binutils_package", "qemu_package"):
            print(arch[key])
' "$registry")"
declare -A listed=()
for p in "${packages[@]}"; do listed[$p]=1; done
for p in $arch_packages; do
  [ -n "${listed[$p]:-}" ] || { packages+=("$p"); listed[$p]=1; }
done
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
# Debian's own nodejs comes without npm (a package of its own); NodeSource's has it.
command -v npm >/dev/null 2>&1 || missing+=(npm)
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
# Debian starts a system redis on 127.0.0.1:6379 when it installs redis-server (distccd stays
# off: STARTDISTCC="false"). The tests start their own servers on free ports; a cache server
# for other machines is set up on purpose, not as a side effect of this script.
for p in "${missing[@]}"; do
  [ "$p" = redis-server ] || continue
  if [ -d /run/systemd/system ]; then
    systemctl disable --now redis-server >/dev/null 2>&1 || true
  elif command -v service >/dev/null 2>&1; then
    service redis-server stop >/dev/null 2>&1 || true
    update-rc.d redis-server disable >/dev/null 2>&1 || true
  fi
done
