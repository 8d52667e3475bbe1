"""Lint the NixOS VM test scripts offline.

The Nix test driver runs pyflakes and mypy on every testScript and fails the build on any
finding; here we extract each script from checks/vm/*.nix (with checks/lib.nix's helpers
spliced in, Nix interpolations replaced by a placeholder string) and run py_compile and
pyflakes on it, so a lint error shows up in the README test command, not only in Nix CI.
"""

import pathlib
import re
import subprocess
import sys
import tempfile
import textwrap

ROOT = pathlib.Path(__file__).resolve().parents[2]
DRIVER_GLOBALS = ["start_all", "join_all", "subtest", "retry", "polling_condition", "t",
                  "create_machine", "driver", "log", "serial_stdout_on", "serial_stdout_off"]


def helpers() -> str:
    lib = (ROOT / "checks/lib.nix").read_text()
    m = re.search(r"python = ''\n(.*?)\n  '';", lib, re.S)
    if not m:
        sys.exit("checks/lib.nix: no `python = '' ... '';` block")
    return textwrap.dedent(m.group(1))


def node_names(nix: str) -> set:
    names = set(re.findall(r"\bnodes\.(\w+)\s*=", nix))
    block = re.search(r"\n(\s*)nodes = \{\n(.*?)\n\1\};", nix, re.S)
    if block:
        indent = len(block.group(1)) + 2
        names |= set(re.findall(rf"^ {{{indent}}}([A-Za-z_]\w*) =", block.group(2), re.M))
    return names


def script(nix: str, py_helpers: str) -> str:
    start = nix.index("''", nix.index("testScript"))
    body = textwrap.dedent(nix[start + 2 : nix.rindex("'';")])
    body = body.replace("${testLib.python}", py_helpers)
    return re.sub(r"\$\{[^}]*\}", "X", body)


def main() -> int:
    py_helpers = helpers()
    failed = 0
    with tempfile.TemporaryDirectory() as tmp:
        for f in sorted((ROOT / "checks/vm").glob("*.nix")):
            nix = f.read_text()
            names = sorted(node_names(nix) | set(DRIVER_GLOBALS))
            prelude = "".join(f"{n} = None  # noqa\n" for n in names)
            out = pathlib.Path(tmp) / f"{f.stem.replace('-', '_')}.py"
            out.write_text(prelude + script(nix, py_helpers))
            r = subprocess.run([sys.executable, "-m", "pyflakes", str(out)],
                               capture_output=True, text=True)
            if r.returncode != 0:
                failed += 1
                print(f"FAIL {f.relative_to(ROOT)} (testScript, after splicing helpers):", file=sys.stderr)
                print(r.stdout + r.stderr, file=sys.stderr)
            else:
                print(f"checks/nix: testScript ok: {f.relative_to(ROOT)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
