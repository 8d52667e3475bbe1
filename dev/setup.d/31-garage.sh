# shellcheck shell=bash
# barnabee-replicator: Garage 2.5.0 (the S3 server NixOS operators self-host; strict about
# request checksums), built once into the cache (about 13 minutes on 2 cores).
if [ ! -x "$CACHE/tools/garage-2.5.0/bin/garage" ]; then
  say "building garage 2.5.0 (about 13 minutes)"
  cargo install garage@2.5.0 --locked --root "$CACHE/tools/garage-2.5.0"
fi
