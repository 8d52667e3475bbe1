# shellcheck shell=bash
# A Nix >= 2.18 for the module-logic tests (checks/eval, run by checks/nix/run): Debian
# trixie's nix-bin (2.26) in a chroot made with mmdebstrap from Debian's packages. Bookworm's
# nix-bin (2.8, 40-nix.sh) parses fine but the module tests want the evaluator the flake's
# users have. Cached in $CACHE/tools/nix-trixie-<recipe hash>/root; run commands in it with
# checks/nix/nix-chroot. Needs root (mmdebstrap's root mode, chroot, bind mounts): without
# root this step says so and checks/nix/run prints a loud SKIPPED line for the module tests.
#
# nixpkgs' `lib` is in no package registry, so setup cannot install it. checks/nix/run finds
# it at $NIXPKGS_LIB, else at $CACHE/tools/nixpkgs-lib/lib (see docs/nixos.md "Module-logic
# tests" for the one-time checkout of nix-community/nixpkgs.lib at the pinned commit).
_nix_eval_chroot() {
  local dir
  dir="$(nix_chroot_dir)"
  [ -x "$dir/root/usr/bin/nix-instantiate" ] && return 0
  if [ "$(id -u)" -ne 0 ]; then
    printf '\033[1;33m!!! dev/setup: the Nix 2.26 chroot for the module-logic tests needs root (mmdebstrap); skipped, checks/nix/run will say SKIPPED !!!\033[0m\n' >&2
    return 0
  fi
  apt_need mmdebstrap
  say "building the Debian trixie chroot with nix-bin (Nix 2.26) into $dir (once, ~1 min)"
  rm -rf "$dir.tmp"
  mkdir -p "$dir.tmp"
  mmdebstrap --quiet --variant=apt --include=nix-bin,ca-certificates \
    trixie "$dir.tmp/root" "${BARNABEE_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
  mkdir -p "$dir.tmp/root/src" "$dir.tmp/root/nixlib/lib"
  rm -rf "$dir"
  mv "$dir.tmp" "$dir"
  # Older recipes' chroots are dead weight (~230 MB each).
  find "$CACHE/tools" -mindepth 1 -maxdepth 1 -name 'nix-trixie-*' ! -name "$(basename "$dir")" -exec rm -rf {} +
}
_nix_eval_chroot
unset -f _nix_eval_chroot
