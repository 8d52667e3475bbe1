#!/usr/bin/env python3
"""The workspace's layout rule (DESIGN.md, issue #15 item 2): no daemon crate depends on another
daemon crate; daemons talk over HTTP. A daemon crate is one with a binary, except the operator's
`barnabee` command (barnabee-cli), which may read daemons' types.

Allowed, each with its reason (an entry that no longer matches a real dependency fails the
check too, so the list cannot go stale):
- barnabee-replicator is a library first: memory, agents and the watchdog embed it to replicate
  their SQLite files (the documented exception);
- barnabee-voice -> barnabee-inference: voice's local mode runs inference's ONNX engine (wake
  word, VAD) in process, until the audio-models crate of #15 item 2 takes that code.

Reads `cargo metadata --no-deps` (normal and build dependencies; dev-dependencies are for
tests). `--self-test` checks that a forbidden edge added to real metadata is caught.
"""

import json
import subprocess
import sys

CLI = "barnabee-cli"
ALLOWED = {
    ("barnabee-memory", "barnabee-replicator"): "embeds the replication library",
    ("barnabee-agents", "barnabee-replicator"): "embeds the replication library (cost ledger)",
    ("barnabee-watchdog", "barnabee-replicator"): "embeds the replication library (incident log)",
    ("barnabee-voice", "barnabee-inference"): "local mode runs inference's engine (#15 item 2)",
}


def violations(meta):
    packages = {p["name"]: p for p in meta["packages"]}
    daemons = {
        name
        for name, p in packages.items()
        if name != CLI and any("bin" in t["kind"] for t in p["targets"])
    }
    edges = set()
    for name, p in packages.items():
        for d in p["dependencies"]:
            if d["name"] in packages and d["kind"] in (None, "build"):
                edges.add((name, d["name"]))
    bad = sorted(
        f"{a} depends on the daemon crate {b}"
        for (a, b) in edges
        if a in daemons and b in daemons and (a, b) not in ALLOWED
    )
    stale = sorted(f"allowed {a} -> {b} is no longer a dependency: remove it from ALLOWED" for (a, b) in ALLOWED if (a, b) not in edges)
    return daemons, bad + stale


def main():
    meta = json.loads(
        subprocess.run(
            ["cargo", "metadata", "--format-version", "1", "--no-deps", "--locked"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    )
    daemons, problems = violations(meta)
    if "--self-test" in sys.argv:
        # A forbidden edge on real metadata must be caught: the console depending on memory.
        for p in meta["packages"]:
            if p["name"] == "barnabee-console":
                p["dependencies"].append({"name": "barnabee-memory", "kind": None})
        _, caught = violations(meta)
        if not any("barnabee-console depends on the daemon crate barnabee-memory" in c for c in caught):
            print("checks/layout: self-test FAILED: a console -> memory dependency was not caught")
            return 1
        print("checks/layout: self-test: a console -> memory dependency is caught")
        return 0
    if problems:
        for p in problems:
            print(f"checks/layout: FAIL {p}")
        return 1
    print(
        f"checks/layout: ok: {len(daemons)} daemon crates, none depends on another "
        f"({len(ALLOWED)} allowed edges, each with its reason in checks/layout/deps.py)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
