# shellcheck shell=bash
# Scenario units: the other daemons under real systemd with their shipped unit files and
# NixOS-shaped drop-ins: barnabee-agents (no Home Assistant; an LLM key as a LoadCredential=
# credential), barnabee-voice (no sound card: degraded, not failed) and barnabee-inference (CPU,
# no NVML; ONNX Runtime and the Silero VAD when dev/setup staged them). Each is Type=notify and
# active (running) through READY=1 without a restart, answers /health with JSON (code and the
# failing checks recorded), logs EVENT=ready to the journal, and its systemd-analyze security
# exposure is <= 2.0; barnabee-watchdog supervises all four daemons (GET /v1/units: active and
# healthy; a start or restart it issued is printed as a NOTE). Uses the helpers in boot.sh.

# unit_health ROLE PORT: GET /health; writes the body to $OUT/health-ROLE.json, prints the code.
unit_health() {
  local r
  r="$(vm "curl -s -m 5 -w '\n%{http_code}' http://127.0.0.1:$2/health" 2>/dev/null || true)"
  sed '$d' <<< "$r" > "$OUT/health-$1.json"
  tail -n 1 <<< "$r"
}

# health_expect ROLE CODE 'CHECK=ok|fail[:TEXT]'...: the /health JSON ($OUT/health-ROLE.json,
# answered with CODE) has the status its checks imply and each named check is ok or failing
# with TEXT in its detail; prints one line with the status and every failing check's detail.
health_expect() {
  python3 - "$OUT/health-$1.json" "$2" "${@:3}" 2>&1 <<'P'
import json, sys
path, code, want = sys.argv[1], sys.argv[2], sys.argv[3:]
try:
    h = json.load(open(path))
except ValueError:
    raise SystemExit(f"/health {code}: not JSON: {open(path).read()[:500]!r}")
if code not in ("200", "503") or h.get("status") not in ("healthy", "degraded", "unhealthy"):
    raise SystemExit(f"/health {code}: {json.dumps(h)[:1500]}")
checks = h.get("checks", {})
if (code == "503") != (h["status"] == "unhealthy"):
    raise SystemExit(f"/health {code} with status {h['status']}")
for w in want:
    name, _, expect = w.partition("=")
    state, _, text = expect.partition(":")
    c = checks.get(name)
    if c is None:
        raise SystemExit(f"/health has no check {name!r}: {json.dumps(checks)[:1500]}")
    if c["ok"] != (state == "ok") or text not in c["detail"]:
        raise SystemExit(f"/health check {name}: expected {expect}, got {json.dumps(c)}")
failing = [f"{n}{'' if c['critical'] else ' (non-critical)'}: {c['detail']}" for n, c in checks.items() if not c["ok"]]
oks = [f"{n}: {c['detail']}" for n, c in checks.items() if c["ok"]]
print(f"/health {code} {h['status']}; failing: {'; '.join(failing) or 'none'}; ok: {'; '.join(oks)}")
P
}

scenario_units() {
  local role port line sec out code t0 inference_models="ok:no models configured" ort=
  if vm 'test -e /usr/local/lib/barnabee/onnxruntime/libonnxruntime.so'; then
    inference_models="ok:loaded: silero"
    ort="onnxruntime=ok:1.22.1"
  fi
  for role in agents:7702 voice:7703 inference:7704; do
    port=${role#*:}
    role=${role%:*}
    wait_for 90 "barnabee-$role.service active" "systemctl is-active -q barnabee-$role.service" || {
      [ "$role" = voice ] && fail "barnabee-voice did not come up: without a sound card it must run degraded, not fail (a daemon bug): $(vm 'systemctl status --no-pager -n 20 barnabee-voice 2>&1 | tail -n 20')"
      return 1
    }
    line="$(vm "systemctl show -p Type,ActiveState,SubState,NRestarts,StatusText,MainPID barnabee-$role.service | tr '\n' ' '")"
    case "$line" in
      *Type=notify*NRestarts=0*ActiveState=active*SubState=running*) check "barnabee-$role: Type=notify, active (running) after ${WAITED} s (READY=1 received), no restart: $line" ;;
      *) fail "barnabee-$role not notify/active/running without restarts: $line"; return 1 ;;
    esac
    code="$(unit_health "$role" "$port")"
    case "$role" in
      agents) out="$(health_expect agents "$code" "home_assistant=fail:not configured" "llm=ok:1 provider(s): vmtest" "memory=ok:healthy")" ;;
      voice) out="$(health_expect voice "$code" "audio=fail:no audio device" "inference=ok:127.0.0.1:10300" "agents=ok:7702")" ;;
      inference) out="$(health_expect inference "$code" "gpu=fail:no GPU" "models=$inference_models" ${ort:+"$ort"})" ;;
    esac || { fail "barnabee-$role: $out"; return 1; }
    check "barnabee-$role: $out"
  done
  check "barnabee-agents read its LLM key from \$CREDENTIALS_DIRECTORY (LoadCredential=, DynamicUser=): the llm check counts its provider"

  # What each does with the sandbox it has: agents answers an instant question (and stores the
  # turn in memory); inference runs the VAD on a second of silence (ONNX Runtime's threads under
  # MemoryDenyWriteExecute= and the ~@privileged filter); voice keeps retrying the device.
  out="$(vm "curl -sS -m 10 -X POST -H 'content-type: application/json' -d '{\"text\": \"what time is it\", \"session_id\": \"vmtest\"}' http://127.0.0.1:7702/v1/process")"
  out="$(python3 - "$out" 2>&1 <<'P'
import json, sys
r = json.loads(sys.argv[1])
if r.get("route") != "instant":
    raise SystemExit(sys.argv[1][:1000])
print(f"route {r['route']}/{r['intent']}: {r['text']!r}")
P
)" || { fail "barnabee-agents: POST /v1/process: $out"; return 1; }
  check "barnabee-agents: POST /v1/process 'what time is it' -> $out"
  if [ -n "$ort" ]; then
    out="$(vm "head -c 32000 /dev/zero | curl -sS -m 30 -X POST -H 'content-type: application/octet-stream' --data-binary @- http://127.0.0.1:7704/v1/vad")"
    out="$(python3 - "$out" 2>&1 <<'P'
import json, sys
r = json.loads(sys.argv[1])
p = r.get("probabilities")
if r.get("model") != "silero" or not p or max(p) >= 0.5:
    raise SystemExit(sys.argv[1][:1000])
print(f"{len(p)} frames, max speech probability {max(p):.3f}, events {r['events']}")
P
)" || { fail "barnabee-inference: POST /v1/vad: $out"; return 1; }
    check "barnabee-inference: POST /v1/vad (1 s of silence) runs Silero on ONNX Runtime inside the CPU unit: $out"
  else
    log "barnabee-inference: model-less (no ONNX Runtime staged: dev/setup.d/70-inference.sh); no model run"
  fi

  # Structured journald fields, per unit: EVENT=ready with LISTEN; voice's EVENT=no_audio_device,
  # inference's EVENT=no_gpu (the warnings behind their degraded checks).
  for role in agents voice inference; do
    journal_json -u "barnabee-$role.service" > "$OUT/$role-journal.json"
    out="$(python3 - "$OUT/$role-journal.json" "$role" 2>&1 <<'P'
import json, sys
role = sys.argv[2]
recs = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
ready = [r for r in recs if r.get("EVENT") == "ready" and all(k in r for k in ("LISTEN", "PRIORITY", "CODE_FILE"))]
if not ready or ready[0].get("SYSLOG_IDENTIFIER") != f"barnabee-{role}":
    raise SystemExit(f"no EVENT=ready record with LISTEN from barnabee-{role}: events {[r.get('EVENT') for r in recs if r.get('EVENT')]}")
line = f"EVENT=ready LISTEN={ready[0]['LISTEN']} SYSLOG_IDENTIFIER={ready[0]['SYSLOG_IDENTIFIER']}"
degraded = {"voice": "no_audio_device", "inference": "no_gpu"}.get(role)
if degraded:
    d = [r for r in recs if r.get("EVENT") == degraded]
    if not d:
        raise SystemExit(f"no EVENT={degraded} from barnabee-{role}: events {[r.get('EVENT') for r in recs if r.get('EVENT')]}")
    line += f"; EVENT={degraded} PRIORITY={d[0]['PRIORITY']}: {d[0]['MESSAGE'][:200]}"
print(line)
P
)" || { fail "barnabee-$role: journalctl -o json: $out"; return 1; }
    check "barnabee-$role: journal -o json: $out"
  done

  # Hardening as systemd 252 sees it with the host drop-ins (appended to boot's security.txt).
  for role in agents voice inference; do
    line="$(vm "systemd-analyze security barnabee-$role.service --no-pager 2>&1 | tee /tmp/sec-$role.txt | tail -n 1")"
    vm "cat /tmp/sec-$role.txt" >> "$OUT/security.txt"
    sec="$(sed -n 's/.*: \([0-9.]*\) \(.*\)$/\1 \2/p' <<< "$line")"
    [ -n "$sec" ] || { fail "systemd-analyze security barnabee-$role: no exposure line ($line)"; return 1; }
    awk -v e="${sec%% *}" 'BEGIN { exit !(e <= 2.0) }' ||
      { fail "systemd-analyze security barnabee-$role.service: exposure $sec, above 2.0 (details in $OUT/security.txt)"; return 1; }
    check "systemd-analyze security barnabee-$role.service: exposure $sec <= 2.0"
  done

  # barnabee-watchdog supervises every daemon's unit and /health (as nixos-modules/watchdog.nix
  # renders [[units]]): all four reported active and healthy, none restarted by it.
  # (polled from here: the guest has no python)
  t0="$(ts)"
  while :; do
    vm 'curl -sS -m 5 http://127.0.0.1:7705/v1/units' > "$OUT/watchdog-units.json" 2>/dev/null || true
    out="$(python3 - "$OUT/watchdog-units.json" 2>&1 <<'P'
import json, sys
units = {u["name"]: u for u in json.load(open(sys.argv[1]))["units"]}
want = [f"barnabee-{r}.service" for r in ("memory", "agents", "voice", "inference")]
bad = [n for n in want if n not in units or not units[n]["healthy"] or units[n]["active_state"] != "active"]
if bad or set(units) != set(want):
    raise SystemExit(f"units {sorted(units)}; not active and healthy: {bad}: {json.dumps(units)[:2000]}")
print(", ".join(f"{n} {units[n]['active_state']}/{units[n]['sub_state']} healthy, {units[n]['watchdog_restarts']} (re)starts by the watchdog" for n in want))
P
)" && break
    awk -v a="$t0" -v b="$(ts)" 'BEGIN { exit !(b - a > 30) }' && { fail "barnabee-watchdog GET /v1/units, 30 s: $out"; return 1; }
    sleep 1
  done
  check "barnabee-watchdog supervises all four (GET /v1/units, $(elapsed "$t0") s): $out"
  # A (re)start by the watchdog before this point is not a failure here, but it is shown: one
  # seen under TCG is barnabee-voice "started" while its own start job still waited for
  # barnabee-agents' (After=): inactive (dead) with a job queued reads as unhealthy.
  vm 'curl -sS -m 5 http://127.0.0.1:7705/v1/incidents' > "$OUT/units-incidents.json"
  python3 - "$OUT/units-incidents.json" <<'P'
import json, sys
for i in reversed(json.load(open(sys.argv[1])).get("incidents", [])):
    if i.get("action") in ("start", "restart"):
        print(f"    NOTE barnabee-watchdog incident: {i.get('severity')} {i.get('unit')} reason={i.get('reason')} action={i.get('action')}: {i.get('detail')}")
P
}
