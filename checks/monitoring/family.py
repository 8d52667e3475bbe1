#!/usr/bin/env python3
"""The family's end-to-end alerting loop: a fault in a real Barnabee daemon reaches the family on
every channel of the real notifier, and so does the recovery.

Everything is real and on 127.0.0.1 free ports with temporary directories:
  - barnabee-memory, barnabee-agents, barnabee-voice and barnabee-watchdog from target/debug,
    with configs written here (the watchdog's notifier on: [notify.webhook], [notify.email],
    [notify.home_assistant]);
  - prometheus (Debian 2.42) with nixos-modules/monitoring/alerts.yml, scraping the daemons as
    jobs barnabee-<role> with host="beelink";
  - prometheus-alertmanager (Debian 0.25) with nixos-modules/monitoring/alertmanager.yml, its
    receiver URL rewritten to the watchdog's /v1/notify/alertmanager;
  - an SMTP server (aiosmtpd, in-process) for the e-mail channel;
  - Home Assistant Core 2024.3.3 (onboarded here; a long-lived token; notify.family through HA's
    `file` platform): persistent notifications are read back over HA's WebSocket
    (persistent_notification/get). barnabee-agents talks to the same HA.
The script's own stand-ins are only: the webhook sink (the ntfy/Gotify-style channel) and an
OpenAI-compatible LLM server (the cloud LLM cannot run here) whose answers cost $0.30 each.

!!! Every `for:` of alerts.yml is rewritten to 3s, so the faults notify in seconds, not minutes;  !!!
!!! the real durations are pinned by alerts.test.yml (promtool test rules), not here.           !!!
!!! alertmanager.yml's warning route group_interval is shortened from 5m to 20s so the resolved  !!!
!!! warning (scenario 3) arrives within the run; everything else (group_wait 10s/1m, critical    !!!
!!! group_interval 1m, inhibit rules, send_resolved) is the shipped file.                        !!!
!!! barnabee-agents' budget governor: yellow_at 0.95, red_at 1.0 (shipped 0.5/0.8) so the only   !!!
!!! (cloud) provider keeps answering past 50 %; the alert thresholds are alerts.yml's.            !!!

Scenarios (run together; their alerts are different groups):
  1. SIGTERM barnabee-voice -> BarnabeeUnitDown (critical) -> webhook, e-mail and an HA
     persistent notification; start it again -> "Resolved:" on the webhook, a RESOLVED e-mail,
     the HA persistent notification dismissed.
  2. LLM spend: answers at $0.30 against [budget] daily_limit_usd = 1.0: at 60 % the
     BarnabeeLlmDailyCostHigh warning is notified (warning route, group_wait 1m); at 90 % the
     critical is notified and, per alertmanager.yml's first inhibit rule, the warning is
     suppressed at Alertmanager and nothing more is sent for it (no resolved message either).
  3. The memory replica (type "file") is replaced by a regular file: uploads fail, a memory is
     written, barnabee_replication_lag_seconds passes 60 s -> BarnabeeReplicationLag (warning)
     notified (BarnabeeReplicationErrors too); the directory is restored -> the lag drains ->
     resolved on every channel.
  4. The webhook sink is closed while scenario 1's alert is delivered: the other channels are
     not held up, the watchdog's /health shows `notify` degraded naming `webhook`, and the
     message is delivered once the sink is back (queued, never lost).
It prints seconds from fault to notification and from recovery to the resolved message, per
scenario and channel, and writes them with every message to OUT/family.json (logs beside it).
"""
from __future__ import annotations

import argparse
import base64
import email
import email.policy
import http.server
import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import urllib.parse
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
MON = os.path.join(ROOT, "nixos-modules", "monitoring")
NOTIFIER_URL = "http://127.0.0.1:7705/v1/notify/alertmanager"
FAST_FOR = "3s"
WARNING_GROUP_INTERVAL = "20s"
HOST = "beelink"
COST_PER_ANSWER = 0.30  # 300 completion tokens at $1000 per million

T0 = time.monotonic()


def now() -> float:
    return time.monotonic()


def log(msg: str) -> None:
    print(f"  [{time.strftime('%H:%M:%S')} +{now() - T0:5.1f}s] {msg}", flush=True)


class Fail(Exception):
    pass


def fail(msg: str):
    raise Fail(msg)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_json(url: str, body=None, token: str | None = None, timeout: float = 10.0, method: str | None = None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            raw = r.read()
            return r.status, (json.loads(raw) if raw else None)
    except urllib.error.HTTPError as e:
        raw = e.read()
        try:
            return e.code, json.loads(raw)
        except ValueError:
            return e.code, raw.decode(errors="replace")


def wait_for(what: str, fn, timeout: float, every: float = 0.25):
    deadline = now() + timeout
    last_err = None
    while now() < deadline:
        try:
            v = fn()
            if v:
                return v
        except Fail:
            raise
        except Exception as e:  # noqa: BLE001 (a peer not up yet)
            last_err = e
        time.sleep(every)
    fail(f"timed out after {timeout:.0f} s waiting for {what}" + (f" (last error: {last_err!r})" if last_err else ""))


# --- the webhook sink: the watchdog's ntfy/Gotify-style channel ----------------------------------
class Sink:
    """Can be closed (the port refuses connections) and reopened on the same port."""

    def __init__(self) -> None:
        self.messages: list[tuple[float, dict]] = []
        self.lock = threading.Lock()
        self.port = free_port()
        self.server = None
        self.open()

    def open(self) -> None:
        sink = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with sink.lock:
                    sink.messages.append((now(), json.loads(body)))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *a):
                pass

        http.server.ThreadingHTTPServer.allow_reuse_address = True
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.server = None

    def find(self, pred, since: float = 0.0):
        with self.lock:
            for t, b in self.messages:
                if t >= since and pred(b):
                    return t, b
        return None


# --- the OpenAI-compatible stand-in for the cloud LLM ---------------------------------------------
class FakeLlm:
    def __init__(self) -> None:
        self.requests = 0
        llm = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                req = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                llm.requests += 1
                usage = {"prompt_tokens": 20, "completion_tokens": 300, "total_tokens": 320}
                text = "Here is a joke from the stand-in cloud."
                if req.get("stream"):
                    chunks = [{"object": "chat.completion.chunk", "model": req.get("model"),
                               "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}]},
                              {"choices": [], "usage": usage}]
                    body = "".join(f"data: {json.dumps(c)}\n\n" for c in chunks) + "data: [DONE]\n\n"
                    ctype = "text/event-stream"
                else:
                    body = json.dumps({"object": "chat.completion", "model": req.get("model"), "usage": usage,
                                       "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                                                    "finish_reason": "stop"}]})
                    ctype = "application/json"
                data = body.encode()
                self.send_response(200)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *a):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


# --- the SMTP server (aiosmtpd) ------------------------------------------------------------------
class Smtp:
    def __init__(self) -> None:
        from aiosmtpd.controller import Controller  # noqa: PLC0415 (in .venv: dev/setup)

        self.messages: list[tuple[float, str, str]] = []  # (time, subject, body)
        self.lock = threading.Lock()
        smtp = self

        class Handler:
            async def handle_DATA(self, server, session, envelope):  # noqa: N802
                msg = email.message_from_bytes(envelope.original_content or envelope.content, policy=email.policy.default)
                body = msg.get_body(preferencelist=("plain",))
                with smtp.lock:
                    smtp.messages.append((now(), str(msg["subject"]), body.get_content() if body else ""))
                return "250 OK"

        self.port = free_port()
        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def find(self, pred, since: float = 0.0):
        with self.lock:
            for t, subject, body in self.messages:
                if t >= since and pred(subject, body):
                    return t, subject
        return None

    def stop(self) -> None:
        self.controller.stop()


# --- Home Assistant ------------------------------------------------------------------------------
HA_CONFIG = """
homeassistant:
  name: Test Home
  latitude: 52.3731
  longitude: 4.8922
  elevation: 0
  unit_system: metric
  time_zone: UTC
  currency: EUR
  country: NL
  language: en
http:
  server_host: 127.0.0.1
  server_port: __PORT__
logger:
  default: warning
api:
websocket_api:
onboarding:
notify:
  - name: family
    platform: file
    filename: family.txt
"""


def hass_binary() -> str:
    p = os.environ.get("BARNABEE_TEST_HASS")
    if p:
        return p
    cache = os.environ.get("BARNABEE_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.environ.get("HOME", "/"), ".cache"), "barnabee")
    for cand in (os.path.join(cache, "tools", "home-assistant", "bin", "hass"), os.path.join(cache, "home-assistant", "bin", "hass")):
        if os.path.exists(cand):
            return cand
    return os.path.join(cache, "home-assistant", "bin", "hass")


class WebSocket:
    """A minimal RFC 6455 client (text frames) for HA's /api/websocket: the stdlib has none."""

    def __init__(self, host: str, port: int, path: str) -> None:
        self.s = socket.create_connection((host, port), timeout=10)
        key = base64.b64encode(os.urandom(16)).decode()
        self.s.sendall((f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.s.recv(1)
            if not chunk:
                raise ConnectionError("websocket handshake: connection closed")
            head += chunk
        if b" 101 " not in head.split(b"\r\n", 1)[0]:
            raise ConnectionError(f"websocket handshake: {head[:200]!r}")

    def _read(self, n: int) -> bytes:
        out = b""
        while len(out) < n:
            chunk = self.s.recv(n - len(out))
            if not chunk:
                raise ConnectionError("websocket closed")
            out += chunk
        return out

    def send(self, obj) -> None:
        data = json.dumps(obj).encode()
        mask = os.urandom(4)
        n = len(data)
        head = bytes([0x81])
        if n < 126:
            head += bytes([0x80 | n])
        elif n < 65536:
            head += bytes([0x80 | 126]) + struct.pack(">H", n)
        else:
            head += bytes([0x80 | 127]) + struct.pack(">Q", n)
        self.s.sendall(head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data)))

    def recv(self):
        payload = b""
        while True:
            b0, b1 = self._read(2)
            n = b1 & 0x7F
            if n == 126:
                n = struct.unpack(">H", self._read(2))[0]
            elif n == 127:
                n = struct.unpack(">Q", self._read(8))[0]
            mask = self._read(4) if b1 & 0x80 else None
            data = self._read(n)
            if mask:
                data = bytes(b ^ mask[i % 4] for i, b in enumerate(data))
            op = b0 & 0x0F
            if op == 8:
                raise ConnectionError("websocket closed by HA")
            if op in (9, 10):  # ping/pong
                continue
            payload += data
            if b0 & 0x80:
                return json.loads(payload)

    def close(self) -> None:
        self.s.close()


class Hass:
    def __init__(self, binary: str, dir_: str, log_path: str) -> None:
        self.port = free_port()
        self.dir = dir_
        self.base = f"http://127.0.0.1:{self.port}"
        os.makedirs(dir_, exist_ok=True)
        open(os.path.join(dir_, "configuration.yaml"), "w").write(HA_CONFIG.replace("__PORT__", str(self.port)))
        self.log_path = log_path
        self.proc = subprocess.Popen([binary, "-c", dir_, "--skip-pip"], stdout=open(log_path, "w"),
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        self.token = None
        # notification_id -> {"title", "message", "seen": t, "gone": t|None}
        self.seen: dict[str, dict] = {}
        self.lock = threading.Lock()
        self.poll_error = None

    def alive(self) -> None:
        if self.proc.poll() is not None:
            fail(f"Home Assistant exited with {self.proc.returncode} (log {self.log_path})")

    def setup(self) -> str:
        """Onboard the owner, then a long-lived access token over the WebSocket."""
        def onboarding_open():
            self.alive()
            return http_json(f"{self.base}/api/onboarding", timeout=3)[0] == 200
        wait_for("Home Assistant's HTTP API", onboarding_open, 180, every=0.5)
        cid = f"{self.base}/"
        st, v = http_json(f"{self.base}/api/onboarding/users", {"client_id": cid, "name": "Test Admin", "username": "admin",
                                                              "password": "admin-password", "language": "en"})
        if st != 200:
            fail(f"HA onboarding: {st} {v}")
        form = urllib.parse.urlencode({"grant_type": "authorization_code", "code": v["auth_code"], "client_id": cid}).encode()
        with urllib.request.urlopen(urllib.request.Request(f"{self.base}/auth/token", data=form), timeout=10) as r:
            access = json.load(r)["access_token"]
        res = self.ws([{"type": "auth/long_lived_access_token", "client_name": "barnabee-family-check", "lifespan": 1}], access)
        self.token = res[0]
        wait_for("HA running with notify.family", lambda: self.alive() or (
            http_json(f"{self.base}/api/config", token=self.token)[1].get("state") == "RUNNING"
            and any(d["domain"] == "notify" and "family" in d["services"]
                    for d in http_json(f"{self.base}/api/services", token=self.token)[1])), 120, every=0.5)
        return self.token

    def ws(self, commands: list[dict], token: str | None = None) -> list:
        w = WebSocket("127.0.0.1", self.port, "/api/websocket")
        try:
            w.recv()  # auth_required
            w.send({"type": "auth", "access_token": token or self.token})
            r = w.recv()
            if r.get("type") != "auth_ok":
                fail(f"HA websocket auth: {r}")
            out = []
            for i, c in enumerate(commands, 1):
                w.send(dict(c, id=i))
                while True:
                    r = w.recv()
                    if r.get("id") == i and r.get("type") == "result":
                        if not r.get("success"):
                            fail(f"HA websocket {c['type']}: {r}")
                        out.append(r["result"])
                        break
            return out
        finally:
            w.close()

    def poll_forever(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                (lst,) = self.ws([{"type": "persistent_notification/get"}])
                t = now()
                ids = set()
                with self.lock:
                    for n in lst:
                        nid = n["notification_id"]
                        ids.add(nid)
                        if nid not in self.seen or self.seen[nid]["gone"] is not None:
                            self.seen[nid] = {"title": n.get("title") or "", "message": n.get("message") or "", "seen": t, "gone": None}
                    for nid, e in self.seen.items():
                        if nid not in ids and e["gone"] is None:
                            e["gone"] = t
                self.poll_error = None
            except Exception as e:  # noqa: BLE001 (reported when a wait times out)
                self.poll_error = repr(e)
            stop.wait(0.4)

    def notification(self, nid: str):
        with self.lock:
            e = self.seen.get(nid)
            return dict(e) if e else None

    def first_seen_since(self, t: float, title: str):
        with self.lock:
            return min((e["seen"] for e in self.seen.values() if e["seen"] >= t and e["title"] == title), default=None)

    def family_txt(self) -> str:
        try:
            return open(os.path.join(self.dir, "family.txt")).read()
        except OSError:
            return ""

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


# --- the family's view: one alert on every channel -----------------------------------------------
class Family:
    def __init__(self, sink: Sink, smtp: Smtp, hass: Hass, am: str) -> None:
        self.sink, self.smtp, self.hass, self.am = sink, smtp, hass, am

    def fingerprint(self, alertname: str, severity: str, timeout: float = 60, job: str | None = None) -> str:
        def fp():
            for a in http_json(f"{self.am}/api/v2/alerts")[1]:
                if a["labels"].get("alertname") == alertname and a["labels"].get("severity") == severity \
                        and (job is None or a["labels"].get("job") == job):
                    return a["fingerprint"]
        return wait_for(f"{alertname}/{severity} at Alertmanager", fp, timeout)

    def firing(self, title_re: str, severity: str, fingerprint: str, since: float) -> dict:
        """The first arrival time on each channel of a firing alert after `since` (None: not yet)."""
        rx = re.compile(title_re)
        w = self.sink.find(lambda b: rx.search(b.get("title", "")) and not b["title"].startswith("Resolved:")
                           and "firing" in b.get("tags", []) and severity in b.get("tags", []), since)
        pre = f"[Barnabee {severity.upper()}] "
        e = self.smtp.find(lambda s, _b: s.startswith(pre) and rx.search(s[len(pre):]), since)
        n = self.hass.notification(f"barnabee_am_{fingerprint}")
        h = n["seen"] if n and n["seen"] >= since and rx.search(n["title"]) else None
        return {"webhook": w and w[0], "email": e and e[0], "home_assistant": h}

    def resolved(self, title_re: str, fingerprint: str, since: float) -> dict:
        rx = re.compile(title_re)
        w = self.sink.find(lambda b: b.get("title", "").startswith("Resolved: ") and rx.search(b["title"][len("Resolved: "):])
                           and "resolved" in b.get("tags", []), since)
        pre = "[Barnabee RESOLVED] Resolved: "
        e = self.smtp.find(lambda s, _b: s.startswith(pre) and rx.search(s[len(pre):]), since)
        n = self.hass.notification(f"barnabee_am_{fingerprint}")
        h = n["gone"] if n and n["gone"] and n["gone"] >= since else None
        return {"webhook": w and w[0], "email": e and e[0], "home_assistant": h}

    def wait_all(self, what: str, fn, timeout: float, channels=("webhook", "email", "home_assistant")) -> dict:
        deadline = now() + timeout
        got = {}
        while now() < deadline:
            got = fn()
            if all(got.get(c) for c in channels):
                return got
            time.sleep(0.25)
        missing = [c for c in channels if not got.get(c)]
        extra = f" (HA poll error: {self.hass.poll_error})" if self.hass.poll_error else ""
        fail(f"{what}: not delivered on {missing} within {timeout:.0f} s (got {sorted(c for c in got if got[c])}){extra}")


# --- the daemons ---------------------------------------------------------------------------------
class Daemon:
    def __init__(self, role: str, binary: str, config: str, port: int, state: str, out: str) -> None:
        self.role, self.binary, self.config, self.port, self.state, self.out = role, binary, config, port, state, out
        self.proc = None
        self.starts = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if k not in ("NOTIFY_SOCKET", "CREDENTIALS_DIRECTORY", "RUST_LOG", "INVOCATION_ID", "JOURNAL_STREAM")}
        env["STATE_DIRECTORY"] = self.state
        env["DBUS_SYSTEM_BUS_ADDRESS"] = "unix:path=/nonexistent/bus"
        self.starts += 1
        logf = open(os.path.join(self.out, f"{self.role}.log"), "a")
        logf.write(f"--- start {self.starts} at +{now() - T0:.1f}s\n")
        logf.flush()
        self.proc = subprocess.Popen([self.binary, "--config", self.config], stdout=logf, stderr=subprocess.STDOUT,
                                     cwd=self.state, env=env, start_new_session=True)

    def wait_serving(self, timeout: float = 60) -> None:
        def up():
            if self.proc.poll() is not None:
                fail(f"barnabee-{self.role} exited with {self.proc.returncode} (log {self.out}/{self.role}.log)")
            return http_json(f"{self.url}/health", timeout=3)[0] in (200, 503)
        wait_for(f"barnabee-{self.role} serving /health", up, timeout)

    def stop(self, sig=signal.SIGTERM, timeout: float = 20) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def service_toml(port: int) -> str:
    return f'[service]\nlisten = "127.0.0.1:{port}"\ndrain_timeout = 2\n[service.log]\ntarget = "stderr"\nlevel = "info"\n'


def tail(path: str, n: int = 40) -> str:
    """The last n distinct lines (a repeated line once, with its count: retry loops repeat)."""
    try:
        lines = open(path, errors="replace").read().splitlines()
    except OSError:
        return "(no log)"
    count: dict[str, int] = {}
    for line in lines:
        count[line] = count.get(line, 0) + 1
    out, seen = [], set()
    for line in reversed(lines):
        if line not in seen:
            seen.add(line)
            out.append(line + (f"   (x{count[line]})" if count[line] > 1 else ""))
        if len(out) == n:
            break
    return "\n".join(reversed(out))


# --- main ----------------------------------------------------------------------------------------
# --broken CASE: one fault the scenarios must catch (expect FAIL naming it).
BROKEN = {
    "ha-token-wrong": "the watchdog's Home Assistant token_file holds a wrong token: no HA notification",
    "no-send-resolved": "alertmanager.yml with send_resolved: false: no resolved message on any channel",
    "email-min-critical": "[notify.email] min_severity = critical: the warnings never reach the mailbox",
}


def missing_peer(what: str) -> int:
    if os.environ.get("CI") == "true":
        print(f"checks/monitoring family: FAIL: {what} is missing; CI must have it (dev/setup, dev/setup monitoring, "
              "dev/setup home-assistant)", file=sys.stderr)
        return 1
    print(f"\n\033[1;33m!!! checks/monitoring family SKIPPED: {what} is missing (dev/setup; dev/setup monitoring; "
          f"dev/setup home-assistant) !!!\033[0m\n", file=sys.stderr)
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.path.join(ROOT, "target", "monitoring", "family"))
    ap.add_argument("--bin-dir", default=os.path.join(ROOT, "target", "debug"))
    ap.add_argument("--broken", choices=sorted(BROKEN), help="break one thing first, to see it FAIL: " +
                    "; ".join(f"{k}: {v}" for k, v in sorted(BROKEN.items())))
    args = ap.parse_args()
    if args.broken:
        print(f"!!! family: --broken {args.broken} ({BROKEN[args.broken]}); expect FAIL !!!")

    for tool in ("prometheus", "prometheus-alertmanager"):
        if not shutil.which(tool):
            return missing_peer(tool)
    import importlib.util  # noqa: PLC0415
    for mod in ("aiosmtpd", "yaml"):
        if importlib.util.find_spec(mod) is None:
            return missing_peer(f"{mod} (python: {sys.executable}; dev/setup installs it in .venv)")
    hass_bin = hass_binary()
    if not os.access(hass_bin, os.X_OK):
        return missing_peer(f"Home Assistant Core ({hass_bin}; or set BARNABEE_TEST_HASS)")
    bins = {r: os.path.join(args.bin_dir, f"barnabee-{r}") for r in ("memory", "agents", "voice", "watchdog")}
    for b in bins.values():
        if not os.access(b, os.X_OK):
            print(f"checks/monitoring family: FAIL: {b} is missing (dev/test builds it first)", file=sys.stderr)
            return 1

    shutil.rmtree(args.out, ignore_errors=True)
    os.makedirs(args.out)
    work = tempfile.mkdtemp(prefix="barnabee-family-")
    procs: list[subprocess.Popen] = []
    daemons: dict[str, Daemon] = {}
    stop_polling = threading.Event()
    smtp = hass = None
    results: dict = {"scenarios": {}, "notes": []}
    ok = False
    try:
        import yaml  # noqa: PLC0415

        sink = Sink()
        llm = FakeLlm()
        smtp = Smtp()
        ports = {k: free_port() for k in ("prom", "am", "memory", "agents", "voice", "watchdog")}
        log(f"webhook sink :{sink.port}, LLM stand-in {llm.base}, SMTP (aiosmtpd) :{smtp.port}")

        # Home Assistant first: it takes the longest to start.
        hass = Hass(hass_bin, os.path.join(work, "ha"), os.path.join(args.out, "home-assistant.log"))
        log(f"started Home Assistant (pid {hass.proc.pid}) {hass.base}: {hass_bin}")

        # alerts.yml with every for: at 3s; alertmanager.yml's receiver -> the watchdog.
        rules = open(os.path.join(MON, "alerts.yml")).read()
        fast, n = re.subn(r"(?m)^(\s+for:\s*)\S+\s*$", rf"\g<1>{FAST_FOR}", rules)
        print(f"!!! family: {n} `for:` durations of alerts.yml rewritten to {FAST_FOR} (promtool tests pin the real ones) !!!")
        open(os.path.join(work, "alerts.yml"), "w").write(fast)
        am_cfg = open(os.path.join(MON, "alertmanager.yml")).read()
        if am_cfg.count(NOTIFIER_URL) != 1:
            fail(f"alertmanager.yml does not name the notifier URL {NOTIFIER_URL} exactly once")
        if args.broken == "no-send-resolved":
            am_cfg = am_cfg.replace("send_resolved: true", "send_resolved: false")
        doc = yaml.safe_load(am_cfg.replace(NOTIFIER_URL, f"http://127.0.0.1:{ports['watchdog']}/v1/notify/alertmanager"))
        (warn_route,) = [r for r in doc["route"]["routes"] if r.get("matchers") == ['severity="warning"']]
        shipped_gi = warn_route["group_interval"]
        warn_route["group_interval"] = WARNING_GROUP_INTERVAL
        print(f"!!! family: alertmanager.yml's warning route group_interval {shipped_gi} -> {WARNING_GROUP_INTERVAL} "
              "(so the resolved warning arrives within the run); all other timings as shipped !!!")
        open(os.path.join(work, "alertmanager.yml"), "w").write(yaml.safe_dump(doc, sort_keys=False))
        crit_route = [r for r in doc["route"]["routes"] if r.get("matchers") == ['severity="critical"']][0]
        results["timings"] = {"for": FAST_FOR, "critical": {k: crit_route[k] for k in ("group_wait", "group_interval")},
                              "warning": {"group_wait": warn_route["group_wait"], "group_interval": WARNING_GROUP_INTERVAL,
                                          "group_interval_shipped": shipped_gi}}

        prom_cfg = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s", "scrape_timeout": "900ms"},
            "rule_files": [os.path.join(work, "alerts.yml")],
            "alerting": {"alertmanagers": [{"static_configs": [{"targets": [f"127.0.0.1:{ports['am']}"]}]}]},
            "scrape_configs": [{"job_name": f"barnabee-{r}", "static_configs": [
                {"targets": [f"127.0.0.1:{ports[r]}"], "labels": {"host": HOST}}]} for r in ("memory", "agents", "voice", "watchdog")],
        }
        open(os.path.join(work, "prometheus.yml"), "w").write(json.dumps(prom_cfg, indent=1))

        def spawn(name: str, argv: list[str]) -> None:
            procs.append(subprocess.Popen(argv, stdout=open(os.path.join(args.out, f"{name}.log"), "w"),
                                          stderr=subprocess.STDOUT, cwd=work, start_new_session=True))
            log(f"started {name} (pid {procs[-1].pid})")

        spawn("alertmanager", ["prometheus-alertmanager", f"--config.file={work}/alertmanager.yml",
                               f"--storage.path={work}/am", f"--web.listen-address=127.0.0.1:{ports['am']}",
                               "--cluster.listen-address="])
        prom = f"http://127.0.0.1:{ports['prom']}"
        am = f"http://127.0.0.1:{ports['am']}"

        token = hass.setup()
        secrets = os.path.join(work, "secrets")
        os.makedirs(secrets, mode=0o700)
        token_file = os.path.join(secrets, "ha-token")
        with os.fdopen(os.open(token_file, os.O_WRONLY | os.O_CREAT, 0o600), "w") as f:
            f.write(token)
        wd_token_file = token_file
        if args.broken == "ha-token-wrong":
            wd_token_file = os.path.join(secrets, "ha-token-wrong")
            with os.fdopen(os.open(wd_token_file, os.O_WRONLY | os.O_CREAT, 0o600), "w") as f:
                f.write(token[:-4] + "AAAA")
        log("Home Assistant onboarded: long-lived token, notify.family ready")

        # The daemons' configs.
        def daemon(role: str, text: str) -> Daemon:
            state = os.path.join(work, role)
            os.makedirs(state, exist_ok=True)
            cfg = os.path.join(work, f"{role}.toml")
            open(cfg, "w").write(text)
            shutil.copy(cfg, os.path.join(args.out, f"{role}.toml"))
            d = Daemon(role, bins[role], cfg, ports[role], state, args.out)
            daemons[role] = d
            return d

        replica = os.path.join(work, "memory", "replica")
        daemon("memory", service_toml(ports["memory"]) +
               f'[database]\npath = "{work}/memory/memory.db"\n'
               f'[replication]\ntype = "file"\npath = "{replica}"\nsync_interval = 1\nrestore_if_missing = false\n')
        daemon("agents", f'state_dir = "{work}/agents"\n' + service_toml(ports["agents"]) +
               f'[home_assistant]\nurl = "{hass.base}"\ntoken_file = "{token_file}"\n'
               '[llm]\nstream = false\n'
               f'[[llm.providers]]\nname = "cloud"\nbase_url = "{llm.base}"\nmodel = "cloud-model"\nlocal = false\ntimeout = 10\nmax_tokens = 300\n'
               '[llm.prices."cloud-model"]\ninput = 0.0\noutput = 1000.0\n'
               '[budget]\ndaily_limit_usd = 1.0\nmonthly_limit_usd = 100.0\nyellow_at = 0.95\nred_at = 1.0\n'
               f'[memory]\nurl = "http://127.0.0.1:{ports["memory"]}"\n')
        daemon("voice", service_toml(ports["voice"]) +
               f'[audio]\nenabled = false\n[inference]\nwyoming = "127.0.0.1:{free_port()}"\n'
               f'[agents]\nurl = "http://127.0.0.1:{ports["agents"]}"\n')
        daemon("watchdog", f'state_dir = "{work}/watchdog"\n' + service_toml(ports["watchdog"]) +
               '[thresholds]\ninterval = 3600\ndisk_paths = []\nmemory_warn_available_gb = 0\n'
               'memory_critical_available_gb = 0\nload_warn_per_cpu = 1000\nload_critical_per_cpu = 1000\n'
               '[notify]\nbackoff_initial = 0.5\nbackoff_max = 2\ntimeout = 10\n'
               f'[notify.webhook]\nurl = "http://127.0.0.1:{sink.port}/ntfy/barnabee"\nmin_severity = "info"\n'
               f'[notify.email]\nhost = "127.0.0.1"\nport = {smtp.port}\nsecurity = "none"\n'
               'from = "Barnabee <barnabee@family.test>"\nto = ["anna@family.test"]\n'
               f'min_severity = "{"critical" if args.broken == "email-min-critical" else "info"}"\n'
               f'[notify.home_assistant]\nurl = "{hass.base}"\ntoken_file = "{wd_token_file}"\nservices = ["family"]\n'
               'persistent = true\nmin_severity = "info"\n')
        for d in daemons.values():
            d.start()
        for d in daemons.values():
            d.wait_serving()
        log("barnabee-memory, -agents, -voice, -watchdog serving")
        # Prometheus only now: a daemon still starting would be a (real) BarnabeeUnitDown.
        spawn("prometheus", ["prometheus", f"--config.file={work}/prometheus.yml", f"--storage.tsdb.path={work}/tsdb",
                             f"--web.listen-address=127.0.0.1:{ports['prom']}"])

        def alive() -> None:
            for p in procs:
                if p.poll() is not None:
                    fail(f"{p.args[0]} exited with {p.returncode} (log in {args.out})")
            hass.alive()

        def query(expr: str):
            alive()
            st, r = http_json(f"{prom}/api/v1/query?" + urllib.parse.urlencode({"query": expr}))
            if st != 200 or r.get("status") != "success":
                fail(f"query {expr!r}: {st} {r}")
            return r["data"]["result"]

        wait_for("Prometheus and Alertmanager ready", lambda: all(
            urllib.request.urlopen(u, timeout=2).status == 200 for u in (f"{prom}/-/ready", f"{am}/-/ready")), 60)
        wait_for("every daemon scraped up", lambda: len(query('up{job=~"barnabee-.*"} == 1')) == 4, 30)
        log("Prometheus scrapes barnabee-memory, -agents, -voice, -watchdog (up == 1)")

        # The notifier delivers on every channel before any fault (POST /v1/notify/test).
        fam = Family(sink, smtp, hass, am)
        stop_polling.clear()
        threading.Thread(target=hass.poll_forever, args=(stop_polling,), daemon=True).start()
        st, v = http_json(f"{daemons['watchdog'].url}/v1/notify/test", {})
        if st != 200:
            fail(f"POST /v1/notify/test: {st} {v}")
        t_test = now()
        fam.wait_all("POST /v1/notify/test", lambda: {
            "webhook": (sink.find(lambda b: "test" in b.get("tags", [])) or [None])[0],
            "email": (smtp.find(lambda s, b: "test notification" in s) or [None])[0],
            "home_assistant": hass.first_seen_since(t_test, "Barnabee test notification")}, 30)
        log("POST /v1/notify/test reached the webhook, e-mail and Home Assistant")

        # Scenario 3's replication works before it is broken.
        mem = daemons["memory"].url

        def write_memory(summary: str) -> None:
            st, v = http_json(f"{mem}/v1/memories", {"summary": summary, "memory_type": "fact", "owner": "family", "source": "family-check"})
            if st not in (200, 201):
                fail(f"POST /v1/memories: {st} {v}")

        def lag():
            r = query(f'barnabee_replication_lag_seconds{{job="barnabee-memory",host="{HOST}"}}')
            return float(r[0]["value"][1]) if r else None

        write_memory("The bins go out on Tuesday.")
        wait_for("the first memory shipped to the replica", lambda: os.path.isdir(replica) and os.listdir(replica) and lag() == 0.0, 30)
        time.sleep(2)
        firing_before = {a["labels"]["alertname"] + "/" + a["labels"].get("severity", "")
                         for a in http_json(f"{prom}/api/v1/alerts")[1]["data"]["alerts"] if a["state"] == "firing"}
        if firing_before:
            results["notes"].append(f"firing before any fault: {sorted(firing_before)}")
            log(f"note: firing before any fault: {sorted(firing_before)}")

        rows: list[tuple] = []  # (scenario, channel, fault->notified, recovery->resolved)
        errors: list[str] = []

        def run(name: str, fn):
            def wrapper():
                try:
                    fn()
                except Fail as e:
                    errors.append(f"{name}: {e}")
                except Exception:  # noqa: BLE001
                    errors.append(f"{name}: {traceback.format_exc()}")
            t = threading.Thread(target=wrapper, name=name, daemon=True)
            t.start()
            return t

        def record(scn: str, fired: dict, t_fault: float, resolved: dict | None = None, t_rec: float | None = None) -> None:
            for ch in ("webhook", "email", "home_assistant"):
                rows.append((scn, ch, round(fired[ch] - t_fault, 1),
                             round(resolved[ch] - t_rec, 1) if resolved and resolved.get(ch) else None))
            results["scenarios"].setdefault(scn, {})["fault_to_notified_s"] = {c: round(fired[c] - t_fault, 1) for c in fired}
            if resolved:
                results["scenarios"][scn]["recovery_to_resolved_s"] = {c: round(resolved[c] - t_rec, 1) for c in resolved}

        # --- 1 + 4: a unit goes down while the webhook is down --------------------------------
        def unit_down():
            sink.close()
            log("4. the webhook sink is closed (its port refuses connections)")
            t_fault = now()
            daemons["voice"].stop(signal.SIGTERM)
            log(f"1. barnabee-voice stopped with SIGTERM (exit {daemons['voice'].proc.returncode})")
            title = re.escape("barnabee-voice on beelink is not answering /metrics")
            fp = fam.fingerprint("BarnabeeUnitDown", "critical", job="barnabee-voice")
            got = fam.wait_all("BarnabeeUnitDown on e-mail and HA while the webhook is down",
                               lambda: fam.firing(title, "critical", fp, t_fault), 90, channels=("email", "home_assistant"))
            log(f"1. BarnabeeUnitDown notified: e-mail +{got['email'] - t_fault:.1f}s, HA +{got['home_assistant'] - t_fault:.1f}s "
                "(the webhook channel is down and holds nobody up)")
            if "barnabee-voice" not in hass.family_txt():
                fail(f"notify.family (HA file platform) did not get the alert: {hass.family_txt()[-500:]!r}")

            def degraded():
                st, h = http_json(f"{daemons['watchdog'].url}/health")
                c = (h.get("checks") or {}).get("notify") if isinstance(h, dict) else None
                if st == 200 and h.get("status") == "degraded" and c and not c["ok"] and not c["critical"] \
                        and c["detail"].startswith("webhook:") and "queued" in c["detail"]:
                    return c
            note = wait_for("the watchdog's /health: notify degraded naming webhook", degraded, 30)
            log(f"4. watchdog /health 200 degraded, notify: {note['detail'][:160]!r}")
            results["scenarios"]["4 webhook down"] = {"health_notify": note}
            st, chans = http_json(f"{daemons['watchdog'].url}/v1/notify")
            wh = [c for c in chans["channels"] if c["name"] == "webhook"][0]
            if not wh["failing"] or wh["queue_depth"] < 1:
                fail(f"GET /v1/notify: the webhook channel is not failing with a queued message: {wh}")
            if sink.find(lambda b: "firing" in b.get("tags", []) and "barnabee-voice" in b.get("title", "")):
                fail("the webhook got the message while it was closed?")
            t_back = now()
            sink.open()
            log(f"4. the webhook sink is back (queue_depth was {wh['queue_depth']}, last_error {wh['last_error']!r})")
            got = fam.wait_all("BarnabeeUnitDown on every channel", lambda: fam.firing(title, "critical", fp, t_fault), 30)
            log(f"4. the queued message reached the webhook {got['webhook'] - t_back:.1f} s after it came back "
                f"({got['webhook'] - t_fault:.1f} s after the fault)")
            wait_for("the webhook channel healthy again", lambda: not [c for c in http_json(
                f"{daemons['watchdog'].url}/v1/notify")[1]["channels"] if c["name"] == "webhook"][0]["failing"], 15)
            results["scenarios"]["4 webhook down"].update(
                {"sink_back_to_delivered_s": round(got["webhook"] - t_back, 1), "queue_depth_while_down": wh["queue_depth"],
                 "last_error": wh["last_error"]})
            rows.append(("4 webhook down", "webhook (after sink back)", round(got["webhook"] - t_back, 1), None))
            fired = got

            t_rec = now()
            daemons["voice"].start()
            daemons["voice"].wait_serving()
            log("1. barnabee-voice started again")
            res = fam.wait_all("BarnabeeUnitDown resolved", lambda: fam.resolved(title, fp, t_rec), 120)
            log("1. resolved: " + ", ".join(f"{c} +{res[c] - t_rec:.1f}s" for c in res) + " (critical group_interval 1m)")
            record("1 unit down", fired, t_fault, res, t_rec)

        # --- 2: the LLM spend --------------------------------------------------------------------
        def spend():
            ag = daemons["agents"].url
            jokes = iter(["tell me a joke", "tell me another joke", "why is the sky blue", "why do cats purr"])

            def say():
                st, v = http_json(f"{ag}/v1/process", {"text": next(jokes), "session_id": "family-check"}, timeout=30)
                if st != 200 or v.get("route") != "interaction":
                    fail(f"POST /v1/process: {st} {v}")
                return v

            def spent():
                r = query(f'barnabee_agents_llm_cost_today_dollars{{job="barnabee-agents",host="{HOST}"}}')
                return float(r[0]["value"][1]) if r else 0.0

            # Two answers: $0.60, past 50 % (the fault is the moment the second one is spent).
            say()
            v = say()
            t_fault = now()
            wait_for("the spend of $0.60 scraped", lambda: abs(spent() - 2 * COST_PER_ANSWER) < 1e-6, 15)
            log(f"2. LLM spend ${spent():.2f} of $1.00 (budget {v['budget']}, {llm.requests} answers at ${COST_PER_ANSWER:.2f})")
            title = r"^LLM spend today on beelink is 6\d(\.\d+)?% of the daily budget$"
            fp_w = fam.fingerprint("BarnabeeLlmDailyCostHigh", "warning")
            got_w = fam.wait_all("BarnabeeLlmDailyCostHigh warning", lambda: fam.firing(title, "warning", fp_w, t_fault), 120)
            log("2. the warning notified: " + ", ".join(f"{c} +{got_w[c] - t_fault:.1f}s" for c in got_w) + " (warning group_wait 1m)")
            record("2 LLM spend > 50 %", got_w, t_fault)

            # A third: $0.90, past 80 %.
            v = say()
            t_fault2 = now()
            wait_for("the spend of $0.90 scraped", lambda: abs(spent() - 3 * COST_PER_ANSWER) < 1e-6, 15)
            log(f"2. LLM spend ${spent():.2f} of $1.00 (budget {v['budget']}, {llm.requests} answers)")
            title_c = r"^LLM spend today on beelink is 9\d(\.\d+)?% of the daily budget$"
            fp_c = fam.fingerprint("BarnabeeLlmDailyCostHigh", "critical")
            got_c = fam.wait_all("BarnabeeLlmDailyCostHigh critical", lambda: fam.firing(title_c, "critical", fp_c, t_fault2), 90)
            log("2. the critical notified: " + ", ".join(f"{c} +{got_c[c] - t_fault2:.1f}s" for c in got_c) + " (critical group_wait 10s)")
            record("2 LLM spend > 80 %", got_c, t_fault2)

            # alertmanager.yml: a critical silences the warning of the same alertname and host.
            def inhibited():
                for a in http_json(f"{am}/api/v2/alerts")[1]:
                    if a["fingerprint"] == fp_w and a["status"]["state"] == "suppressed" and a["status"]["inhibitedBy"]:
                        return a
            wait_for("the warning suppressed by its critical at Alertmanager", inhibited, 20)
            # Past a warning group_interval: nothing more for the warning (not re-sent, not "resolved").
            time.sleep(25)
            late = [b["title"] for t, b in sink.messages if t > got_c["webhook"] and "LLM spend" in b.get("title", "")]
            late += [s for t, s, _ in smtp.messages if t > got_c["email"] and "LLM spend" in s]
            if late:
                fail(f"the inhibited warning was notified again after the critical: {late}")
            hw = hass.notification(f"barnabee_am_{fp_w}")
            if not hw or hw["gone"] is not None:
                fail(f"the warning's HA persistent notification was dismissed though the warning is only inhibited: {hw}")
            log("2. the warning is suppressed by the critical at Alertmanager; 25 s later (past its group_interval) "
                "no further message about it on any channel; its HA notification stays")
            results["scenarios"]["2 LLM spend > 80 %"]["warning"] = "suppressed (inhibited by the critical), not re-notified, not resolved"

        # --- 3: the replica is unreachable -------------------------------------------------------
        def replica_down():
            away = replica + ".away"
            os.rename(replica, away)
            open(replica, "w").write("not a directory: the replica is unreachable\n")
            t_fault = now()
            write_memory("Grandma visits on Sunday.")
            log("3. the replica directory replaced by a regular file; a memory written")
            wait_for("the lag to grow", lambda: (lag() or 0) > 5, 30)
            errs = fam.fingerprint("BarnabeeReplicationErrors", "warning")
            title = r"^the barnabee-memory replica of beelink is \d+ s behind$"
            fp = fam.fingerprint("BarnabeeReplicationLag", "warning", 150)
            got = fam.wait_all("BarnabeeReplicationLag warning", lambda: fam.firing(title, "warning", fp, t_fault), 120)
            log("3. BarnabeeReplicationLag notified: " + ", ".join(f"{c} +{got[c] - t_fault:.1f}s" for c in got)
                + f" (lag > 60 s, warning group_wait 1m); lag now {lag():.0f} s")
            e_title = r"^barnabee-memory replication on beelink keeps failing"
            got_e = fam.wait_all("BarnabeeReplicationErrors warning", lambda: fam.firing(e_title, "warning", errs, t_fault), 30)
            record("3 replica: errors", got_e, t_fault)
            os.remove(replica)
            os.rename(away, replica)
            t_rec = now()
            log("3. the replica directory restored")
            wait_for("the lag to drain", lambda: lag() == 0.0, 60)
            log(f"3. lag drained {now() - t_rec:.1f} s after the restore")
            res = fam.wait_all("BarnabeeReplicationLag resolved", lambda: fam.resolved(title, fp, t_rec), 90)
            log("3. resolved: " + ", ".join(f"{c} +{res[c] - t_rec:.1f}s" for c in res)
                + f" (warning group_interval {WARNING_GROUP_INTERVAL})")
            record("3 replica: lag > 60 s", got, t_fault, res, t_rec)

        threads = [run("scenario 3 (replica)", replica_down), run("scenario 2 (LLM spend)", spend),
                   run("scenario 1+4 (unit down, webhook down)", unit_down)]
        deadline = now() + 330
        while any(t.is_alive() for t in threads) and not errors:
            if now() > deadline:
                errors.append("the scenarios did not finish within 330 s")
                break
            try:
                alive()
            except Fail as e:
                errors.append(str(e))
            time.sleep(0.5)
        if errors:
            fail("\n  ".join(errors))

        # Nothing else pages the family during the run.
        others = sorted({b.get("title", "") for _, b in sink.messages if "alertmanager" in b.get("tags", [])
                         and not re.search(r"barnabee-voice on beelink|LLM spend|memory replica|memory replication", b.get("title", ""))})
        results["other_alerts_notified"] = others
        rows.sort(key=lambda r: r[0])
        print("\n  scenario                 channel                     fault->notified s   recovery->resolved s")
        for s, c, a, b in rows:
            print(f"  {s:<24} {c:<27} {a:>17}   {'' if b is None else b:>20}")
        results["table"] = rows
        results["run_s"] = round(now() - T0, 1)
        if others:
            print(f"  other alerts notified during the run: {others}")
        print(f"checks/monitoring family: PASS in {now() - T0:.0f} s")
        ok = True
        return 0
    except Fail as e:
        print(f"\nchecks/monitoring family: FAIL: {e}", file=sys.stderr)
        for name in ["watchdog", "memory", "agents", "voice", "alertmanager", "prometheus", "home-assistant"]:
            p = os.path.join(args.out, f"{name}.log")
            if os.path.exists(p):
                print(f"\n--- {p} (last 40 lines)\n{tail(p)}", file=sys.stderr)
        try:
            if "watchdog" in daemons:
                print(f"\n--- GET /v1/notify\n{json.dumps(http_json(daemons['watchdog'].url + '/v1/notify', timeout=3)[1])}", file=sys.stderr)
        except Exception:  # noqa: BLE001
            pass
        return 1
    finally:
        stop_polling.set()
        try:
            results["messages"] = {"webhook": [b for _, b in sink.messages], "email": [s for _, s, _ in smtp.messages] if smtp else [],
                                   "home_assistant": hass.seen if hass else {}}
            results["pass"] = ok
            json.dump(results, open(os.path.join(args.out, "family.json"), "w"), indent=1, default=str)
        except Exception:  # noqa: BLE001
            pass
        for d in daemons.values():
            d.stop()
        for p in procs:
            if p.poll() is None:
                p.terminate()
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        if hass:
            hass.stop()
        if smtp:
            smtp.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
