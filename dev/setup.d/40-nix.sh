# shellcheck shell=bash
# Nix-side offline checks (checks/nix/run): Debian's nix-bin (parser/evaluator, never touches
# /nix with NIX_REMOTE=dummy://), systemd-analyze for the unit files, our alejandra wrapper
# (checks/nix/alejandra, its own workspace and lockfile) and deadnix, built once into
# $CACHE/tools/<name>-<version or lock hash>/; pyflakes into the project venv. Fast when present.
apt_need nix-bin systemd
pip_need "$ROOT/checks/nix/requirements.txt" # pyflakes for the VM test scripts
_nix_tools() {
  local hash dir
  hash="$(cat "$ROOT/checks/nix/alejandra/Cargo.lock" "$ROOT/checks/nix/alejandra/Cargo.toml" "$ROOT/checks/nix/alejandra/src/main.rs" | sha256sum | cut -c1-16)"
  dir="$CACHE/tools/alejandra-$hash"
  if [ ! -x "$dir/bin/alejandra" ]; then
    say "building the alejandra wrapper (checks/nix/alejandra) into $dir"
    cargo install --quiet --locked --path "$ROOT/checks/nix/alejandra" --root "$dir" \
      --target-dir "$CACHE/tools/build-alejandra"
  fi
  dir="$CACHE/tools/deadnix-1.3.1"
  if [ ! -x "$dir/bin/deadnix" ]; then
    say "installing deadnix 1.3.1 into $dir"
    cargo install --quiet --locked deadnix --version 1.3.1 --root "$dir"
  fi
}
_nix_tools
unset -f _nix_tools
