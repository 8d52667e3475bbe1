# Host-side helpers of the systemd VM harness (sourced by ./run and the scenarios).
# VM state lives in $RUN (a temp dir per run); the cached image in $IMG_DIR.

ts() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(ts)" 'BEGIN { printf "%.1f", b - a }'; }
log() { printf '    %s\n' "$*"; }
# check DESCRIPTION: prints what a scenario checked; fail DESCRIPTION: records a failure.
check() { printf '    \033[32mok\033[0m   %s\n' "$*"; }
fail() {
  printf '    \033[31mFAIL\033[0m %s\n' "$*"
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

# boot_vm: start qemu in the background (throwaway -snapshot disk), share $RUN/share read-only
# over 9p, wait for ssh and for systemd to finish booting.
boot_vm() {
  local accel acc t0
  accel="$(pick_accel)"
  if [ "$accel" = kvm ]; then acc=(-accel kvm -cpu host); else acc=(-accel tcg,thread=multi,tb-size=256 -cpu max); fi
  SSH_PORT="$(free_port)"
  t0="$(ts)"
  qemu-system-x86_64 "${acc[@]}" -m "${BARNABEE_VM_MEM:-1024}" -smp 2 -M q35 \
    -nodefaults -no-user-config -display none -vga none \
    -kernel "$IMG_DIR/vmlinux" -initrd "$IMG_DIR/initrd.img" \
    -append "root=/dev/vda rw console=ttyS0,115200 net.ifnames=0 panic=-1" \
    -drive file="$IMG_DIR/disk.img",if=virtio,format=raw,cache=unsafe,discard=unmap -snapshot \
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
  vm 'journalctl -b --no-pager -o export _SYSTEMD_UNIT=barnabee-memory.service + SYSLOG_IDENTIFIER=barnabee-memory + SYSLOG_IDENTIFIER=barnabee-watchdog' \
    > "${JOURNAL%.log}.export" 2>/dev/null || true
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
  ssh -q -o ControlPath="$RUN/ssh-%p.ctl" -p "$SSH_PORT" -O exit root@127.0.0.1 >/dev/null 2>&1 || true
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
  WAITED="$(elapsed "$t0")"
}
