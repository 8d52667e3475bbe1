# shellcheck shell=bash
# Scenario watchdog: (1) barnabee-watchdog stopped, SIGSTOP barnabee-memory -> systemd's WatchdogSec= fires, systemd
# kills and restarts it (NRestarts grows) and the data is intact; (2) barnabee-memory stays
# alive (and keeps pinging systemd) but stops answering: a runtime IPAddressDeny=any on its
# unit drops every packet to its socket, so /health times out -> barnabee-watchdog notices,
# restarts it over D-Bus (as user barnabee-watchdog, allowed by the polkit rule) and records
# an incident (journal EVENT=incident, GET /v1/incidents).

scenario_watchdog() {
  local id pid nr pid2 t0
  id="$(memory_post "watchdog scenario memory")" || { fail "POST /v1/memories failed"; return 1; }
  # barnabee-watchdog would notice the silent /health first and restart memory itself (that is
  # part 2); stop it so this part sees systemd's own watchdog alone.
  vm 'systemctl stop barnabee-watchdog.service'
  pid="$(unit_prop barnabee-memory MainPID)"
  nr="$(unit_prop barnabee-memory NRestarts)"
  vm "kill -STOP $pid"
  check "memory $id written; barnabee-watchdog stopped; SIGSTOP sent to barnabee-memory (MainPID $pid, NRestarts $nr, WatchdogUSec $(unit_prop barnabee-memory WatchdogUSec))"
  wait_for 60 "systemd's watchdog restarts the stopped barnabee-memory" \
    "[ \$(systemctl show -p NRestarts --value barnabee-memory) -gt $nr ] && systemctl is-active -q barnabee-memory" || return 1
  pid2="$(unit_prop barnabee-memory MainPID)"
  vm "journalctl -b -u barnabee-memory.service -o cat --no-pager | grep -q 'Watchdog timeout'" ||
    { fail "no 'Watchdog timeout' from systemd in the journal"; return 1; }
  check "systemd: 'barnabee-memory.service: Watchdog timeout', restarted after ${WAITED} s: NRestarts $nr -> $(unit_prop barnabee-memory NRestarts), MainPID $pid -> $pid2"
  wait_healthy memory 7701 60 || return 1
  [ "$(memory_get "$id")" = "watchdog scenario memory" ] || { fail "memory $id lost after the restart"; return 1; }
  check "after the restart: /health 200, memory $id intact"
  vm 'systemctl start barnabee-watchdog.service' || { fail "barnabee-watchdog does not start again"; return 1; }

  # Alive but unreachable.
  local before_incidents
  before_incidents="$(vm "journalctl -b --no-pager -o cat EVENT=incident UNIT=barnabee-memory.service | wc -l")"
  vm 'systemctl set-property --runtime barnabee-memory.service IPAddressDeny=any'
  t0="$(ts)"
  [ "$(health_code http://127.0.0.1:7701/health 2)" != 200 ] || { fail "/health still 200 with IPAddressDeny=any"; return 1; }
  vm "kill -0 $pid2 && systemctl is-active -q barnabee-memory" || { fail "barnabee-memory died instead of staying alive"; return 1; }
  check "IPAddressDeny=any set at runtime: /health unanswered, process $pid2 alive, unit still active (systemd's watchdog is happy)"
  wait_for 60 "barnabee-watchdog restarts the unreachable barnabee-memory" \
    "p=\$(systemctl show -p MainPID --value barnabee-memory); [ \"\$p\" != $pid2 ] && [ \"\$p\" != 0 ]" || return 1
  check "barnabee-watchdog restarted barnabee-memory over D-Bus $(elapsed "$t0") s after it became unreachable (MainPID $pid2 -> $(unit_prop barnabee-memory MainPID))"
  # (daemon-reload: set-property leaves the unit marked as changed on disk otherwise)
  vm 'systemctl set-property --runtime barnabee-memory.service IPAddressDeny= && systemctl daemon-reload'
  wait_healthy memory 7701 60 || return 1
  [ "$(memory_get "$id")" = "watchdog scenario memory" ] || { fail "memory $id lost after the watchdog's restart"; return 1; }
  check "IPAddressDeny cleared: /health 200 again, memory $id intact"

  journal_json EVENT=incident > "$OUT/incidents.json"
  python3 - "$OUT/incidents.json" "$before_incidents" <<'P' || { fail "no incident record with its fields in the journal"; return 1; }
import json, sys
recs = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
recs = [r for r in recs if r.get("UNIT") == "barnabee-memory.service"][int(sys.argv[2]):]
need = ("SEVERITY", "UNIT", "REASON", "ACTION", "MESSAGE", "SYSLOG_IDENTIFIER")
for r in recs:
    if all(k in r for k in need) and r["SYSLOG_IDENTIFIER"] == "barnabee-watchdog" and r["ACTION"] == "restart":
        print("    ok   journal EVENT=incident: " + " ".join(f"{k}={r[k]}" for k in need[:3]) + f" ACTION={r['ACTION']}: {r['MESSAGE']}")
        break
else:
    raise SystemExit("records: " + json.dumps(recs)[:2000])
P
  vm 'curl -sS -m 5 http://127.0.0.1:7705/v1/incidents' > "$OUT/incidents-api.json"
  python3 - "$OUT/incidents-api.json" <<'P' || { fail "GET /v1/incidents has no restart incident for barnabee-memory"; return 1; }
import json, sys
data = json.load(open(sys.argv[1]))
items = data if isinstance(data, list) else data.get("incidents", [])
hits = [i for i in items if i.get("unit") == "barnabee-memory.service" and i.get("action") == "restart"]
if not hits:
    raise SystemExit(json.dumps(data)[:2000])
i = hits[-1]
print(f"    ok   GET /v1/incidents (SQLite log): id={i.get('id')} severity={i.get('severity')} unit={i['unit']} reason={i.get('reason')} action={i['action']}")
P
}
