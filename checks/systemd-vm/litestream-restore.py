#!/usr/bin/env python3
"""Restore a replica with the real Litestream (0.5.17, PyPI `litestream-vfs`, a loadable SQLite
extension whose "hydration" is Litestream's own restore code) into OUT; prints the TXID it
restored. Usage: litestream-restore.py REPLICA_URL OUT. Needs Debian's sqlite3 CLI and the
extension in the project venv (dev/setup.d/30-litestream.sh installs both); S3 credentials come
from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY.
"""
import glob
import os
import subprocess
import sys
import time

url, out = sys.argv[1], os.path.abspath(sys.argv[2])
root = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
exts = os.environ.get("LITESTREAM_VFS_EXT") or next(
    iter(glob.glob(f"{root}/.venv/lib/*/site-packages/litestream_vfs/litestream-vfs.so")), None)
if not exts:
    sys.exit("litestream-restore: the Litestream VFS extension (PyPI litestream-vfs==0.5.17) is not "
             f"in {root}/.venv: run dev/setup (dev/setup.d/30-litestream.sh) or set LITESTREAM_VFS_EXT")
log = out + ".litestream.log"
meta = out + ".meta"
for p in (out, log, meta):
    if os.path.exists(p):
        os.remove(p)
env = dict(os.environ)
# Litestream's aws-sdk-go-v2 config refuses AWS_CA_BUNDLE with its own HTTP client ("unable to
# add custom RootCAs HTTPClient"); the replica is plain HTTP on the loopback anyway.
env.pop("AWS_CA_BUNDLE", None)
env.update(LITESTREAM_REPLICA_URL=url, LITESTREAM_HYDRATION_ENABLED="true",
           LITESTREAM_HYDRATION_PATH=out, LITESTREAM_LOG_LEVEL="DEBUG", LITESTREAM_LOG_FILE=log,
           NO_PROXY="127.0.0.1,localhost")
proc = subprocess.Popen(["sqlite3"], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                        stderr=subprocess.PIPE, env=env, cwd=os.path.dirname(out), text=True)
proc.stdin.write(f".load {exts}\n.open file:replica.db?vfs=litestream\nSELECT count(*) FROM sqlite_master;\n")
proc.stdin.flush()


def logtext():
    try:
        return open(log).read()
    except FileNotFoundError:
        return ""


deadline = time.time() + 120
while time.time() < deadline and not any(s in logtext() for s in ("hydration complete", "hydration failed")):
    time.sleep(0.1)
time.sleep(0.2)
proc.stdin.close()
err = proc.stderr.read()
proc.wait()
if not os.path.exists(meta) or "hydration failed" in logtext():
    lines = [l for l in logtext().splitlines() if "hydrat" in l or "ERROR" in l or "WARN" in l]
    sys.exit(f"Litestream did not restore {url}:\n" + "\n".join(lines[-30:]) + err[-2000:])
print(int(open(meta).read().strip()))
