#!/usr/bin/env python3
"""The module-logic tests (checks/eval) with a real Nix and nixpkgs lib, in the Nix chroot.

    eval_modules.py [--src DIR] [--expect-failures]

First all cases in one evaluation (fast). `tryEval` cannot catch an infinite recursion or a
missing attribute, so when that one evaluation aborts, every case is evaluated on its own
(`--arg only N`) and each that aborts is listed as a failure with its error, instead of one
broken case hiding the others. Prints one FAIL block per failing case and a summary line.

Exit status: 0 when every case passed; 1 when any failed (or, with --expect-failures, when none
did: the self-test that a deliberately broken module makes the tests fail); 2 when the
harness itself cannot run (no chroot, no lib, the case list does not evaluate).
"""

import argparse
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
CHROOT = os.path.join(HERE, "nix-chroot")
BASE = 'nix-instantiate --eval --strict --json checks/eval/run.nix --arg lib "import /nixlib/lib"'


def nix(src: str, args: str) -> tuple[int, str, str]:
    proc = subprocess.run(
        [CHROOT, "--src", src, f"{BASE} {args}"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    return proc.returncode, proc.stdout, proc.stderr


def first_error(stderr: str) -> str:
    """The `error: ...` line of a Nix trace (the cause), else its last line."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error:")]
    return (errors[-1] if errors else lines[-1] if lines else "no output").removeprefix("error: ")


def run(src: str) -> tuple[int, list]:
    code, out, err = nix(src, "-A failures")
    if code == 0:
        _, total_out, _ = nix(src, "-A total")
        return int(total_out), json.loads(out)
    print(f"checks/nix: eval-modules: the evaluation of all cases aborted ({first_error(err)}); "
          "evaluating each case on its own", file=sys.stderr)
    code, out, err = nix(src, "-A names")
    if code != 0:
        print(f"checks/nix: eval-modules: the case list does not evaluate: {first_error(err)}", file=sys.stderr)
        sys.exit(2)
    names = json.loads(out)
    failures = []
    for i, name in enumerate(names):
        code, out, err = nix(src, f"--arg only {i} -A failures")
        if code != 0:
            failures.append({"name": name, "error": first_error(err), "rerun": f"--arg only {i}"})
        else:
            failures.extend(json.loads(out))
    return len(names), failures


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--src", default=os.path.dirname(os.path.dirname(HERE)))
    ap.add_argument("--expect-failures", action="store_true")
    opts = ap.parse_args()
    total, failures = run(opts.src)
    if not opts.expect_failures:
        for f in failures:
            print("FAIL eval-modules:", json.dumps(f, indent=2), file=sys.stderr)
    passed = total - len(failures)
    label = "eval-modules (deliberately broken tree)" if opts.expect_failures else "eval-modules"
    print(f"checks/nix: {label}: {passed} passed, {len(failures)} failed ({total} cases)")
    if opts.expect_failures:
        for f in failures:
            print(f"checks/nix:   caught: {f['name']}")
        sys.exit(0 if failures else 1)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
