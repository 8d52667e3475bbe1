# barnabee-replicator: the real Litestream (PyPI wheel `litestream-vfs`, a loadable SQLite
# extension) and Debian's sqlite3 CLI to load it; the compatibility test restores our replicas
# with it. Also the s3s-fs loopback S3 server for the S3 conformance tests.
apt_need sqlite3
pip_need "$ROOT/crates/replicator/tests/requirements.txt"
if [ ! -x "$CACHE/tools/s3s-fs-0.14.1/bin/s3s-fs" ]; then
  say "building s3s-fs 0.14.1 (about 3 minutes)"
  cargo install s3s-fs@0.14.1 --locked --features binary --root "$CACHE/tools/s3s-fs-0.14.1"
fi
