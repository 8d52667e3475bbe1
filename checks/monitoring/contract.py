#!/usr/bin/env python3
"""The metric contract, checked against the running daemons.

Starts every daemon with `barnabee up` (embedded defaults: memory replicates to a local file
replica, so the backup metrics exist too), scrapes every /metrics, and fails when
  1. a daemon exports a barnabee_* family that is not declared in the catalog
     (`barnabee metrics --json`, from crates/service/src/catalog.rs), or with another type or
     other label names than declared;
  2. a declared family is missing from the daemon that should export it;
  3. an alert rule or a dashboard panel names a metric that no daemon exports (barnabee_*),
     that the real node_exporter does not export (node_*), or any other name.
While the daemons run, every command of docs/runbook.md is run against them.
Then it proves it can fail: the same comparison on a copy of the rules with a rule on a
metric nobody exports must report exactly that name.

Usage: contract.py --bin-dir target/debug [--node-exporter PATH]
"""

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(HERE))
import promql_names  # noqa: E402

ALERTS = ROOT / "nixos-modules/monitoring/alerts.yml"
DASHBOARD = ROOT / "nixos-modules/monitoring/grafana-dashboard.json"
ROLES = ["memory", "agents", "voice", "inference", "watchdog"]
def exporter_roles(exporter):
    """The daemons that must export a family declared for `exporter` (catalog.rs Exporter).
    `barnabee up` replicates memory, agents and the watchdog, so all three export the
    replicator's families."""
    return {
        "every": ROLES,
        "replicating": ("memory", "agents", "watchdog"),
    }.get(exporter, (exporter,))


# Names a rule may use that no exporter declares: Prometheus' own per-target series.
PROMETHEUS_OWN = {"up", "scrape_duration_seconds", "scrape_samples_scraped"}


def fail(msg):
    print(f"checks/monitoring: contract: FAILED: {msg}", file=sys.stderr)
    sys.exit(1)


def get(url, timeout=10):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.read().decode()


def parse_exposition(text):
    """{family: (type, set of label-name tuples, set of sample names)} of an OpenMetrics or
    Prometheus text exposition."""
    families = {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ", 3)
            families[name] = (kind.strip(), set(), set())
    sample = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([^}]*)\})?\s")
    for line in text.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        m = sample.match(line)
        if not m:
            continue
        name = m.group(1)
        labels = tuple(
            sorted(
                k
                for k in re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="', m.group(3) or "")
                if k != "le"
            )
        )
        family = name
        for suffix in ("_total", "_bucket", "_sum", "_count", "_created", "_info"):
            if name.endswith(suffix) and name[: -len(suffix)] in families:
                family = name[: -len(suffix)]
                break
        if family in families:
            families[family][1].add(labels)
            families[family][2].add(name)
    return families


def exported_sample_names(families):
    """Every sample name a family will have, from its TYPE (a labelled family with no series
    yet still counts: the daemon exports it, Prometheus will see it once it is set)."""
    names = set()
    for family, (kind, _, samples) in families.items():
        names |= samples
        if kind == "counter":
            names.add(family + "_total")
        elif kind == "histogram":
            names |= {family + "_bucket", family + "_sum", family + "_count"}
        else:
            names.add(family)
    return names


def free_offset():
    """A port offset N such that 7701+N..7706+N are free (and 10300+N, 10800+N for Wyoming)."""
    for n in range(200, 2000, 17):
        ok = True
        for port in [7700 + n + i for i in range(1, 7)] + [10300 + n, 10800 + n]:
            with socket.socket() as s:
                try:
                    s.bind(("127.0.0.1", port))
                except OSError:
                    ok = False
                    break
        if ok:
            return n
    fail("no free port offset for barnabee up")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def with_up(bin_dir, work):
    """Start `barnabee up` (data dir $XDG_DATA_HOME/barnabee, so a plain `barnabee status`
    finds it), call work(urls, env, offset) while it runs, stop it."""
    home = tempfile.mkdtemp(prefix="barnabee-contract-")
    data = os.path.join(home, "barnabee")
    os.makedirs(data)
    env = dict(os.environ, XDG_DATA_HOME=home)
    offset = free_offset()
    log = open(os.path.join(home, "up.log"), "w+")
    up = subprocess.Popen(
        [
            str(bin_dir / "barnabee"),
            "up",
            "--port-offset",
            str(offset),
            "--bin-dir",
            str(bin_dir),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
    )
    try:
        deadline = time.time() + 180
        while True:
            log.seek(0)
            out = log.read()
            if "the local appliance is up" in out:
                break
            if up.poll() is not None or time.time() > deadline:
                fail(f"barnabee up did not come up:\n{out[-4000:]}")
            time.sleep(0.5)
        state = json.loads(Path(data, "up.json").read_text())
        urls = {d["role"]: d["url"] for d in state["daemons"]}
        missing = [r for r in ROLES if r not in urls]
        if missing:
            fail(f"barnabee up did not start {missing}")
        # Give memory's replicator one sync interval so its metrics carry samples.
        time.sleep(2)
        return work(urls, env, offset)
    finally:
        up.send_signal(signal.SIGINT)
        try:
            up.wait(timeout=40)
        except subprocess.TimeoutExpired:
            up.kill()


def runbook_commands(path):
    """Every line of the runbook's ```sh blocks."""
    commands, inside = [], False
    for line in Path(path).read_text().splitlines():
        if line.startswith("```"):
            inside = line.strip() == "```sh"
            continue
        if inside and line.strip() and not line.lstrip().startswith("#"):
            commands.append(line.strip())
    return commands


def run_runbook(bin_dir, env, offset):
    """Run docs/runbook.md's commands against `barnabee up`: barnabee subcommands for real,
    curl URLs with the port shifted by up's offset (any answer but 404/405: the route exists),
    journalctl with its options checked by journalctl itself where it is installed.
    Returns (problems, summary)."""
    problems, ran, journal_checked, journal_unchecked = [], 0, 0, 0
    for cmd in runbook_commands(ROOT / "docs/runbook.md"):
        argv = cmd.split()
        if argv[0] == "barnabee":
            argv = [str(bin_dir / "barnabee")] + argv[1:]
            if argv[1:3] == ["incident", "collect"]:
                argv += ["--out", tempfile.mkdtemp(prefix="barnabee-runbook-")]
            r = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)
            # status exits 1 when a daemon is unhealthy: up's daemons are healthy or degraded.
            if r.returncode != 0:
                problems.append(f"runbook: `{cmd}` exited {r.returncode}: {r.stderr.strip()[-300:]}")
            ran += 1
        elif argv[0] == "curl":
            url = next(a for a in argv if a.startswith("http://"))
            method = "POST" if "-X" in argv and argv[argv.index("-X") + 1] == "POST" else "GET"
            m = re.match(r"http://127\.0\.0\.1:(\d+)(/.*)", url)
            if not m:
                problems.append(f"runbook: `{cmd}`: not a local daemon URL")
                continue
            shifted = f"http://127.0.0.1:{int(m.group(1)) + offset}{m.group(2)}"
            req = urllib.request.Request(shifted, method=method, data=b"" if method == "POST" else None)
            try:
                with urllib.request.urlopen(req, timeout=10) as r:
                    status = r.status
            except urllib.error.HTTPError as e:
                status = e.code
            except OSError as e:
                problems.append(f"runbook: `{cmd}`: {e}")
                continue
            if status in (404, 405):
                problems.append(f"runbook: `{cmd}`: HTTP {status} (no such route)")
            ran += 1
        elif argv[0] == "journalctl":
            if shutil.which("journalctl") is None:
                journal_unchecked += 1
                continue
            r = subprocess.run(argv + ["--no-pager", "-n", "0"], capture_output=True, text=True, timeout=30)
            if "unrecognized option" in r.stderr or "invalid option" in r.stderr or "Failed to parse" in r.stderr:
                problems.append(f"runbook: `{cmd}`: {r.stderr.strip()}")
            journal_checked += 1
        else:
            problems.append(f"runbook: `{cmd}`: the test does not know how to check {argv[0]}")
    summary = f"runbook: {ran} commands ran against the daemons, {journal_checked} journalctl commands' options checked"
    if journal_unchecked:
        summary += f", {journal_unchecked} journalctl commands NOT checked (no journalctl here)"
    return problems, summary


def scrape_node_exporter(path):
    port = free_port()
    textfile_dir = tempfile.mkdtemp(prefix="barnabee-node-")
    proc = subprocess.Popen(
        [
            path,
            f"--web.listen-address=127.0.0.1:{port}",
            f"--collector.textfile.directory={textfile_dir}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.time() + 20
        while True:
            try:
                return get(f"http://127.0.0.1:{port}/metrics")
            except OSError:
                if proc.poll() is not None or time.time() > deadline:
                    fail(f"{path} did not answer on 127.0.0.1:{port}")
                time.sleep(0.2)
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def unknown_names(used, barnabee_exported, node_exported):
    bad = set()
    for name in used:
        if name in PROMETHEUS_OWN:
            continue
        if name.startswith("barnabee_"):
            if name not in barnabee_exported:
                bad.add(name)
        elif name.startswith("node_"):
            if name not in node_exported:
                bad.add(name)
        else:
            bad.add(name)
    return bad


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin-dir", type=Path, default=ROOT / "target/debug")
    ap.add_argument("--node-exporter", default="/usr/bin/prometheus-node-exporter")
    ap.add_argument("--alerts", type=Path, default=ALERTS, help="rules file to check")
    ap.add_argument("--dashboard", type=Path, default=DASHBOARD, help="dashboard to check")
    args = ap.parse_args()

    catalog = json.loads(
        subprocess.run(
            [str(args.bin_dir / "barnabee"), "metrics", "--json"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    )
    declared = {d["name"]: d for d in catalog}
    def work(urls, env, offset):
        scraped = {role: get(urls[role] + "/metrics") for role in ROLES}
        return scraped, run_runbook(args.bin_dir, env, offset)

    scraped, (problems, runbook_summary) = with_up(args.bin_dir, work)

    barnabee_exported = set()
    for role, text in scraped.items():
        families = parse_exposition(text)
        barnabee_exported |= exported_sample_names(families)
        for family, (kind, label_sets, _) in families.items():
            if not family.startswith("barnabee_"):
                problems.append(f"{role} exports {family}, which is not a barnabee_ name")
                continue
            d = declared.get(family)
            if d is None:
                problems.append(f"{role} exports {family}, not declared in the catalog")
                continue
            if role not in exporter_roles(d["exporter"]):
                problems.append(f"{role} exports {family}, declared for {d['exporter']}")
            if kind != d["kind"]:
                problems.append(f"{family} is a {kind} on {role}, declared {d['kind']}")
            for labels in label_sets:
                if set(labels) != set(d["labels"]):
                    problems.append(
                        f"{family} on {role} has labels {sorted(labels)}, declared {d['labels']}"
                    )
        for d in catalog:
            if role in exporter_roles(d["exporter"]) and d["name"] not in families:
                problems.append(f"{role} does not export {d['name']} (declared in the catalog)")

    if not os.path.exists(args.node_exporter):
        if os.environ.get("CI") == "true":
            fail(f"{args.node_exporter} is absent (dev/setup installs prometheus-node-exporter)")
        print(
            f"\n\033[1;33m!!! {args.node_exporter} absent: node_* names in the rules are "
            "NOT checked (CI checks them) !!!\033[0m\n",
            file=sys.stderr,
        )
        node_exported = None
    else:
        node_exported = exported_sample_names(parse_exposition(scrape_node_exporter(args.node_exporter)))

    used = promql_names.names(str(args.alerts), str(args.dashboard))
    if node_exported is None:
        used = {n for n in used if not n.startswith("node_")}
        node_exported = set()
    for name in sorted(unknown_names(used, barnabee_exported, node_exported)):
        problems.append(f"a rule or panel names {name}, which nothing exports")

    # The check can fail: a rule on a metric nobody exports is caught by name.
    with tempfile.TemporaryDirectory() as tmp:
        broken = Path(tmp, "alerts.yml")
        broken.write_text(
            args.alerts.read_text()
            + "\n      - alert: ContractSelfTest\n"
            + "        expr: barnabee_voice_pipeline_latency_ms_bucket > 0\n"
            + "        labels: {severity: warning}\n"
        )
        caught = unknown_names(
            promql_names.names(str(broken), str(args.dashboard)) - PROMETHEUS_OWN,
            barnabee_exported,
            node_exported | {n for n in used if n.startswith("node_")},
        )
        if "barnabee_voice_pipeline_latency_ms_bucket" not in caught:
            problems.append(
                "self-test: a rule on barnabee_voice_pipeline_latency_ms_bucket was NOT caught"
            )

    if problems:
        fail("\n  " + "\n  ".join(problems))
    n_b = len([n for n in used if n.startswith("barnabee_")])
    n_n = len([n for n in used if n.startswith("node_")])
    print(
        f"checks/monitoring: contract: ok: {len(declared)} declared families exported by "
        f"{len(scraped)} daemons; {n_b} barnabee_ and {n_n} node_ names in the rules and "
        "dashboard all exist; a rule on a missing metric is caught"
    )
    print(f"checks/monitoring: {runbook_summary}")


if __name__ == "__main__":
    main()
