# shellcheck shell=bash
# Host-side helpers of the systemd VM harness (sourced by ./run and the scenarios).
# VM state lives in $RUN (a temp dir per run); the cached image in $IMG_DIR.

ts() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(ts)" 'BEGIN { printf "%.1f", b - a }'; }
log() { printf '    %s\n' "$*"; }
# check DESCRIPTION: prints what a scenario checked; fail DESCRIPTION: records a failure.
check() { printf '    \033[32mok\033[0m   %s\n' "$*"; }
fail() {
  printf '    \033[31mFAIL\033[0m %s\n' "$*"
  # shellcheck disable=SC2034 # read by ./run (its verdict and exit status)
  FAILED=1
  return 1
}

# vm CMD...: run a shell command in the guest as root (exit status passes through).
vm() {
  ssh -q -i "$IMG_DIR/keys/id_ed25519" -p "$SSH_PORT" \
    -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR \
    -o ConnectTimeout=5 -o BatchMode=yes -o ServerAliveInterval=5 -o ServerAliveCountMax=6 \
    -o ControlMaster=auto -o ControlPath="$RUN/ssh-%p.ctl" -o ControlPersist=120 \
    root@127.0.0.1 "$@"
}

# Hardware virtualisation only when the CPU has it AND /dev/kvm opens; otherwise TCG (here:
# /dev/kvm is a PVM-style nested hypervisor that cannot run a stock kernel at speed).
pick_accel() {
  if [ -z "${BARNABEE_VM_ACCEL:-}" ] && grep -qE '\b(vmx|svm)\b' /proc/cpuinfo && [ -r /dev/kvm ] && [ -w /dev/kvm ] &&
    python3 -c 'import os,fcntl; fd=os.open("/dev/kvm", os.O_RDWR); fcntl.ioctl(fd, 0xAE00)' 2>/dev/null; then
    echo kvm
  else
    echo "${BARNABEE_VM_ACCEL:-tcg}"
  fi
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# new_disk PATH: a private raw copy of the cached image (sparse; the cache is never written).
new_disk() { cp --sparse=always "$IMG_DIR/disk.img" "$1"; }

# boot_vm: start qemu in the background, share $RUN/share read-only over 9p, wait for ssh and
# for systemd to finish booting. The disk is $VM_DISK when set: a raw file that outlives the
# guest, so a power cut (pull_the_plug) followed by boot_vm is a reboot of the same machine.
# (Raw with cache=unsafe is safe against a SIGKILL of qemu: every write the guest saw complete
# was already pwritten to the host file; only a host crash could lose it.) Without $VM_DISK it
# boots the cached image with -snapshot: a fresh machine whose disk dies with it.
boot_vm() {
  local accel acc t0 snapshot=()
  accel="$(pick_accel)"
  # The commas are qemu's option syntax (one argument), not array separators.
  # shellcheck disable=SC2054
  if [ "$accel" = kvm ]; then acc=(-accel kvm -cpu host); else acc=(-accel tcg,thread=multi,tb-size=256 -cpu max); fi
  [ -n "${VM_DISK:-}" ] || snapshot=(-snapshot)
  SSH_PORT="$(free_port)"
  t0="$(ts)"
  qemu-system-x86_64 "${acc[@]}" -m "${BARNABEE_VM_MEM:-1024}" -smp 2 -M q35 \
    -nodefaults -no-user-config -display none -vga none \
    -kernel "$IMG_DIR/vmlinux" -initrd "$IMG_DIR/initrd.img" \
    -append "root=/dev/vda rw console=ttyS0,115200 net.ifnames=0 panic=-1" \
    -drive file="${VM_DISK:-$IMG_DIR/disk.img}",if=virtio,format=raw,cache=unsafe,discard=unmap "${snapshot[@]}" \
    -netdev user,id=n0,hostfwd=tcp:127.0.0.1:"$SSH_PORT"-:22 -device virtio-net-pci,netdev=n0 \
    -virtfs local,path="$RUN/share",mount_tag=hostshare,security_model=none,readonly=on \
    -device virtio-rng-pci -serial file:"$RUN/serial.log" \
    -qmp unix:"$RUN/qmp.sock",server=on,wait=off \
    -no-reboot -pidfile "$RUN/qemu.pid" -daemonize
  QEMU_PID="$(cat "$RUN/qemu.pid")"
  until vm true 2>/dev/null; do
    kill -0 "$QEMU_PID" 2>/dev/null || { echo "qemu exited during boot; serial console:" >&2; tail -30 "$RUN/serial.log" >&2; return 1; }
    if awk -v a="$t0" -v b="$(ts)" 'BEGIN { exit !(b - a > 240) }'; then
      echo "no ssh after 240 s; serial console:" >&2; tail -30 "$RUN/serial.log" >&2; return 1
    fi
    sleep 0.5
  done
  local state
  state="$(vm 'systemctl is-system-running --wait' || true)"
  echo "guest up ($accel) after $(elapsed "$t0") s: system $state, $(vm 'systemctl --version | head -1')"
  vm 'mkdir -p /mnt/host && mount -t 9p -o trans=virtio,version=9p2000.L,ro hostshare /mnt/host'
  # The clock: the guest's RTC comes from the host, but set it anyway (journal timestamps).
  vm "date -s @$(date +%s) >/dev/null"
}

# collect_journal: the whole guest journal (verbose, with fields) into $JOURNAL.
collect_journal() {
  [ -n "${QEMU_PID:-}" ] && kill -0 "$QEMU_PID" 2>/dev/null || return 0
  vm 'journalctl -b --no-pager -o short-precise' > "$JOURNAL" 2>/dev/null || true
  local d match=
  for d in $DAEMONS; do match+="${match:+ + }_SYSTEMD_UNIT=barnabee-$d.service + SYSLOG_IDENTIFIER=barnabee-$d"; done
  vm "journalctl -b --no-pager -o export $match" > "${JOURNAL%.log}.export" 2>/dev/null || true
}

# power_off: clean poweroff (bounded), then make sure qemu is gone.
power_off() {
  [ -n "${QEMU_PID:-}" ] || return 0
  if kill -0 "$QEMU_PID" 2>/dev/null; then
    vm 'systemctl poweroff --no-block' >/dev/null 2>&1 || true
    for _ in $(seq 1 40); do kill -0 "$QEMU_PID" 2>/dev/null || break; sleep 0.25; done
    kill -0 "$QEMU_PID" 2>/dev/null && kill "$QEMU_PID" 2>/dev/null
    for _ in $(seq 1 20); do kill -0 "$QEMU_PID" 2>/dev/null || break; sleep 0.25; done
    kill -0 "$QEMU_PID" 2>/dev/null && kill -9 "$QEMU_PID" 2>/dev/null
  fi
  forget_guest
}

# forget_guest: close the ssh master connection of the guest that is gone; the next boot_vm
# gets a new port and a new master.
forget_guest() {
  ssh -q -o ControlPath="$RUN/ssh-%p.ctl" -p "$SSH_PORT" -O exit root@127.0.0.1 >/dev/null 2>&1 || true
  rm -f "$RUN"/ssh-*.ctl
  QEMU_PID=
}

# wait_for SECONDS DESCRIPTION GUEST_CMD: poll GUEST_CMD (every 0.5 s) until it succeeds.
wait_for() {
  local limit=$1 what=$2 cmd=$3 t0
  t0="$(ts)"
  while ! vm "$cmd" >/dev/null 2>&1; do
    if awk -v a="$t0" -v b="$(ts)" -v l="$limit" 'BEGIN { exit !(b - a > l) }'; then
      fail "$what: not within ${limit} s"
      return 1
    fi
    sleep 0.5
  done
  # shellcheck disable=SC2034 # read by the scenarios (how long the wait took)
  WAITED="$(elapsed "$t0")"
}

# --- the S3 peer for the backup scenario ----------------------------------------------------
# garage_start DIR: Garage 2.5.0 (dev/setup.d/31-garage.sh builds it; GARAGE overrides) as a
# single node on 127.0.0.1, which the guest reaches as 10.0.2.2 (qemu user networking), with one
# bucket `barnabee` and one key. Sets S3_PORT, S3_KEY, S3_SECRET, GARAGE_PID.
S3_KEY=GK0123456789abcdef01234567
S3_SECRET=0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
S3_BUCKET=barnabee
garage_start() {
  local dir=$1 bin rpc secret t0
  bin="${GARAGE:-$CACHE/tools/garage-2.5.0/bin/garage}"
  [ -x "$bin" ] || { echo "garage missing at $bin: run dev/setup (dev/setup.d/31-garage.sh builds garage 2.5.0) or set GARAGE" >&2; return 1; }
  mkdir -p "$dir"
  S3_PORT="$(free_port)"
  rpc="$(free_port)"
  secret="$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')"
  cat > "$dir/garage.toml" <<G
metadata_dir = "$dir/meta"
data_dir = "$dir/data"
db_engine = "sqlite"
replication_factor = 1
rpc_bind_addr = "127.0.0.1:$rpc"
rpc_public_addr = "127.0.0.1:$rpc"
rpc_secret = "$secret"
[s3_api]
s3_region = "garage"
api_bind_addr = "127.0.0.1:$S3_PORT"
root_domain = ".s3.garage"
G
  chmod 600 "$dir/garage.toml"
  GARAGE_BIN=$bin GARAGE_CFG="$dir/garage.toml"
  "$bin" -c "$dir/garage.toml" server > "$dir/garage.log" 2>&1 &
  GARAGE_PID=$!
  t0="$(ts)"
  until garage status >/dev/null 2>&1; do
    kill -0 "$GARAGE_PID" 2>/dev/null || { echo "garage exited: $(tail -5 "$dir/garage.log")" >&2; return 1; }
    awk -v a="$t0" -v b="$(ts)" 'BEGIN { exit !(b - a > 30) }' && { echo "garage not up after 30 s" >&2; return 1; }
    sleep 0.2
  done
  local id
  id="$(garage node id -q | cut -d@ -f1)"
  {
    garage layout assign -z dc1 -c 1G "$id" >/dev/null &&
      garage layout apply --version 1 >/dev/null &&
      garage key import --yes -n vmtest "$S3_KEY" "$S3_SECRET" >/dev/null &&
      garage bucket create "$S3_BUCKET" >/dev/null &&
      garage bucket allow --read --write --owner "$S3_BUCKET" --key vmtest >/dev/null
  } ||
    { echo "garage bootstrap failed: $(tail -5 "$dir/garage.log")" >&2; return 1; }
  until curl -s -o /dev/null "http://127.0.0.1:$S3_PORT/"; do
    awk -v a="$t0" -v b="$(ts)" 'BEGIN { exit !(b - a > 30) }' && { echo "garage S3 API not answering on 127.0.0.1:$S3_PORT after 30 s" >&2; return 1; }
    sleep 0.2
  done
  echo "garage $("$bin" --version 2>/dev/null | head -1) on 127.0.0.1:$S3_PORT (guest: 10.0.2.2:$S3_PORT), bucket $S3_BUCKET, up in $(elapsed "$t0") s"
}
garage() { "$GARAGE_BIN" -c "$GARAGE_CFG" "$@"; }
garage_stop() {
  [ -n "${GARAGE_PID:-}" ] || return 0
  kill "$GARAGE_PID" 2>/dev/null && wait "$GARAGE_PID" 2>/dev/null
  GARAGE_PID=
}

# --- installing the appliance's units into a booted guest -------------------------------------
# The daemons' units, in the order nixos-modules/watchdog.nix lists them, then the watchdog.
DAEMONS="memory agents voice inference watchdog"
daemon_units() { local d; for d in $DAEMONS; do printf 'barnabee-%s.service ' "$d"; done; }
# install_units [--no-start]: like a package plus host configuration: unit files into
# /usr/local/lib/systemd/system (the package's place), drop-ins, configs and credentials into
# /etc, ONNX Runtime and the VAD model when staged, the polkit rule, the rollback unit, build
# A's binaries; then enable and start every daemon (NixOS: wantedBy multi-user.target).
# `DAEMONS="memory watchdog" install_units` installs only those (the backup scenario's fresh guest).
install_units() {
  # Single quotes on purpose: the guest shell expands $u and its own $(...); only $DAEMONS
  # and $(daemon_units) are spliced in from here.
  # shellcheck disable=SC2016
  vm 'set -e
    install -d /usr/local/lib/systemd/system /etc/barnabee /etc/polkit-1/rules.d /usr/local/sbin /tmp/deploy
    install -m644 /mnt/host/units/*.service /usr/local/lib/systemd/system/
    for u in '"$DAEMONS"'; do
      install -d /etc/systemd/system/barnabee-$u.service.d
      install -m644 /mnt/host/guest/barnabee-$u.conf /etc/systemd/system/barnabee-$u.service.d/10-host.conf
      install -m644 /mnt/host/guest/$u.toml /etc/barnabee/
      ln -sf /mnt/host/A/barnabee-$u /tmp/deploy/
      case $u in
        memory|watchdog) install -m644 /mnt/host/guest/50-test-timing.conf /etc/systemd/system/barnabee-$u.service.d/ ;;
        agents) install -m600 /mnt/host/guest/llm-api-key /etc/barnabee/llm-api-key ;;
        inference) if [ -d /mnt/host/onnxruntime ]; then
            install -d /usr/local/lib/barnabee/onnxruntime /usr/local/share/barnabee/models
            install -m644 /mnt/host/onnxruntime/libonnxruntime.so.* /usr/local/lib/barnabee/onnxruntime/
            ln -sf "$(cd /mnt/host/onnxruntime && ls libonnxruntime.so.*)" /usr/local/lib/barnabee/onnxruntime/libonnxruntime.so
            install -m644 /mnt/host/onnxruntime/silero_vad.onnx /usr/local/share/barnabee/models/
          fi ;;
      esac
    done
    install -d /etc/systemd/system/barnabee-health-gate.service.d
    install -m644 /mnt/host/guest/barnabee-health-gate.conf /etc/systemd/system/barnabee-health-gate.service.d/10-host.conf
    install -m644 /mnt/host/guest/barnabee-watchdog.rules /etc/polkit-1/rules.d/50-barnabee-watchdog.rules
    install -m644 /mnt/host/guest/barnabee-rollback.service /etc/systemd/system/
    install -m755 /mnt/host/guest/barnabee-deploy /usr/local/sbin/
    barnabee-deploy /tmp/deploy
    rm -rf /tmp/deploy
    systemctl daemon-reload
    systemctl enable --quiet '"$(daemon_units)"
  [ "${1:-}" = --no-start ] || vm "systemctl start --no-block $(daemon_units)"
}

# pull_the_plug: power the guest off without a shutdown (qemu SIGKILL, like a cut power cord).
# With $VM_DISK its disk keeps what was written (boot_vm again = the same machine rebooting);
# a -snapshot overlay dies with it.
pull_the_plug() {
  [ -n "${QEMU_PID:-}" ] || return 0
  kill -9 "$QEMU_PID" 2>/dev/null
  for _ in $(seq 1 40); do kill -0 "$QEMU_PID" 2>/dev/null || break; sleep 0.1; done
  forget_guest
}
