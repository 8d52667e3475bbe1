# shellcheck shell=bash
# Scenario boot: the barnabee units reach active (running) through READY=1, answer /health,
# log structured fields to journald; the systemd-analyze security exposure is recorded.
# Functions shared by the scenarios live here too (this scenario always runs first).

# unit_prop UNIT PROP: one property's value.
unit_prop() { vm "systemctl show -p $2 --value $1"; }

# memory_post SUMMARY: POST a memory, prints its id.
memory_post() {
  vm "curl -sS -m 10 -X POST -H 'content-type: application/json' \
    -d '{\"summary\": \"$1\", \"memory_type\": \"fact\", \"owner\": \"vmtest\", \"visibility\": \"family\"}' \
    http://127.0.0.1:7701/v1/memories" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])' 2>/dev/null
}

# memory_get ID: prints the summary of memory ID (empty when it cannot be read).
memory_get() {
  vm "curl -sS -m 10 'http://127.0.0.1:7701/v1/memories/$1?requester=vmtest'" 2>/dev/null |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["summary"])' 2>/dev/null
}

health_code() { vm "curl -s -o /dev/null -m ${2:-5} -w '%{http_code}' $1" 2>/dev/null || true; }

# wait_healthy NAME PORT SECONDS: unit active and /health 200.
wait_healthy() {
  wait_for "$3" "barnabee-$1 active and /health 200" \
    "systemctl is-active -q barnabee-$1 && [ \"\$(curl -s -o /dev/null -m 2 -w '%{http_code}' http://127.0.0.1:$2/health)\" = 200 ]"
}

# journal_json UNIT_OR_ID [MATCH...]: the journal entries as JSON lines.
journal_json() { vm "journalctl -b --no-pager -o json $*"; }

scenario_boot() {
  local role port line sec
  for role in memory:7701 watchdog:7705; do
    port=${role#*:}
    role=${role%:*}
    wait_for 90 "barnabee-$role.service active" "systemctl is-active -q barnabee-$role.service" || return 1
    line="$(vm "systemctl show -p Type,ActiveState,SubState,NotifyAccess,WatchdogUSec,StatusText,NRestarts barnabee-$role.service | tr '\n' ' '")"
    case "$line" in
      *Type=notify*ActiveState=active*SubState=running*) check "barnabee-$role: Type=notify, active (running) after ${WAITED} s (READY=1 received): $line" ;;
      *) fail "barnabee-$role not notify/active/running: $line"; return 1 ;;
    esac
    {
      vm "journalctl -b -u barnabee-$role.service -o cat --no-pager | grep -q 'Started barnabee-$role.service\|Started Barnabee'" &&
        check "barnabee-$role: systemd logged the start job as done"
    } ||
      { fail "barnabee-$role: no 'Started' line in the journal"; return 1; }
    wait_healthy "$role" "$port" 30 || return 1
    check "barnabee-$role: GET http://127.0.0.1:$port/health = 200"
  done

  # Structured journald fields: EVENT=ready with LISTEN, EVENT=database_open with SCHEMA_VERSION,
  # and the per-request record (REQUEST_ID, LATENCY_MS) of the POST below.
  local id
  id="$(memory_post "boot scenario memory")" || { fail "POST /v1/memories failed"; return 1; }
  check "POST /v1/memories -> id $id; GET returns '$(memory_get "$id")'"
  journal_json -u barnabee-memory.service > "$OUT/memory-journal.json"
  python3 - "$OUT/memory-journal.json" <<'P' || { fail "structured fields missing in journalctl -u barnabee-memory -o json"; return 1; }
import json, sys
recs = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
def find(event, *fields):
    for r in recs:
        if r.get("EVENT") == event and all(f in r for f in fields):
            return r
    raise SystemExit(f"no record with EVENT={event} and {fields}")
ready = find("ready", "LISTEN", "PRIORITY", "SYSLOG_IDENTIFIER", "CODE_FILE")
db = find("database_open", "SCHEMA_VERSION")
print(f"    ok   journal -o json: EVENT=ready LISTEN={ready['LISTEN']} SYSLOG_IDENTIFIER={ready['SYSLOG_IDENTIFIER']} CODE_FILE={ready['CODE_FILE']}; EVENT=database_open SCHEMA_VERSION={db['SCHEMA_VERSION']}")
req = [r for r in recs if "REQUEST_ID" in r and "LATENCY_MS" in r and r.get("PATH") == "/v1/memories" and r.get("METHOD") == "POST"]
if not req:
    raise SystemExit("no per-request record (REQUEST_ID, LATENCY_MS, METHOD=POST, PATH=/v1/memories) for the POST")
print(f"    ok   journal -o json: POST /v1/memories logged with REQUEST_ID={req[0]['REQUEST_ID']} LATENCY_MS={req[0]['LATENCY_MS']} STATUS={req[0].get('STATUS')}")
P

  # Hardening as systemd 252 sees it with the host drop-ins.
  : > "$OUT/security.txt"
  for role in memory watchdog health-gate; do
    line="$(vm "systemd-analyze security barnabee-$role.service --no-pager 2>&1 | tee /tmp/sec-$role.txt | tail -n 1")"
    vm "cat /tmp/sec-$role.txt" >> "$OUT/security.txt"
    sec="$(sed -n 's/.*: \([0-9.]*\) \(.*\)$/\1 \2/p' <<< "$line")"
    [ -n "$sec" ] || { fail "systemd-analyze security barnabee-$role: no exposure line ($line)"; return 1; }
    awk -v e="${sec%% *}" 'BEGIN { exit !(e <= 2.0) }' ||
      { fail "systemd-analyze security barnabee-$role.service: exposure $sec, above 2.0 (details in $OUT/security.txt)"; return 1; }
    check "systemd-analyze security barnabee-$role.service: exposure $sec <= 2.0 (details in $OUT/security.txt)"
  done

  # The health gate (as its unit, user barnabee-watchdog) passes with everything up.
  vm 'systemctl start barnabee-health-gate.service' || { fail "barnabee-health-gate.service failed: $(vm 'systemctl status --no-pager barnabee-health-gate | tail -5')"; return 1; }
  vm "journalctl -b -u barnabee-health-gate.service -o cat --no-pager EVENT=gate_passed | tail -n 1" | sed 's/^/    ok   barnabee-health-gate.service (user barnabee-watchdog): /'
}
