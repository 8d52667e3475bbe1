# shellcheck shell=bash
# Scenario upgrade: build A (schema N) -> build B (`--features test-schema-next`, schema N+1,
# additive, min_reader N) -> the health gate passes -> A again (works: B's schema allows it) ->
# a database from a newer build whose min_reader_version is above A is refused with memory's
# message and its bytes are untouched -> a broken build (never READY=1) makes the gate fail,
# raise an incident and start barnabee-rollback.service, which restores the previous binaries.
DB=/var/lib/barnabee-memory/memory.db

stat_field() {
  vm 'curl -sS -m 5 http://127.0.0.1:7701/v1/stats' | python3 -c "import json,sys; print(json.load(sys.stdin)['$1'])"
}

deploy() { # deploy BUILD: install BUILD's barnabee-memory, restart it without waiting
  # (only memory: build A's other four binaries are installed already and would be copied again)
  vm "rm -rf /tmp/deploy && mkdir /tmp/deploy && ln -s /mnt/host/$1/barnabee-memory /tmp/deploy/ &&
      barnabee-deploy /tmp/deploy && systemctl restart --no-block barnabee-memory.service"
}

scenario_upgrade() {
  local ida idb sa sb mr sum1 sum2 t0
  wait_healthy memory 7701 60 || return 1
  ida="$(memory_post "written by build A")" || { fail "POST with build A failed"; return 1; }
  sa="$(stat_field schema_version)"
  check "build A: schema_version $sa, memory $ida written"

  deploy B
  wait_healthy memory 7701 90 || return 1
  sb="$(stat_field schema_version)"
  [ "$sb" = $((sa + 1)) ] || { fail "build B: schema_version $sb, expected $((sa + 1))"; return 1; }
  vm "journalctl -b -u barnabee-memory.service -o cat --no-pager EVENT=migrated SCHEMA_VERSION=$sb | grep -q ." ||
    { fail "no EVENT=migrated SCHEMA_VERSION=$sb in the journal"; return 1; }
  local snap
  snap="$(vm "ls /var/lib/barnabee-memory/snapshots/" | tr '\n' ' ' | sed 's/ $//')"
  [ -n "$snap" ] || { fail "no pre-migration snapshot in /var/lib/barnabee-memory/snapshots"; return 1; }
  [ "$(memory_get "$ida")" = "written by build A" ] || { fail "memory $ida lost by the upgrade"; return 1; }
  idb="$(memory_post "written by build B")" || { fail "POST with build B failed"; return 1; }
  check "build B: migrated $sa -> $sb (journal EVENT=migrated, snapshot $snap), memory $ida intact, memory $idb written"

  vm 'systemctl restart barnabee-health-gate.service' || { fail "the health gate failed on build B"; return 1; }
  vm "journalctl -b -u barnabee-health-gate.service -o cat --no-pager EVENT=gate_passed | tail -n 1" | sed 's/^/    ok   gate on build B: /'

  deploy A
  wait_healthy memory 7701 90 || return 1
  [ "$(stat_field schema_version)" = "$sb" ] || { fail "build A changed schema_version"; return 1; }
  [[ "$(memory_get "$ida")" = "written by build A" && "$(memory_get "$idb")" = "written by build B" ]] ||
    { fail "build A cannot read both memories after the rollback to it"; return 1; }
  mr="$(stat_field min_reader_version)"
  check "back on build A: serves the schema-$sb database as is (min_reader_version $mr), memories $ida and $idb readable"

  # A database from a future build that needs a newer reader: A must refuse and not write.
  vm "systemctl stop barnabee-memory.service && sqlite3 $DB \"UPDATE barnabee_meta SET value='99' WHERE key IN ('schema_version','min_reader_version')\" && chown --reference=$DB $DB*"
  sum1="$(vm "cd /var/lib/barnabee-memory && ls -la --time-style=+%s . ; sha256sum memory.db*")"
  vm 'systemctl reset-failed barnabee-memory.service; systemctl start --no-block barnabee-memory.service'
  wait_for 60 "build A refuses the too-new database" \
    "journalctl -b -u barnabee-memory.service -o cat --no-pager | grep -q 'refuses to start'" || return 1
  sum2="$(vm "cd /var/lib/barnabee-memory && ls -la --time-style=+%s . ; sha256sum memory.db*")"
  vm 'systemctl stop barnabee-memory.service'
  [ "$sum1" = "$sum2" ] || { fail "the refused database changed: before: $sum1 after: $sum2"; return 1; }
  check "min_reader_version 99: build A refuses: $(vm "journalctl -b -u barnabee-memory.service -o cat --no-pager | grep -m1 -o 'needs a reader of version.*refuses to start'")"
  check "database directory listing and sha256 of memory.db* unchanged by the refusal"
  vm "sqlite3 $DB \"UPDATE barnabee_meta SET value='$sb' WHERE key='schema_version'; UPDATE barnabee_meta SET value='$mr' WHERE key='min_reader_version'\" && chown --reference=$DB $DB* &&
      systemctl reset-failed barnabee-memory.service; systemctl start --no-block barnabee-memory.service"
  wait_healthy memory 7701 90 || return 1

  # A broken build: the gate fails, raises an incident, the rollback restores build A.
  local sha_a sha_now
  sha_a="$(vm 'sha256sum < /usr/local/bin/barnabee-memory' | cut -c1-16)"
  deploy broken
  t0="$(ts)"
  vm 'systemctl restart --no-block barnabee-health-gate.service'
  wait_for 120 "the failing gate starts barnabee-rollback.service and it restores build A" \
    "journalctl -b -u barnabee-rollback.service -o cat --no-pager | grep -q 'barnabee-rollback: restored /usr/local/bin/barnabee-memory'" || return 1
  check "broken build: the gate failed and barnabee-rollback.service ran $(elapsed "$t0") s after the deploy"
  wait_healthy memory 7701 90 || return 1
  sha_now="$(vm 'sha256sum < /usr/local/bin/barnabee-memory' | cut -c1-16)"
  [ "$sha_now" = "$sha_a" ] || { fail "after the rollback barnabee-memory is $sha_now, not build A ($sha_a)"; return 1; }
  [[ "$(memory_get "$ida")" = "written by build A" && "$(memory_get "$idb")" = "written by build B" ]] ||
    { fail "memories lost across the failed upgrade and rollback"; return 1; }
  check "after the rollback: build A back ($sha_a), /health 200, memories $ida and $idb intact"
  local gate
  gate="$(vm 'systemctl show -p Result,ExecMainStatus barnabee-health-gate.service | tr "\n" " "')"
  case "$gate" in *Result=exit-code*ExecMainStatus=1*) check "barnabee-health-gate.service: $gate(exit 1 = rolled back)" ;;
    *) fail "barnabee-health-gate.service: $gate (expected Result=exit-code, status 1)"; return 1 ;; esac
  journal_json EVENT=incident REASON=gate_timeout > "$OUT/gate-incident.json"
  python3 - "$OUT/gate-incident.json" <<'P' || { fail "no EVENT=incident REASON=gate_timeout ACTION=rollback in the journal"; return 1; }
import json, sys
recs = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
r = [r for r in recs if r.get("ACTION") == "rollback"]
if not r:
    raise SystemExit(json.dumps(recs)[:2000])
r = r[-1]
print(f"    ok   journal EVENT=incident SEVERITY={r['SEVERITY']} UNIT={r['UNIT']} REASON={r['REASON']} ACTION={r['ACTION']}: {r['MESSAGE']}")
P
}
