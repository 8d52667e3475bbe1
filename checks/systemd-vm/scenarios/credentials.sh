# shellcheck shell=bash
# Scenario credentials: a secret that is not provisioned on this host, handed over as systemd
# credentials: LoadCredential=s3-secret-access-key:/run/nonexistent/secret plus a SetCredential=
# default for the same ID (systemd.exec(5): the default is used when LoadCredential= cannot be
# retrieved, and that is not fatal).
#   1. The shape nixos-modules/lib.nix renders, a default of one newline (`SetCredential=ID:\n`;
#      an EMPTY value is rejected by systemd 252, see ../README.md), on a oneshot unit of its own
#      (guest/credential-probe.service): systemd must start it and the 1-byte default must be in
#      $CREDENTIALS_DIRECTORY.
#   2. barnabee-memory with an S3 [replication] whose secret is that credential, the default a
#      newline (`SetCredential=ID:\n`, accepted by 252; the daemons trim it): the unit starts,
#      memory serves: /health 200 with the replication check degraded "not provisioned",
#      EVENT=replication_not_provisioned in the journal, a write acknowledged.
# Afterwards memory gets its usual config back, whatever happened.

credentials_probe() {
  local out
  if vm 'systemctl start credential-probe.service' 2>/dev/null; then
    out="$(vm "journalctl -b -u credential-probe.service -o cat --no-pager | grep -m1 '^[0-9]* /run/credentials/'")"
    case "$out" in
      "1 "*) check "systemd $(vm 'systemctl --version | head -1 | cut -d" " -f2') starts a unit with LoadCredential= of a missing file and the default SetCredential=s3-secret-access-key:\\n (the NixOS modules' shape); the service reads: $out" ;;
      *) fail "credential-probe.service started, but its credential is not the empty default: $out"; return 1 ;;
    esac
    return 0
  fi
  fail "systemd $(vm 'systemctl --version | head -1 | cut -d" " -f2') does NOT start a unit with LoadCredential= of a missing file and the default SetCredential=s3-secret-access-key:\\n, the shape nixos-modules/lib.nix renders: $(vm 'systemctl show -p Result,ExecMainStatus credential-probe.service | tr "\n" " "')(243 = CREDENTIALS); at load: $(vm "journalctl -b -u credential-probe.service -o cat --no-pager | grep -m1 'credential-probe.service:[0-9]*:'"); at start: $(vm "journalctl -b -u credential-probe.service -o cat --no-pager | grep -m1 'Failed to set up credentials'")"
  return 1
}

credentials_memory() {
  local line cred code out id
  vm 'systemctl restart barnabee-memory.service' 2>/dev/null ||
    { fail "barnabee-memory does not start with the unprovisioned S3 secret (newline default): $(vm 'systemctl show -p Result,ExecMainStatus barnabee-memory.service | tr "\n" " "'); journal: $(vm 'journalctl -b -u barnabee-memory.service -o cat --no-pager -n 6' | tr '\n' '|')"; return 1; }
  line="$(vm "systemctl show -p ActiveState,SubState,Result,NRestarts barnabee-memory.service | tr '\n' ' '")"
  case "$line" in
    *ActiveState=active*SubState=running*) check "barnabee-memory starts with LoadCredential= of a missing file and the default SetCredential=s3-secret-access-key:\\n (READY=1): $line" ;;
    *) fail "barnabee-memory not active (running) after the restart: $line"; return 1 ;;
  esac
  cred="$(vm 'stat -c "%s bytes, mode %a, uid %u" /run/credentials/barnabee-memory.service/s3-secret-access-key')" ||
    { fail "no credential s3-secret-access-key in /run/credentials/barnabee-memory.service"; return 1; }
  [[ "$cred" == "1 bytes"* ]] || { fail "credential s3-secret-access-key is not the default (one newline): $cred"; return 1; }
  check "barnabee-memory's \$CREDENTIALS_DIRECTORY/s3-secret-access-key is the default: $cred"

  code="$(unit_health memory 7701)"
  out="$(health_expect memory "$code" "replication=fail:not provisioned" "database=ok:")" ||
    { fail "barnabee-memory with an unprovisioned S3 secret: $out"; return 1; }
  [ "$code" = 200 ] || { fail "barnabee-memory with an unprovisioned S3 secret: /health $code, expected 200 (degraded)"; return 1; }
  check "barnabee-memory: $out"
  journal_json "_SYSTEMD_INVOCATION_ID=$(unit_prop barnabee-memory InvocationID)" > "$OUT/credentials-journal.json"
  out="$(python3 - "$OUT/credentials-journal.json" 2>&1 <<'P'
import json, sys
recs = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
events = [r.get("EVENT") for r in recs if r.get("EVENT")]
np = [r for r in recs if r.get("EVENT") == "replication_not_provisioned"]
if not np or "ready" not in events:
    raise SystemExit(f"no EVENT=replication_not_provisioned and EVENT=ready in this invocation (events: {events})")
print(f"EVENT=replication_not_provisioned PRIORITY={np[0]['PRIORITY']}: {np[0]['MESSAGE'][:240]}")
P
)" || { fail "barnabee-memory journal: $out"; return 1; }
  check "barnabee-memory journal (this invocation): $out"
  { id="$(memory_post "written without replication")" && [ "$(memory_get "$id")" = "written without replication" ]; } ||
    { fail "barnabee-memory with an unprovisioned S3 secret does not serve writes"; return 1; }
  check "barnabee-memory serves without replication: memory $id written and read back"
}

scenario_credentials() {
  local ok=0
  # barnabee-watchdog would restart memory while it is reconfigured.
  vm 'set -e
    systemctl stop barnabee-watchdog.service
    ! test -e /run/nonexistent/secret
    install -m644 /mnt/host/guest/credential-probe.service /etc/systemd/system/
    install -m644 /mnt/host/guest/memory-credential-default.toml /etc/barnabee/memory.toml
    install -m644 /mnt/host/guest/barnabee-memory-credential-default.conf /etc/systemd/system/barnabee-memory.service.d/20-credential.conf
    systemctl daemon-reload' || { fail "installing the credentials scenario's units failed"; return 1; }
  credentials_probe || ok=1
  credentials_memory || ok=1

  # Back to the usual config (no replication) for the scenarios after this one.
  vm 'set -e
    rm -f /etc/systemd/system/barnabee-memory.service.d/20-credential.conf /etc/systemd/system/credential-probe.service
    install -m644 /mnt/host/guest/memory.toml /etc/barnabee/memory.toml
    systemctl daemon-reload
    systemctl reset-failed
    systemctl restart barnabee-memory.service
    systemctl start barnabee-watchdog.service' || { fail "restoring memory's usual config failed"; return 1; }
  wait_healthy memory 7701 30 || return 1
  check "memory back on its usual config (no replication): /health 200; barnabee-watchdog running again"
  return "$ok"
}
