#!/usr/bin/env bash
# Set up a fresh Debian 12 machine for exitprobe and build it.
#
# Idempotent: packages already installed are not fetched again (apt-get
# update runs only when something is missing), and an existing build/
# directory is reconfigured rather than recreated.
#
#   sudo scripts/setup.sh        # from any directory
#
# Exit status: 0 built, 3 packages missing and not root (nothing changed),
# anything else: the failing command's status.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"

say() { printf '==> %s\n' "$*"; }

# Debian 12 (bookworm) package names.  libclang-rt-14-dev carries the
# sanitizer and libFuzzer runtimes for clang 14; bubblewrap is the
# baseline that bench/ compares against; libxml2-utils (xmllint) checks
# the JUnit XML the tests write; chromium renders the HTML report in a
# browser test.  python-is-python3 and cowsay: images are not pulled, so
# the host stands in for them; Argo's examples call `python` (python:alpine),
# `node` (node:alpine) and `cowsay` (docker/whalesay).
packages=(
  build-essential
  meson
  ninja-build
  pkg-config
  libyaml-dev
  libseccomp-dev
  libcgroup-dev
  libcmocka-dev
  libjansson-dev
  clang
  libclang-rt-14-dev
  util-linux
  procps
  perl
  python3
  bubblewrap
  libxml2-utils
  chromium
  python3-jsonschema
  python-is-python3
  nodejs
  cowsay
)

missing=()
for pkg in "${packages[@]}"; do
  status="$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)"
  if [[ "$status" != "install ok installed" ]]; then
    missing+=("$pkg")
  fi
done

if ((${#missing[@]} == 0)); then
  say "all ${#packages[@]} required packages are installed"
else
  say "missing packages: ${missing[*]}"
  if [[ "$(id -u)" -ne 0 ]]; then
    echo "setup.sh: installing packages needs root.  Run:" >&2
    echo "  sudo apt-get update && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ${missing[*]}" >&2
    echo "or run this script itself with sudo." >&2
    exit 3
  fi
  export DEBIAN_FRONTEND=noninteractive
  say "apt-get update"
  apt-get update
  say "apt-get install -y --no-install-recommends ${missing[*]}"
  apt-get install -y --no-install-recommends "${missing[@]}"
fi

if [[ -f build/meson-private/coredata.dat ]]; then
  say "meson setup --reconfigure build --buildtype=debugoptimized"
  meson setup --reconfigure build --buildtype=debugoptimized
else
  # build/ is ours (git-ignored); one that meson never finished
  # configuring would make "meson setup" refuse, so start it over.
  if [[ -e build ]]; then
    say "removing build/: it is not a configured meson build directory"
    rm -rf build
  fi
  say "meson setup build --buildtype=debugoptimized"
  meson setup build --buildtype=debugoptimized
fi

say "meson compile -C build"
meson compile -C build

say "built $repo_root/build/exitprobe"
