# shellcheck shell=bash
# Scenario backup: barnabee-memory replicates continuously to a real S3 server on the host
# (Garage 2.5.0, reached from the guest at 10.0.2.2) and restores from it on start when its
# database is missing.
#   Run 1 (wiped state): memories written, clean stop (everything committed ships), the guest's
#   database equals what our restore and the real Litestream restore from Garage, byte for byte;
#   the state directory is wiped; on start memory restores before READY=1; every memory is back;
#   then the appliance verifies its backup (POST /v1/backup/verify, what the daily schedule runs).
#   Run 2 (power cut, same machine): a write loop runs, qemu is SIGKILLed; the disk survives,
#   memory starts on its own database and every acknowledged write is there; replication resumes.
#   Run 3 (power cut, machine lost): a fresh guest from the image installs the units, memory
#   restores before serving. Restored: a gap-free prefix of the acknowledged writes, at a TXID >=
#   the last one memory reported shipped before the cut (only writes inside the replication
#   window, about one sync interval, may be lost: Litestream's RPO, reported as a figure). Then
#   our restore and Litestream's agree byte for byte again, and the watchdog's incident log and
#   the agents' cost ledger come back too.

MEMORY_DB=/var/lib/barnabee-memory/memory.db

# enable_replication: memory.toml with [replication] to the host's Garage, watchdog.toml and
# agents.toml with their incident log's and cost ledger's [replication] appended, the S3 secret
# as a credential of all three (drop-ins), daemon-reload. Does not (re)start the units.
enable_replication() {
  # Single quotes on purpose: $u is the guest shell's loop variable.
  # shellcheck disable=SC2016
  vm 'set -e
    install -m600 /mnt/host/guest/s3-secret-access-key /etc/barnabee/s3-secret-access-key
    install -m644 /mnt/host/guest/memory-replicated.toml /etc/barnabee/memory.toml
    install -m644 /mnt/host/guest/barnabee-memory-replication.conf /etc/systemd/system/barnabee-memory.service.d/20-replication.conf
    for u in watchdog agents; do
      cat /mnt/host/guest/$u.toml /mnt/host/guest/$u-replication.toml > /etc/barnabee/$u.toml
      mkdir -p /etc/systemd/system/barnabee-$u.service.d
      install -m644 /mnt/host/guest/barnabee-$u-replication.conf /etc/systemd/system/barnabee-$u.service.d/20-replication.conf
    done
    systemctl daemon-reload'
}

# incident_ids: the ids in the running watchdog's incident log (GET /v1/incidents), one line.
incident_ids() {
  vm 'curl -sS -m 5 "http://127.0.0.1:7705/v1/incidents?limit=100000"' |
    python3 -c 'import json, sys; print(" ".join(sorted(str(i["id"]) for i in json.load(sys.stdin)["incidents"])))'
}

# watchdog_replicated: start the watchdog with [replication] for long enough that its incident
# log (the earlier scenarios' restarts) is on the replica, record its incident ids in
# WD_INCIDENTS, stop it cleanly (it ships what is committed). Briefly: it supervises units this
# scenario keeps stopped.
watchdog_replicated() {
  local shipped="" i
  vm 'systemctl start barnabee-watchdog.service' || { fail "barnabee-watchdog does not start with [replication]: $(vm 'systemctl status --no-pager barnabee-watchdog | tail -5')"; return 1; }
  wait_healthy watchdog 7705 30 || return 1
  for i in $(seq 1 30); do
    shipped="$(vm 'curl -sS -m 5 http://127.0.0.1:7705/metrics' | awk '$1 == "barnabee_replication_last_shipped_txid" { print $2 }')"
    [ -n "$shipped" ] && [ "$shipped" != 0 ] && break
    sleep 1
  done
  [[ -n "$shipped" && "$shipped" != 0 ]] || { fail "the watchdog's incident log never shipped (barnabee_replication_last_shipped_txid ${shipped:-absent})"; return 1; }
  WD_INCIDENTS="$(incident_ids)" || { fail "GET /v1/incidents failed"; return 1; }
  [ -n "$WD_INCIDENTS" ] || { fail "the watchdog's incident log is empty: the earlier scenarios left no incident to bring back"; return 1; }
  vm 'systemctl stop barnabee-watchdog.service'
  vm "journalctl -b --no-pager -o cat -u barnabee-watchdog.service EVENT=replication_stopped | tail -n 1" | grep -q . ||
    { fail "no EVENT=replication_stopped from barnabee-watchdog at its clean stop"; return 1; }
  check "watchdog: incident log ($(wc -w <<< "$WD_INCIDENTS") incidents) replicated to s3://$S3_BUCKET/watchdog (TXID $shipped), clean stop shipped it"
}

# cost_mode: the running agents' "local only" switch (GET /v1/cost/mode), true or false.
cost_mode() {
  vm 'curl -sS -m 5 http://127.0.0.1:7702/v1/cost/mode' |
    python3 -c 'import json, sys; print(str(json.load(sys.stdin)["local_only"]).lower())'
}

# verify_on_the_appliance: what the daily verification does, asked for now (POST
# /v1/backup/verify): memory restores its replica at the TXID it ships with the writers held,
# into its own state directory (never beside the live files), checks every object's checksum
# and PRAGMA integrity_check, and compares TXID and row counts with the live database. The
# answer, the journal (EVENT=backup_verified) and /metrics all say so.
verify_on_the_appliance() {
  local out metrics
  out="$(vm 'curl -sS -m 120 -X POST http://127.0.0.1:7701/v1/backup/verify')" ||
    { fail "POST /v1/backup/verify failed: $out"; return 1; }
  python3 - "$out" > "$OUT/backup-verify.txt" 2>&1 <<'P' || { fail "backup verification on the appliance: $(cat "$OUT/backup-verify.txt")"; return 1; }
import json, sys
v = json.loads(sys.argv[1])
if not v.get("ok") or v.get("integrity_check") != "ok" or not v.get("txid"):
    raise SystemExit(f"not verified: {v}")
bad = [t for t in v["tables"] if t["live"] != t["replica"]]
if bad or not v["tables"]:
    raise SystemExit(f"row counts differ: {bad or 'no tables compared'}")
counts = ", ".join(f"{t['table']} {t['live']}" for t in v["tables"])
print(f"TXID {v['txid']}, {v['pages']} pages, integrity_check ok, rows equal ({counts}), {v['duration_seconds']:.2f} s")
P
  vm "journalctl -b --no-pager -o cat -u barnabee-memory.service EVENT=backup_verified | tail -n 1" | grep -q . ||
    { fail "no EVENT=backup_verified in barnabee-memory's journal"; return 1; }
  metrics="$(vm 'curl -sS -m 5 http://127.0.0.1:7701/metrics' | awk '$1 ~ /^barnabee_backup_last_verified_timestamp_seconds/ && $2 > 0 { print $1 " " $2 }')"
  [ -n "$metrics" ] || { fail "barnabee_backup_last_verified_timestamp_seconds not set after a good verification"; return 1; }
  check "verification on the appliance (POST /v1/backup/verify): $(cat "$OUT/backup-verify.txt"); EVENT=backup_verified; $metrics"
}

# restored_before_ready DAEMON: run 3's fresh guest: this start of barnabee-DAEMON restored its
# database from the replica before it served (EVENT=restored before EVENT=ready in the records of
# its MainPID); the line describing it goes to $OUT/backup-run3-DAEMON.txt.
restored_before_ready() {
  local d=$1
  vm "journalctl -b --no-pager -o json _PID=\$(systemctl show -p MainPID --value barnabee-$d)" > "$OUT/backup-run3-$d-journal.json"
  python3 - "$OUT/backup-run3-$d-journal.json" "$d" > "$OUT/backup-run3-$d.txt" 2>&1 <<'P' || { fail "run3: $d: $(cat "$OUT/backup-run3-$d.txt")"; return 1; }
import json, sys
recs = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
events = [r.get("EVENT") for r in recs]
if "restored" not in events or "ready" not in events or events.index("restored") > events.index("ready"):
    raise SystemExit(f"no EVENT=restored before EVENT=ready from barnabee-{sys.argv[2]} (events: {events})")
print(f"EVENT=restored TXID={recs[events.index('restored')].get('TXID')}, then EVENT=ready")
P
}

# agents_answering: barnabee-agents active and answering /health (degraded is fine here: the
# test guest has no Home Assistant).
agents_answering() {
  wait_for 90 "barnabee-agents active and answering /health" \
    "systemctl is-active -q barnabee-agents && curl -s -o /dev/null -m 2 http://127.0.0.1:7702/health"
}

# ledger_replicated: start the agents with [replication], switch the family to "local only"
# (POST /v1/cost/mode: kept in the cost ledger), wait until the ledger has shipped a TXID that
# holds the switch, stop them cleanly (they ship what is committed). The machine-lost run's
# fresh guest must come up "local only" again: the ledger came back from the replica.
ledger_replicated() {
  local shipped="" before i
  vm 'systemctl start barnabee-agents.service' || { fail "barnabee-agents does not start with [replication]: $(vm 'systemctl status --no-pager barnabee-agents | tail -5')"; return 1; }
  agents_answering || return 1
  before="$(vm 'curl -sS -m 5 http://127.0.0.1:7702/metrics' | awk '$1 == "barnabee_replication_last_shipped_txid" { print $2 }')"
  vm "curl -sS -m 10 -X POST -H 'content-type: application/json' -d '{\"local_only\": true}' http://127.0.0.1:7702/v1/cost/mode" > /dev/null ||
    { fail "POST /v1/cost/mode {local_only: true} failed"; return 1; }
  [ "$(cost_mode)" = true ] || { fail "the agents do not report local_only after POST /v1/cost/mode"; return 1; }
  for i in $(seq 1 30); do
    shipped="$(vm 'curl -sS -m 5 http://127.0.0.1:7702/metrics' | awk '$1 == "barnabee_replication_last_shipped_txid" { print $2 }')"
    [[ -n "$shipped" && "$shipped" != 0 && "$shipped" != "${before:-0}" ]] && break
    sleep 1
  done
  [[ -n "$shipped" && "$shipped" != 0 && "$shipped" != "${before:-0}" ]] ||
    { fail "the agents' cost ledger never shipped the switch (barnabee_replication_last_shipped_txid ${shipped:-absent}, before it ${before:-absent})"; return 1; }
  vm 'systemctl stop barnabee-agents.service'
  vm "journalctl -b --no-pager -o cat -u barnabee-agents.service EVENT=replication_stopped | tail -n 1" | grep -q . ||
    { fail "no EVENT=replication_stopped from barnabee-agents at its clean stop"; return 1; }
  check "agents: cost ledger with local_only=true replicated to s3://$S3_BUCKET/agents (TXID $shipped), clean stop shipped it"
}

replica_url() { echo "s3://$S3_BUCKET/memory?endpoint=http://127.0.0.1:$S3_PORT&region=garage&forcePathStyle=true"; }

# memory_journal_json: this invocation's records of barnabee-memory (by its MainPID) as JSON lines.
memory_journal_json() { vm "journalctl -b --no-pager -o json _PID=\$(systemctl show -p MainPID --value barnabee-memory)"; }

# guest_sql SQL: run a read-only query on the guest's memory database (root, sqlite3 CLI).
guest_sql() { vm "sqlite3 -readonly $MEMORY_DB \"$1\""; }

# compare_replica LABEL: stop memory cleanly (it ships what is committed), take the guest's
# database (main file + WAL, checkpointed on the host copy), restore the replica on the host with
# barnabee-replicator and with the real Litestream: all three byte-identical, same TXID.
compare_replica() {
  local label=$1 d ours_out ls_txid stopped
  d="$OUT/backup-$label"
  rm -rf "$d" && mkdir -p "$d"
  vm 'systemctl stop barnabee-memory.service' || { fail "$label: stopping barnabee-memory failed"; return 1; }
  stopped="$(vm "journalctl -b --no-pager -o cat -u barnabee-memory.service EVENT=replication_stopped | tail -n 1")"
  [ -n "$stopped" ] || { fail "$label: no EVENT=replication_stopped at the clean stop"; return 1; }
  check "$label: clean stop: $stopped"
  vm "cat $MEMORY_DB" > "$d/source.db" || { fail "$label: cannot read the guest's $MEMORY_DB"; return 1; }
  if vm "test -s $MEMORY_DB-wal"; then vm "cat $MEMORY_DB-wal" > "$d/source.db-wal"; fi
  python3 -c 'import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); c.execute("PRAGMA wal_checkpoint(TRUNCATE)"); c.close()' "$d/source.db" ||
    { fail "$label: the guest's database copy does not open"; return 1; }
  rm -f "$d/source.db-wal" "$d/source.db-shm"
  ours_out="$(AWS_ACCESS_KEY_ID=$S3_KEY AWS_SECRET_ACCESS_KEY=$S3_SECRET NO_PROXY=127.0.0.1 \
    "$ROOT/target/debug/barnabee-replicator" restore -o "$d/ours.db" "$(replica_url)" 2>&1)" ||
    { fail "$label: barnabee-replicator restore from Garage failed: $ours_out"; return 1; }
  ls_txid="$(AWS_ACCESS_KEY_ID=$S3_KEY AWS_SECRET_ACCESS_KEY=$S3_SECRET \
    python3 "$HERE/litestream-restore.py" "$(replica_url)" "$d/litestream.db" 2> "$d/litestream.err")" ||
    { fail "$label: the real Litestream did not restore the replica: $(tail -c 1500 "$d/litestream.err")"; return 1; }
  cmp -s "$d/source.db" "$d/ours.db" ||
    { fail "$label: barnabee-replicator's restore differs from the guest's database ($(cmp "$d/source.db" "$d/ours.db" 2>&1 | head -1))"; return 1; }
  cmp -s "$d/source.db" "$d/litestream.db" ||
    { fail "$label: Litestream's restore differs from the guest's database ($(cmp "$d/source.db" "$d/litestream.db" 2>&1 | head -1))"; return 1; }
  check "$label: guest database ($(stat -c %s "$d/source.db") bytes, sha256 $(sha256sum < "$d/source.db" | cut -c1-16)) == barnabee-replicator restore ($(tail -n 1 <<< "$ours_out")) == Litestream 0.5.17 restore (TXID $ls_txid), byte for byte"
  BACKUP_TXID=$ls_txid
}

# start_and_check_restore LABEL: start memory on a missing database; it must restore from the
# replica before READY=1 (journal order: EVENT=restored, then EVENT=ready) and serve.
start_and_check_restore() {
  local label=$1 t0
  t0="$(ts)"
  vm 'systemctl start barnabee-memory.service' || { fail "$label: barnabee-memory did not start: $(vm 'systemctl status --no-pager barnabee-memory | tail -5')"; return 1; }
  memory_journal_json > "$OUT/backup-$label-journal.json"
  RESTORED_TXID="$(python3 - "$OUT/backup-$label-journal.json" 2> "$OUT/backup-$label-restore.txt" <<'P'
import json, sys
recs = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
events = [r.get("EVENT") for r in recs]
if "restored" not in events:
    raise SystemExit(f"no EVENT=restored in this start's records (events: {events})")
if "ready" not in events or events.index("restored") > events.index("ready"):
    raise SystemExit(f"EVENT=restored is not before EVENT=ready (events: {events})")
r = recs[events.index("restored")]
print(r["TXID"])
print(f"EVENT=restored TXID={r['TXID']} PAGES={r.get('PAGES')} BYTES_DOWNLOADED={r.get('BYTES_DOWNLOADED')} DURATION_MS={r.get('DURATION_MS')}, then EVENT=ready", file=sys.stderr)
P
)" || { fail "$label: $(cat "$OUT/backup-$label-restore.txt")"; return 1; }
  check "$label: systemctl start returned after $(elapsed "$t0") s: restored from Garage before serving: $(cat "$OUT/backup-$label-restore.txt")"
  wait_healthy memory 7701 30 || return 1
}

# write_then_cut LABEL: a write loop in the guest (each acknowledged POST is timestamped on the
# host as its line arrives, so the record of what was acknowledged survives the guest); after 40
# acknowledgements read the TXID memory reports shipped, then pull the plug mid-write.
# Writes $OUT/backup-LABEL-acks.txt ("<time> <n>" per acknowledged write n) and -cut.txt (the
# time of the cut); sets SHIPPED.
write_then_cut() {
  local label=$1 loop t0 ACKS
  ACKS="$OUT/backup-$label-acks.txt"
  : > "$ACKS"
  vm "i=0; while :; do i=\$((i + 1));
        r=\$(curl -sS -m 10 -X POST -H 'content-type: application/json' \
          -d \"{\\\"summary\\\": \\\"backup $label memory \$i\\\", \\\"memory_type\\\": \\\"fact\\\", \\\"owner\\\": \\\"vmtest\\\", \\\"visibility\\\": \\\"family\\\"}\" \
          -w ' %{http_code}' http://127.0.0.1:7701/v1/memories) || continue
        case \"\$r\" in *' 201'|*' 200') echo \"\$i\";; esac; done" |
    while read -r n; do echo "$(ts) $n"; done > "$ACKS" &
  loop=$!
  t0="$(ts)"
  until [ "$(wc -l < "$ACKS")" -ge 40 ]; do
    awk -v a="$t0" -v b="$(ts)" 'BEGIN { exit !(b - a > 90) }' && { fail "$label: fewer than 40 writes acknowledged in 90 s ($(wc -l < "$ACKS"))"; kill "$loop" 2>/dev/null; return 1; }
    sleep 0.5
  done
  SHIPPED="$(vm 'curl -sS -m 5 http://127.0.0.1:7701/metrics' | awk '$1 == "barnabee_replication_last_shipped_txid" { print $2 }')"
  [ -n "$SHIPPED" ] || { fail "$label: no barnabee_replication_last_shipped_txid on /metrics"; kill "$loop" 2>/dev/null; return 1; }
  ts > "$OUT/backup-$label-cut.txt"
  pull_the_plug
  wait "$loop" 2>/dev/null
  check "$label: power cut (qemu SIGKILL) during the write loop: $(wc -l < "$ACKS") writes acknowledged, memory had reported TXID $SHIPPED shipped just before"
}

# check_acked LABEL MODE: compare the guest's rows of LABEL's write loop with its acknowledgements.
# MODE all: every acknowledged write is there (one more may be: committed, the answer cut off).
# MODE prefix: a gap-free prefix of them (a restore from the replica: writes inside the last
# replication window may be lost, reported as a figure).
check_acked() {
  local label=$1 mode=$2
  guest_sql "SELECT substr(summary, length('backup $label memory ') + 1) FROM memories WHERE summary LIKE 'backup $label memory %'" > "$OUT/backup-$label-rows.txt" ||
    { fail "$label: cannot read the guest's rows"; return 1; }
  python3 - "$OUT/backup-$label-acks.txt" "$OUT/backup-$label-rows.txt" "$(cat "$OUT/backup-$label-cut.txt")" "$mode" "$label" <<'P' || { fail "$label: the rows do not match the acknowledged writes ($mode)"; return 1; }
import sys
acks = [l.split() for l in open(sys.argv[1]) if l.strip()]
acked = [int(n) for _, n in acks]
rows = sorted(int(l) for l in open(sys.argv[2]) if l.strip())
cut, mode, label = float(sys.argv[3]), sys.argv[4], sys.argv[5]
k = len(rows)
if acked != list(range(1, len(acked) + 1)):
    raise SystemExit(f"acknowledgement log is not sequential: {acked[:20]}...")
if rows != list(range(1, k + 1)):
    missing = sorted(set(range(1, max(rows, default=0) + 1)) - set(rows))
    raise SystemExit(f"rows have gaps: missing {missing[:20]}")
if k > len(acked) + 1:
    raise SystemExit(f"{k} rows but only {len(acked)} writes acknowledged")
if k == 0:
    raise SystemExit("no row of this write loop")
lost = acked[k:]
if mode == "all":
    if lost:
        raise SystemExit(f"acknowledged writes missing: {lost[:20]}")
    print(f"    \033[32mok\033[0m   {label}: every acknowledged write is there: {len(acked)} acknowledged, {k} rows, no gap")
else:
    window = cut - float(acks[k][0]) if lost else 0.0
    print(f"    \033[32mok\033[0m   {label}: rows 1..{k} of {len(acked)} acknowledged, no gap; lost: {len(lost)} "
          f"(acknowledged in the last {window:.2f} s before the cut: the replication window)")
P
}

# run1_intact LABEL: run 1's 20 memories readable by id.
run1_intact() {
  local i
  for i in "${!RUN1_IDS[@]}"; do
    [ "$(memory_get "${RUN1_IDS[$i]}")" = "backup run1 memory $((i + 1))" ] || { fail "$1: run 1's memory ${RUN1_IDS[$i]} missing"; return 1; }
  done
}

scenario_backup() {
  local i id n_before n_after summary
  RUN1_IDS=()
  # barnabee-watchdog would restart memory while the scenario stops it on purpose. The other
  # daemons have nothing to do with memory's replica: disabled, so the reboot below does not
  # spend the TCG guest's CPU on starting them.
  vm "systemctl stop barnabee-watchdog.service && systemctl disable --now --quiet barnabee-agents.service barnabee-voice.service barnabee-inference.service"
  enable_replication || { fail "installing the replication config failed"; return 1; }
  vm 'systemctl restart barnabee-memory.service' || { fail "barnabee-memory does not start with [replication]: $(vm 'systemctl status --no-pager barnabee-memory | tail -5')"; return 1; }
  wait_healthy memory 7701 30 || return 1
  summary="$(vm 'curl -sS -m 5 http://127.0.0.1:7701/health')"
  grep -q '"replication"' <<< "$summary" || { fail "/health has no replication check: $summary"; return 1; }
  check "memory replicating to s3://$S3_BUCKET/memory at http://10.0.2.2:$S3_PORT (Garage on the host); /health: $(python3 -c 'import json,sys; d=json.load(sys.stdin); print(json.dumps(d.get("checks", d).get("replication", d)))' <<< "$summary" 2>/dev/null || echo "$summary")"
  watchdog_replicated || return 1
  ledger_replicated || return 1

  # --- run 1: clean stop, state directory wiped, restore on start --------------------------------
  for i in $(seq 1 20); do
    id="$(memory_post "backup run1 memory $i")" || { fail "POST /v1/memories #$i failed"; return 1; }
    RUN1_IDS+=("$id")
  done
  n_before="$(guest_sql 'SELECT count(*) FROM memories')"
  check "run1: 20 memories acknowledged; $n_before memories in the database (with the earlier scenarios')"
  compare_replica run1 || return 1
  vm "rm -rf /var/lib/private/barnabee-memory /var/lib/barnabee-memory" || { fail "wiping the state directory failed"; return 1; }
  vm "test ! -e $MEMORY_DB" && check "run1: state directory /var/lib/private/barnabee-memory wiped"
  start_and_check_restore run1 || return 1
  [ "$RESTORED_TXID" = "$BACKUP_TXID" ] || { fail "run1: restored TXID $RESTORED_TXID, the replica held $BACKUP_TXID"; return 1; }
  n_after="$(guest_sql 'SELECT count(*) FROM memories')"
  [ "$n_after" = "$n_before" ] || { fail "run1: $n_before memories before the wipe, $n_after after the restore"; return 1; }
  run1_intact run1 || return 1
  check "run1: all $n_after memories back (TXID $RESTORED_TXID), each of the 20 acknowledged ones readable through GET /v1/memories/{id}"
  verify_on_the_appliance || return 1

  # --- run 2: power cut mid-write, the same machine boots again -----------------------------------
  # Its disk ($VM_DISK) survives: memory opens its own database (no restore), every acknowledged
  # write is there (synchronous=FULL), and replication resumes from its recorded position after
  # an unclean stop: the unshipped tail ships, the replica equals the database again.
  write_then_cut run2 || return 1
  boot_vm || { fail "run2: the guest does not boot again after the power cut"; return 1; }
  wait_healthy memory 7701 90 || return 1
  # Enabled, so systemd started it at boot too; it would restart memory during the clean stop.
  vm 'systemctl stop barnabee-watchdog.service'
  memory_journal_json > "$OUT/backup-run2-journal.json"
  python3 - "$OUT/backup-run2-journal.json" <<'P' > "$OUT/backup-run2-start.txt" 2>&1 || { fail "run2: $(cat "$OUT/backup-run2-start.txt")"; return 1; }
import json, sys
events = [json.loads(l).get("EVENT") for l in open(sys.argv[1]) if l.strip()]
if "ready" not in events:
    raise SystemExit(f"no EVENT=ready from barnabee-memory after the reboot (events: {events})")
if "restored" in events:
    raise SystemExit(f"memory restored from the replica although its database survived (events: {events})")
print("events " + ", ".join(e for e in events if e))
P
  check "run2: rebooted after the power cut, barnabee-memory started by systemd on its surviving database, no restore ($(cat "$OUT/backup-run2-start.txt"))"
  check_acked run2 all || return 1
  run1_intact run2 || return 1
  compare_replica run2 || return 1
  [ "$BACKUP_TXID" -ge "$SHIPPED" ] || { fail "run2: replica at TXID $BACKUP_TXID, older than the $SHIPPED shipped before the cut"; return 1; }
  check "run2: the tail unshipped at the cut shipped after the reboot: replica TXID $BACKUP_TXID (>= $SHIPPED before the cut)"
  vm 'systemctl start barnabee-memory.service' && wait_healthy memory 7701 30 || return 1

  # --- run 3: power cut mid-write, the machine is lost: a fresh one restores -----------------------
  write_then_cut run3 || return 1
  # Only this boot: a fresh machine from the image (bash restores VM_DISK after the call).
  VM_DISK='' boot_vm || { fail "run3: the fresh guest does not boot"; return 1; }
  DAEMONS="memory watchdog agents" install_units --no-start || { fail "run3: installing the units on the fresh guest failed"; return 1; }
  enable_replication || { fail "run3: installing the replication config failed"; return 1; }
  vm "test ! -e $MEMORY_DB" && check "run3: fresh guest from the image (the old disk is gone), units installed, no database"
  start_and_check_restore run3 || return 1
  [ "$RESTORED_TXID" -ge "$SHIPPED" ] ||
    { fail "run3: restored TXID $RESTORED_TXID is older than the TXID $SHIPPED memory reported shipped before the cut"; return 1; }
  check_acked run3 prefix || return 1
  check_acked run2 all || return 1
  run1_intact run3 || return 1
  check "run3: restored TXID $RESTORED_TXID >= $SHIPPED (shipped before the cut); run 1's 20 and run 2's memories all there"
  compare_replica run3 || return 1
  vm 'systemctl start barnabee-memory.service'
  # The watchdog's incident log comes back too: restored before it serves (EVENT=restored
  # before EVENT=ready), every incident the old machine had. Then stopped again: this guest
  # has memory's, its own and the agents' units only, its config lists four.
  vm 'systemctl start barnabee-watchdog.service' || { fail "run3: barnabee-watchdog did not start: $(vm 'systemctl status --no-pager barnabee-watchdog | tail -5')"; return 1; }
  wait_healthy watchdog 7705 30 || return 1
  restored_before_ready watchdog || return 1
  local got missing=""
  got="$(incident_ids)" || { fail "run3: GET /v1/incidents failed"; return 1; }
  for i in $WD_INCIDENTS; do
    [[ " $got " == *" $i "* ]] || missing="$missing $i"
  done
  vm 'systemctl stop barnabee-watchdog.service'
  [ -z "$missing" ] || { fail "run3: incidents missing on the fresh machine:$missing (had: $WD_INCIDENTS; got: $got)"; return 1; }
  check "run3: the watchdog's incident log came back: $(cat "$OUT/backup-run3-watchdog.txt"); all $(wc -w <<< "$WD_INCIDENTS") incidents of the old machine there"
  # The cost ledger too: the agents restore it before they serve, and the family's "local
  # only" switch set on the old machine holds on the new one.
  vm 'systemctl start barnabee-agents.service' || { fail "run3: barnabee-agents did not start: $(vm 'systemctl status --no-pager barnabee-agents | tail -5')"; return 1; }
  agents_answering || return 1
  restored_before_ready agents || return 1
  local mode
  mode="$(cost_mode)" || { fail "run3: GET /v1/cost/mode failed"; return 1; }
  vm 'systemctl stop barnabee-agents.service'
  [ "$mode" = true ] || { fail "run3: the fresh machine's agents are not local_only: the cost ledger did not come back (local_only=$mode)"; return 1; }
  check "run3: the agents' cost ledger came back: $(cat "$OUT/backup-run3-agents.txt"); local_only=true as set on the old machine"
}
