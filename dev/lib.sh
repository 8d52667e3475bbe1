# shellcheck shell=bash
# Shared by the dev/ scripts: where things live, and small helpers.
# Peers and tools are cached outside the clone (a fresh clone reuses them; `rm -rf` the
# cache to start over), keyed by version so an update installs the new one beside the old.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${BARNABEE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/barnabee}"
VENV="$ROOT/.venv"
export ROOT CACHE VENV
mkdir -p "$CACHE"

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

# apt_need PKG...: install the Debian packages not yet installed (one apt-get update, once).
apt_need() {
  local missing=()
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  local sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  say "installing Debian packages: ${missing[*]}"
  if [ ! -f "$CACHE/.apt-updated" ] || [ -n "$(find "$CACHE/.apt-updated" -mmin +1440 2>/dev/null)" ]; then
    $sudo apt-get update -qq && touch "$CACHE/.apt-updated"
  fi
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# pip_need REQUIREMENTS_FILE: install into the project venv when the file changed.
pip_need() {
  local req="$1" stamp
  [ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
  stamp="$VENV/.stamp-$(basename "$req")-$(sha256sum "$req" | cut -c1-16)"
  [ -f "$stamp" ] && return 0
  say "installing Python packages from ${req#"$ROOT"/}"
  "$VENV/bin/pip" install -q --disable-pip-version-check -r "$req"
  touch "$stamp"
}

# The Nix 2.26 chroot for the module-logic tests (dev/setup.d/41-nix-eval.sh builds it,
# checks/nix/nix-chroot runs commands in it). Bump the recipe to rebuild it.
NIX_CHROOT_RECIPE="trixie nix-bin ca-certificates v1"
nix_chroot_dir() { echo "$CACHE/tools/nix-trixie-$(printf '%s' "$NIX_CHROOT_RECIPE" | sha256sum | cut -c1-12)"; }
