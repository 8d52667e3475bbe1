# shellcheck shell=bash
# Current Home Assistant Core (2026.2.3, the newest release on PyPI here) for the Assist tests
# and `barnabee up --demo-home`. It needs Python >= 3.13.2, which bookworm lacks: Debian trixie's
# python3.13 in a chroot made with mmdebstrap from Debian's packages (the recipe of the Nix
# chroot, 41-nix-eval.sh), HA in a venv at /ha inside it, installed from the pinned lock
# (crates/agents/tests/ha/requirements-ha-current.lock). Three integrations' requirements
# (pymicro-vad, pyspeex-noise, lru-dict) have no cp313 wheel, hence g++ and python3.13-dev.
# Cached in $CACHE/tools/ha-trixie-<recipe+lock hash>/ (about 2.2 GB, ~3 min cold); its
# bin/hass runs HA in the chroot with the config dir bind-mounted at the same path, in a
# private mount namespace (nothing is left mounted when HA exits). Needs root; without it
# this step says so and the tests that need it print NOT RUN (and fail under CI=true).
# $CACHE/home-assistant-current links to it (what tests and `barnabee up` look for).
_ha_current() {
  local lock pkgs dir
  lock="$ROOT/crates/agents/tests/ha/requirements-ha-current.lock"
  # Bump v1 to rebuild with the same packages.
  pkgs="python3.13,python3.13-venv,python3.13-dev,g++,ca-certificates,ffmpeg,libturbojpeg0"
  dir="$CACHE/tools/ha-trixie-$( (printf 'trixie %s v1' "$pkgs"; cat "$lock") | sha256sum | cut -c1-12)"
  if [ ! -f "$dir/.installed" ]; then
    if [ "$(id -u)" -ne 0 ]; then
      printf '\033[1;33m!!! dev/setup: current Home Assistant (2026.2.3) runs in a Debian trixie chroot, which needs root (mmdebstrap, chroot); skipped: the Assist tests will say NOT RUN !!!\033[0m\n' >&2
      return 0
    fi
    apt_need mmdebstrap
    say "building the Debian trixie chroot with Home Assistant 2026.2.3 into $dir (once, ~3 min)"
    rm -rf "$dir.tmp"
    mkdir -p "$dir.tmp/bin"
    mmdebstrap --quiet --variant=apt --include="$pkgs" \
      trixie "$dir.tmp/root" "${BARNABEE_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
    # pip inside the chroot trusts what this machine trusts (a proxy's CA, if any).
    cp /etc/ssl/certs/ca-certificates.crt "$dir.tmp/root/etc/ssl/certs/host-ca.crt"
    cp "$lock" "$dir.tmp/root/tmp/requirements.lock"
    chroot "$dir.tmp/root" /usr/bin/python3.13 -m venv /ha
    chroot "$dir.tmp/root" env PIP_CERT=/etc/ssl/certs/host-ca.crt SSL_CERT_FILE=/etc/ssl/certs/host-ca.crt \
      PIP_FIND_LINKS= /ha/bin/pip install -q --disable-pip-version-check -r /tmp/requirements.lock
    cat >"$dir.tmp/bin/hass" <<EOF
#!/bin/sh
# Home Assistant 2026.2.3 in its Debian trixie chroot (dev/setup.d/61-home-assistant-current.sh).
# Takes hass's arguments; the -c/--config directory is bind-mounted at the same path inside.
root="$dir/root"
cfg=; prev=
for a in "\$@"; do { [ "\$prev" = "-c" ] || [ "\$prev" = "--config" ]; } && cfg=\$a; prev=\$a; done
[ -n "\$cfg" ] || { echo "hass (chroot): needs -c CONFIG_DIR" >&2; exit 2; }
cfg=\$(realpath "\$cfg") || exit 2
exec unshare --mount --propagation private /bin/sh -c 'root=\$1; cfg=\$2; shift 2
mount -t proc proc "\$root/proc" && mount --rbind /dev "\$root/dev" && mkdir -p "\$root\$cfg" &&
  mount --bind "\$cfg" "\$root\$cfg" || { echo "hass (chroot): cannot mount into \$root" >&2; exit 1; }
exec chroot "\$root" /ha/bin/hass "\$@"' sh "\$root" "\$cfg" "\$@"
EOF
    chmod +x "$dir.tmp/bin/hass"
    rm -rf "$dir"
    mv "$dir.tmp" "$dir"
    chroot "$dir/root" /ha/bin/python -c 'import sys; assert sys.version_info >= (3, 13, 2), sys.version'
    touch "$dir/.installed"
    find "$CACHE/tools" -mindepth 1 -maxdepth 1 -name 'ha-trixie-*' ! -name "$(basename "$dir")" -exec rm -rf {} +
  fi
  ln -sfn "$dir" "$CACHE/home-assistant-current"
}
_ha_current
unset -f _ha_current
