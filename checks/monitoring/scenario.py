#!/usr/bin/env python3
"""Real-peer scenario: a Barnabee unit goes down, the alert fires, the notification arrives.

Peers, all real and on 127.0.0.1 free ports with temporary data directories:
  - prometheus (Debian 2.42) with nixos-modules/monitoring/alerts.yml,
  - prometheus-alertmanager (Debian 0.25) with nixos-modules/monitoring/alertmanager.yml,
  - prometheus-node-exporter (Debian 1.5) scraped as job `node`, host `beelink`.
  - with --watchdog-bin: the real barnabee-watchdog, whose notifier (POST
    /v1/notify/alertmanager) is Alertmanager's second webhook in the same receiver; its webhook
    channel delivers to the sink. It is scraped as job `barnabee-watchdog` too.
The only things of this script's own are the webhook sink (alertmanager.yml's receiver URL is
rewritten to it: it records Alertmanager's raw payload, and the notifier's messages) and the
`barnabee-voice` target, a tiny /metrics server that this script stops (the fault: its port is
closed) and restarts.

!!! Every `for:` of alerts.yml is rewritten to 3s here, so the scenario takes a minute, not a !!!
!!! quarter of an hour. The real durations are pinned by alerts.test.yml (promtool test     !!!
!!! rules), not by this scenario.                                                            !!!
Alertmanager's timings (group_wait 10s, group_interval 1m for critical) are the shipped ones.

What it proves, in order:
  1. every rule of alerts.yml evaluates without error against real node_exporter data
     (/api/v1/rules health "ok": no many-to-many matching or type errors at run time);
  2. the host rules' label matching works on node_exporter's real series (their expressions,
     threshold removed, return one series per host) and every node_* name the rules and the
     dashboard use is one the real node_exporter exposes;
  3. every dashboard query executes against the live Prometheus;
  4. barnabee-voice's port closes -> BarnabeeUnitDown fires at Prometheus (/api/v1/alerts) ->
     Alertmanager delivers it to the notifier URL (webhook v4, receiver barnabee-notifier,
     labels and annotations intact); with --watchdog-bin the real notifier turns it into the
     family's message (title = the summary, tags barnabee/critical/firing/alertmanager);
  5. the inhibit rules hold in the real Alertmanager: the unit-down alert suppresses another
     alert of the same job and host, a critical suppresses the warning of the same alertname;
  6. the target comes back -> the alert resolves at Prometheus -> the resolved message arrives
     (send_resolved), and through the real notifier ("Resolved: ...", tag resolved).
It prints the time from fault to firing and to notification, and from recovery to resolution.
"""
from __future__ import annotations

import argparse
import http.server
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True  # no __pycache__ in the tree
sys.path.insert(0, HERE)
import promql_names  # noqa: E402

ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
MON = os.path.join(ROOT, "nixos-modules", "monitoring")
NOTIFIER_URL = "http://127.0.0.1:7705/v1/notify/alertmanager"
FAST_FOR = "3s"
HOST = "beelink"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def log(msg: str) -> None:
    print(f"  [{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def fail(msg: str) -> None:
    raise SystemExit(f"checks/monitoring scenario: FAIL: {msg}")


def get_json(url: str, timeout: float = 5.0):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return json.load(r)


def post_json(url: str, body) -> None:
    req = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=5) as r:
        r.read()


def wait_for(what: str, fn, timeout: float, every: float = 0.25):
    deadline = time.monotonic() + timeout
    last_err = None
    while time.monotonic() < deadline:
        try:
            v = fn()
            if v:
                return v
        except Exception as e:  # noqa: BLE001 (a peer not up yet)
            last_err = e
        time.sleep(every)
    fail(f"timed out after {timeout:.0f} s waiting for {what}" + (f" (last error: {last_err})" if last_err else ""))


# --- the webhook sink (stands in for the watchdog's notifier) -----------------------------------
class Sink:
    def __init__(self) -> None:
        self.messages: list[tuple[float, dict]] = []
        self.lock = threading.Lock()
        sink = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with sink.lock:
                    sink.messages.append((time.monotonic(), {"path": self.path, "body": json.loads(body)}))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *a):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def find_notifier(self, status: str, title: str):
        """A message of the watchdog's webhook channel (ntfy/Gotify style)."""
        with self.lock:
            for t, m in self.messages:
                b = m["body"]
                if m["path"] == "/ntfy/barnabee" and status in b.get("tags", []) and title in b.get("title", ""):
                    return t, m
        return None

    def find(self, alertname: str, status: str, job: str | None = None):
        with self.lock:
            for t, m in self.messages:
                for a in m["body"].get("alerts", []):
                    if a["labels"].get("alertname") == alertname and a["status"] == status and (
                        job is None or a["labels"].get("job") == job
                    ):
                        return t, m, a
        return None


# --- the barnabee-voice target: a /metrics that can go away and come back ------------------------
class Target:
    def __init__(self, port: int) -> None:
        self.port = port
        self.server: http.server.HTTPServer | None = None

    def start(self) -> None:
        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                body = b'# TYPE barnabee_build_info gauge\nbarnabee_build_info{daemon="voice",version="scenario"} 1\n'
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *a):
                pass

        http.server.ThreadingHTTPServer.allow_reuse_address = True
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        assert self.server
        self.server.shutdown()
        self.server.server_close()  # the port is closed: scrapes get "connection refused"
        self.server = None


# --broken: the shipped files with one fault each, to show the scenario fails on it.
BROKEN = {
    # the unit-down rule never matches: no alert, no notification
    "unit-down-never-fires": ("alerts.yml", 'expr: up{job=~"barnabee-.*"} == 0', 'expr: up{job=~"barnabee-.*"} == 2'),
    # no resolved message
    "no-send-resolved": ("alertmanager.yml", "send_resolved: true", "send_resolved: false"),
    # the unit-down inhibition gone: its job's other alerts are notified while it is down
    "no-unit-down-inhibit": ("alertmanager.yml", "source_matchers: ['alertname=\"BarnabeeUnitDown\"']",
                             "source_matchers: ['alertname=\"NoSuchAlert\"']"),
}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(ROOT, "target", "monitoring"))
    ap.add_argument("--broken", choices=sorted(BROKEN), help="break the shipped files this way first (expect FAIL)")
    ap.add_argument("--watchdog-bin", help="the barnabee-watchdog binary: its notifier receives the alerts too "
                    "(webhook channel to the sink), and it is scraped as job barnabee-watchdog")
    args = ap.parse_args()
    if args.watchdog_bin:
        args.watchdog_bin = os.path.abspath(args.watchdog_bin)
        if not os.access(args.watchdog_bin, os.X_OK):
            fail(f"--watchdog-bin {args.watchdog_bin} is not an executable")
    os.makedirs(args.out, exist_ok=True)
    t_scenario = time.monotonic()

    work = tempfile.mkdtemp(prefix="barnabee-monitoring-")
    procs: list[subprocess.Popen] = []
    try:
        ports = {k: free_port() for k in ("prom", "am", "node", "voice")}
        sink = Sink()

        # alerts.yml with every `for:` at 3s (LOUDLY: the real durations are alerts.test.yml's).
        rules = open(os.path.join(MON, "alerts.yml")).read()
        am_cfg = open(os.path.join(MON, "alertmanager.yml")).read()
        if args.broken:
            f, a, b = BROKEN[args.broken]
            text = rules if f == "alerts.yml" else am_cfg
            if text.count(a) != 1:
                fail(f"--broken {args.broken}: {a!r} is not in {f} exactly once")
            if f == "alerts.yml":
                rules = rules.replace(a, b)
            else:
                am_cfg = am_cfg.replace(a, b)
            print(f"!!! scenario: --broken {args.broken}: {f} altered ({a} -> {b}); expect FAIL !!!")
        assert re.search(r"- alert: BarnabeeUnitDown\n\s+expr: .*\n\s+for: 2m\n", rules), "BarnabeeUnitDown's for: is not 2m"
        fast, n = re.subn(r"(?m)^(\s+for:\s*)\S+\s*$", rf"\g<1>{FAST_FOR}", rules)
        print(f"!!! scenario: {n} `for:` durations of alerts.yml rewritten to {FAST_FOR} (promtool tests pin the real ones) !!!")
        open(os.path.join(work, "alerts.yml"), "w").write(fast)

        if am_cfg.count(NOTIFIER_URL) != 1:
            fail(f"alertmanager.yml does not name the notifier URL {NOTIFIER_URL} exactly once")
        sink_url = f"http://127.0.0.1:{sink.port}/v1/notify/alertmanager"
        am_out = am_cfg.replace(NOTIFIER_URL, sink_url)
        if args.watchdog_bin:
            ports["watchdog"] = free_port()
            wd_url = NOTIFIER_URL.replace(":7705/", f":{ports['watchdog']}/")
            # The same receiver also posts to the real notifier (the shipped path, another port).
            import yaml  # noqa: PLC0415 (in .venv: dev/setup.d/80-monitoring.sh)
            doc = yaml.safe_load(am_out)
            (recv,) = doc["receivers"]
            recv["webhook_configs"].append(dict(recv["webhook_configs"][0], url=wd_url))
            am_out = yaml.safe_dump(doc, sort_keys=False)
            log(f"alertmanager.yml receiver rewritten to the sink {sink_url} and the real notifier {wd_url}")
        else:
            log(f"alertmanager.yml receiver rewritten to the sink {sink_url}")
        open(os.path.join(work, "alertmanager.yml"), "w").write(am_out)

        prom_cfg = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s", "scrape_timeout": "900ms"},
            "rule_files": [os.path.join(work, "alerts.yml")],
            "alerting": {"alertmanagers": [{"static_configs": [{"targets": [f"127.0.0.1:{ports['am']}"]}]}]},
            "scrape_configs": [
                {"job_name": "node", "static_configs": [{"targets": [f"127.0.0.1:{ports['node']}"], "labels": {"host": HOST}}]},
                {"job_name": "barnabee-voice", "static_configs": [{"targets": [f"127.0.0.1:{ports['voice']}"], "labels": {"host": HOST}}]},
            ],
        }
        if args.watchdog_bin:
            prom_cfg["scrape_configs"].append({"job_name": "barnabee-watchdog", "static_configs": [
                {"targets": [f"127.0.0.1:{ports['watchdog']}"], "labels": {"host": HOST}}]})
        open(os.path.join(work, "prometheus.yml"), "w").write(json.dumps(prom_cfg, indent=1))

        def spawn(name: str, argv: list[str]) -> None:
            logf = open(os.path.join(args.out, f"{name}.log"), "w")
            procs.append(subprocess.Popen(argv, stdout=logf, stderr=subprocess.STDOUT, cwd=work, start_new_session=True))
            log(f"started {name} (pid {procs[-1].pid}): {' '.join(argv[:1])} ...")

        spawn("node_exporter", ["prometheus-node-exporter", f"--web.listen-address=127.0.0.1:{ports['node']}"])
        if args.watchdog_bin:
            # The real barnabee-watchdog, notifier on, supervision idle (no units, no D-Bus: the
            # notifier does not need systemd), host checks that cannot trip on a busy CI box.
            os.makedirs(os.path.join(work, "watchdog"))
            open(os.path.join(work, "watchdog.toml"), "w").write(
                f'state_dir = "{work}/watchdog"\n'
                f'[service]\nlisten = "127.0.0.1:{ports["watchdog"]}"\ndrain_timeout = 1\n'
                '[service.log]\ntarget = "stderr"\nlevel = "info"\n'
                '[thresholds]\ninterval = 3600\ndisk_paths = []\nmemory_warn_available_gb = 0\n'
                'memory_critical_available_gb = 0\nload_warn_per_cpu = 1000\nload_critical_per_cpu = 1000\n'
                '[notify]\nbackoff_initial = 0.2\nbackoff_max = 1\ntimeout = 5\n'
                f'[notify.webhook]\nurl = "http://127.0.0.1:{sink.port}/ntfy/barnabee"\nmin_severity = "info"\n')
            env = {k: v for k, v in os.environ.items() if k not in ("NOTIFY_SOCKET", "CREDENTIALS_DIRECTORY", "RUST_LOG")}
            env["DBUS_SYSTEM_BUS_ADDRESS"] = "unix:path=/nonexistent/bus"
            logf = open(os.path.join(args.out, "watchdog.log"), "w")
            procs.append(subprocess.Popen([args.watchdog_bin, "--config", f"{work}/watchdog.toml"], stdout=logf,
                                          stderr=subprocess.STDOUT, cwd=work, env=env, start_new_session=True))
            log(f"started barnabee-watchdog (pid {procs[-1].pid}): {args.watchdog_bin} (the notifier)")
        spawn("alertmanager", ["prometheus-alertmanager", f"--config.file={work}/alertmanager.yml",
                               f"--storage.path={work}/am", f"--web.listen-address=127.0.0.1:{ports['am']}",
                               "--cluster.listen-address="])
        spawn("prometheus", ["prometheus", f"--config.file={work}/prometheus.yml", f"--storage.tsdb.path={work}/tsdb",
                             f"--web.listen-address=127.0.0.1:{ports['prom']}"])
        prom = f"http://127.0.0.1:{ports['prom']}"
        am = f"http://127.0.0.1:{ports['am']}"

        def alive() -> None:
            for p in procs:
                if p.poll() is not None:
                    fail(f"{p.args[0]} exited with {p.returncode} (log in {args.out})")

        def query(expr: str):
            alive()
            r = get_json(f"{prom}/api/v1/query?" + urllib.parse.urlencode({"query": expr}))
            if r.get("status") != "success":
                fail(f"query {expr!r}: {r}")
            return r["data"]["result"]

        # The target is up first, so that the fault has a moment.
        target = Target(ports["voice"])
        target.start()
        wait_for("Prometheus, Alertmanager and node_exporter ready", lambda: all(
            urllib.request.urlopen(u, timeout=2).status == 200
            for u in (f"{prom}/-/ready", f"{am}/-/ready", f"http://127.0.0.1:{ports['node']}/metrics")), 60)
        jobs = ["node", "barnabee-voice"] + (["barnabee-watchdog"] if args.watchdog_bin else [])
        wait_for("every target scraped up", lambda: len(query(f'up{{job=~"{"|".join(jobs)}"}} == 1')) == len(jobs), 30)
        log(f"Prometheus scrapes {', '.join(jobs)} (up == 1)")

        # 1. every rule evaluates without error on real data.
        def rules_evaluated():
            groups = get_json(f"{prom}/api/v1/rules")["data"]["groups"]
            rs = [r for g in groups for r in g["rules"]]
            return rs if rs and all(r.get("lastEvaluation", "").startswith("20") and not r["lastEvaluation"].startswith("0001") for r in rs) else None
        time.sleep(2.5)
        rs = wait_for("every rule evaluated", rules_evaluated, 30)
        bad = [(r["name"], r.get("lastError")) for r in rs if r.get("health") != "ok"]
        if bad:
            fail(f"rules that do not evaluate: {bad}")
        log(f"1. all {len(rs)} rules evaluate with health ok")

        # 2. the host rules match node_exporter's real label sets; node_* names exist.
        node_text = urllib.request.urlopen(f"http://127.0.0.1:{ports['node']}/metrics", timeout=5).read().decode()
        exposed = {m.group(1) for m in re.finditer(r"(?m)^([a-zA-Z_:][a-zA-Z0-9_:]*)[{ ]", node_text)}
        used = promql_names.names(os.path.join(MON, "alerts.yml"), os.path.join(MON, "grafana-dashboard.json"))
        missing = sorted(n for n in used if n.startswith("node_") and n not in exposed)
        if missing:
            fail(f"node_* names used by the rules/dashboard that the real node_exporter does not expose: {missing}")
        log(f"2. the {sum(n.startswith('node_') for n in used)} node_* names used are all exposed by node_exporter 1.5")
        docs = {}
        for g in __import__("yaml").safe_load(rules)["groups"]:
            for r in g["rules"]:
                docs.setdefault(r["alert"], r["expr"])
        for alert in ("BarnabeeDiskFreeLow", "BarnabeeMemoryAvailableLow", "BarnabeeLoadHigh"):
            lhs = re.sub(r"\s*[<>]=?\s*[0-9.]+\s*$", "", docs[alert].strip())
            res = query(f"({lhs}) >= 0")
            if not res or any(s["metric"].get("host") != HOST for s in res):
                fail(f"{alert}: its expression without threshold returns {res!r} on real node_exporter data")
            vals = ", ".join(f"{s['metric'].get('mountpoint', '')}{'=' if 'mountpoint' in s['metric'] else ''}{float(s['value'][1]):.3f}" for s in res[:3])
            log(f"   {alert}: {len(res)} series with host={HOST} ({vals})")

        # 3. every dashboard query executes.
        dq = promql_names.dashboard_rules(os.path.join(MON, "grafana-dashboard.json"))["groups"][0]["rules"]
        with_data = 0
        for r in dq:
            with_data += bool(query(r["expr"]))
        log(f"3. all {len(dq)} dashboard queries execute ({with_data} return data: node_exporter and up)")

        # 4. the fault: barnabee-voice's port closes.
        t_fault = time.monotonic()
        target.stop()
        log("4. barnabee-voice's target stopped: its port is closed")

        def firing():
            alive()
            for a in get_json(f"{prom}/api/v1/alerts")["data"]["alerts"]:
                if a["labels"].get("alertname") == "BarnabeeUnitDown" and a["labels"].get("job") == "barnabee-voice" and a["state"] == "firing":
                    return a
        a = wait_for("BarnabeeUnitDown firing at Prometheus", firing, 60)
        t_firing = time.monotonic()
        want = {"alertname": "BarnabeeUnitDown", "severity": "critical", "host": HOST, "job": "barnabee-voice"}
        if any(a["labels"].get(k) != v for k, v in want.items()):
            fail(f"firing alert labels {a['labels']}, want {want}")
        log(f"   BarnabeeUnitDown firing at Prometheus {t_firing - t_fault:.1f} s after the fault")

        got = wait_for("the firing notification at the sink", lambda: sink.find("BarnabeeUnitDown", "firing", "barnabee-voice"), 90)
        t_notified, msg, alert = got
        body = msg["body"]
        problems = []
        if msg["path"] != "/v1/notify/alertmanager":
            problems.append(f"path {msg['path']}")
        if body.get("version") != "4" or body.get("receiver") != "barnabee-notifier" or body.get("status") != "firing":
            problems.append(f"version/receiver/status {body.get('version')}/{body.get('receiver')}/{body.get('status')}")
        if body.get("groupLabels") != {"alertname": "BarnabeeUnitDown", "host": HOST}:
            problems.append(f"groupLabels {body.get('groupLabels')}")
        if not alert["annotations"].get("summary", "").startswith("barnabee-voice on beelink") or "journalctl -u barnabee-voice" not in alert["annotations"].get("description", ""):
            problems.append(f"annotations {alert['annotations']}")
        if problems:
            fail("the notification is not what the notifier expects: " + "; ".join(problems))
        log(f"   notification delivered {t_notified - t_fault:.1f} s after the fault "
            f"({t_notified - t_firing:.1f} s after firing: group_wait 10s): receiver {body['receiver']}, "
            f"summary {alert['annotations']['summary']!r}")

        t_notifier = None
        if args.watchdog_bin:
            title = "barnabee-voice on beelink is not answering /metrics"
            t_notifier, m = wait_for("the real notifier's webhook message", lambda: sink.find_notifier("firing", title), 30)
            tags = m["body"].get("tags")
            if tags != ["barnabee", "critical", "firing", "alertmanager"] or m["body"].get("priority") != 5:
                fail(f"the notifier's message is not a critical firing alertmanager one: {m['body']}")
            log(f"   the real watchdog notifier delivered it {t_notifier - t_fault:.1f} s after the fault: "
                f"title {m['body']['title']!r}, tags {tags}")

        # 5. the inhibit rules in the real Alertmanager.
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        ends = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 600))
        synthetic = [
            {"labels": {"alertname": "BarnabeeHttpErrors", "severity": "critical", "host": HOST, "job": "barnabee-voice"}},
            {"labels": {"alertname": "BarnabeeGpuHot", "severity": "critical", "host": "beast", "job": "barnabee-inference", "gpu": "0"}},
            {"labels": {"alertname": "BarnabeeGpuHot", "severity": "warning", "host": "beast", "job": "barnabee-inference", "gpu": "0"}},
            {"labels": {"alertname": "BarnabeeLoadHigh", "severity": "warning", "host": "beast", "job": "node"}},
        ]
        for s in synthetic:
            s.update(startsAt=now, endsAt=ends, annotations={"summary": "scenario: synthetic"})
        post_json(f"{am}/api/v2/alerts", synthetic)
        t_posted = time.monotonic()

        def states():
            out = {}
            for x in get_json(f"{am}/api/v2/alerts"):
                out[(x["labels"]["alertname"], x["labels"]["severity"], x["labels"]["host"])] = x["status"]
            return out if len(out) >= 5 else None
        expect = {
            ("BarnabeeHttpErrors", "critical", HOST): "suppressed",   # unit down inhibits its job's others
            ("BarnabeeGpuHot", "critical", "beast"): "active",
            ("BarnabeeGpuHot", "warning", "beast"): "suppressed",     # critical inhibits the warning
            ("BarnabeeLoadHigh", "warning", "beast"): "active",       # no critical, other job: untouched
        }

        def inhibition_settled():
            st = states()
            return st if st and all(st.get(k, {}).get("state") == v for k, v in expect.items()) else None
        st = wait_for("the inhibit rules to apply", inhibition_settled, 20)
        log("5. inhibition in Alertmanager: " + "; ".join(
            f"{k[0]}/{k[1]}@{k[2]} {st[k]['state']}" + (f" by {len(st[k]['inhibitedBy'])}" if st[k]["inhibitedBy"] else "")
            for k in expect))

        # Past the critical route's group_wait (10s): an uninhibited critical would be out by now.
        time.sleep(max(0.0, 15 - (time.monotonic() - t_posted)))
        if sink.find("BarnabeeHttpErrors", "firing"):
            fail("BarnabeeHttpErrors was notified while barnabee-voice was down (the unit-down inhibition did not hold)")
        log("   15 s later (past group_wait 10s) the inhibited critical has not been notified")

        # `barnabee status` shows what fires in this Alertmanager, critical first, not the
        # inhibited ones, and exits 1 because a critical fires (its daemon itself is healthy).
        if args.watchdog_bin:
            cli = os.path.join(os.path.dirname(args.watchdog_bin), "barnabee")
            r = subprocess.run([cli, "status", "--url", f"watchdog=http://127.0.0.1:{ports['watchdog']}",
                                "--alertmanager", am], capture_output=True, text=True, timeout=60)
            lines = r.stdout.splitlines()
            row = [ln for ln in lines if "BarnabeeUnitDown" in ln]
            if r.returncode != 1 or not row or not row[0].startswith("critical") \
                    or any("BarnabeeHttpErrors" in ln for ln in lines) \
                    or not any(ln.startswith("warning") and "BarnabeeLoadHigh" in ln for ln in lines):
                fail(f"barnabee status (exit {r.returncode}) does not show the firing alerts as expected:\n{r.stdout}{r.stderr}")
            log(f"   barnabee status lists {sum(1 for ln in lines if ln.startswith(('critical', 'warning')))} firing alerts "
                "(critical first, inhibited ones hidden) and exits 1")

        # 6. recovery.
        target.start()
        t_up = time.monotonic()
        log("6. barnabee-voice's target is back")

        def resolved_at_prometheus():
            alive()
            return not any(a["labels"].get("alertname") == "BarnabeeUnitDown" and a["labels"].get("job") == "barnabee-voice"
                           for a in get_json(f"{prom}/api/v1/alerts")["data"]["alerts"])
        wait_for("BarnabeeUnitDown to resolve at Prometheus", resolved_at_prometheus, 30)
        t_res = time.monotonic()
        log(f"   resolved at Prometheus {t_res - t_up:.1f} s after the target came back")
        got = wait_for("the resolved notification at the sink", lambda: sink.find("BarnabeeUnitDown", "resolved", "barnabee-voice"), 120)
        t_res_notified = got[0]
        log(f"   resolved notification delivered {t_res_notified - t_up:.1f} s after recovery (group_interval 1m)")
        t_notifier_res = None
        if args.watchdog_bin:
            t_notifier_res, m = wait_for("the real notifier's resolved message",
                                         lambda: sink.find_notifier("resolved", "barnabee-voice on beelink"), 30)
            log(f"   the real notifier delivered the resolution {t_notifier_res - t_up:.1f} s after recovery: "
                f"tags {m['body'].get('tags')}")

        # Inhibited means not notified: the suppressed warning never; the alert the unit-down
        # inhibited only once the unit is back (the inhibition lifts, it is still firing).
        with sink.lock:
            seen = [(t, a["labels"]) for t, m in sink.messages for a in m["body"].get("alerts", [])]
        if any(l["alertname"] == "BarnabeeGpuHot" and l["severity"] == "warning" for _, l in seen):
            fail("the warning inhibited by its critical was notified")
        early = [t for t, l in seen if l["alertname"] == "BarnabeeHttpErrors" and t < t_res]
        if early:
            fail(f"BarnabeeHttpErrors was notified {early[0] - t_fault:.1f} s after the fault, while barnabee-voice was down")
        log("   inhibited alerts were not notified while their inhibitor fired")

        others = sorted({a["labels"]["alertname"] + "/" + a["labels"].get("severity", "")
                         for _, m in sink.messages for a in m["body"].get("alerts", [])} - {"BarnabeeUnitDown/critical"})
        if args.watchdog_bin:
            figures_notifier = {"fault_to_notifier_message_s": round(t_notifier - t_fault, 1),
                                "recovery_to_notifier_resolved_s": round(t_notifier_res - t_up, 1)}
        else:
            figures_notifier = {"notifier": "not run (no --watchdog-bin)"}
        figures = {
            "fault_to_firing_s": round(t_firing - t_fault, 1),
            "fault_to_notification_s": round(t_notified - t_fault, 1),
            "recovery_to_resolved_s": round(t_res - t_up, 1),
            "recovery_to_resolved_notification_s": round(t_res_notified - t_up, 1),
            **figures_notifier,
            "rules_evaluated_ok": len(rs),
            "dashboard_queries_ok": len(dq),
            "notifications": len(sink.messages),
            "other_alerts_notified": others,
            "for_rewritten_to": FAST_FOR,
            "scenario_s": round(time.monotonic() - t_scenario, 1),
        }
        json.dump({"figures": figures, "messages": [m for _, m in sink.messages]}, open(os.path.join(args.out, "scenario.json"), "w"), indent=1)
        print("checks/monitoring scenario: PASS " + json.dumps(figures))
        return 0
    finally:
        for p in procs:
            if p.poll() is None:
                p.terminate()
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
