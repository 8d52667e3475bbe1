#!/usr/bin/env python3
"""The beast's default model set (nixos-modules/default-models.nix) against the real files.

Every pin there is checked against what dev/setup.d/70-inference.sh downloaded and converted on
this machine: each wheel's SHA-256 (the hash fetchPypi will check) against the wheel in
$CACHE/inference/wheels/, and each file the daemon loads against the file in
$CACHE/inference/models/<cache>/ (made from the same wheel by the same converter). So a pin
that does not match the real bytes fails the test command, and a converter whose output
changes (a new numpy or onnx release) is caught here before the appliance refuses the model.

The pins come from Nix itself (`nix-instantiate --eval` of the file in the Nix chroot), not a
copy. Absent files: a loud failure under CI=true (dev/setup always makes them there), a loud
NOT CHECKED line elsewhere.

Usage: model_pins.py   (run by checks/nix/run)
"""
import hashlib
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
CHROOT = os.path.join(HERE, "nix-chroot")
EXPR = '(import ./nixos-modules/default-models.nix { lib = import /nixlib/lib; }).pins'


def cache_dir() -> str:
    for var in ("BARNABEE_INFERENCE_CACHE",):
        if os.environ.get(var):
            return os.environ[var]
    base = os.environ.get("BARNABEE_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.environ["HOME"], ".cache"), "barnabee")
    return os.path.join(base, "inference")


def sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def main() -> int:
    r = subprocess.run([CHROOT, f"nix-instantiate --eval --strict --json -E '{EXPR}'"],
                       capture_output=True, text=True)
    if r.returncode != 0:
        print(f"checks/nix: model pins: cannot evaluate default-models.nix: {r.stderr.strip()}", file=sys.stderr)
        return 1
    pins = json.loads(r.stdout)
    cache = cache_dir()
    problems, missing, checked = [], [], 0
    for name, p in sorted(pins.items()):
        w = p["wheel"]
        whl = os.path.join(cache, "wheels", f"{w['pname']}-{w['version']}-py3-none-any.whl")
        if os.path.exists(whl):
            got = sha256(whl)
            checked += 1
            if got != w["sha256"]:
                problems.append(f"{name}: wheel {os.path.basename(whl)} is {got}, pinned {w['sha256']}")
        else:
            missing.append(whl)
        for role, f in sorted(p["files"].items()):
            path = os.path.join(cache, "models", p["cache"], f["name"])
            if not os.path.exists(path):
                missing.append(path)
                continue
            got = sha256(path)
            checked += 1
            if got != f["sha256"]:
                problems.append(f"{name}.files.{role}: {path} is {got}, pinned {f['sha256']}")
    for p in problems:
        print(f"\033[1;31mFAIL\033[0m checks/nix: model pins: {p}", file=sys.stderr)
    if missing:
        msg = (f"!!! model pins: {len(missing)} file(s) NOT CHECKED, absent from {cache} "
               f"(dev/setup.d/70-inference.sh makes them): {', '.join(missing[:4])}"
               f"{' ...' if len(missing) > 4 else ''} !!!")
        print(f"\033[1;33m{msg}\033[0m", file=sys.stderr)
        if os.environ.get("CI") == "true":
            problems.append("files absent")
    if problems:
        return 1
    print(f"checks/nix: model pins: {len(pins)} default models, {checked} wheel and file hashes "
          f"match the files dev/setup downloaded and converted")
    return 0


if __name__ == "__main__":
    sys.exit(main())
