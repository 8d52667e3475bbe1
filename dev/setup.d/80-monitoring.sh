# shellcheck shell=bash
# checks/monitoring (the alert rules, Alertmanager routing and the Grafana dashboard): Debian
# bookworm's real Prometheus 2.42 (`promtool check/test rules`), Alertmanager 0.25 (`amtool
# check-config`) and node_exporter 1.5 (the real host-metrics peer of the scenario), and PyYAML
# in the project venv for checks/monitoring/promql_names.py.
#
# These packages' maintainer scripts try to start their services. In a container without
# systemd (and without Docker's own /usr/sbin/policy-rc.d) that would either fail or leave
# daemons running, so the install runs behind a temporary policy-rc.d that refuses every start
# (exit 101), removed afterwards. Nothing is left running: the check below fails loudly if one
# of the three started anyway. Fast when already installed (three dpkg-query calls).
_monitoring_setup() {
  local p missing=() sudo="" policy=/usr/sbin/policy-rc.d ours=0 pid
  for p in prometheus prometheus-alertmanager prometheus-node-exporter; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    [ "$(id -u)" -ne 0 ] && sudo="sudo"
    say "installing Debian packages (services not started): ${missing[*]}"
    if [ ! -e "$policy" ]; then
      printf '#!/bin/sh\n# barnabee dev/setup.d/80-monitoring.sh: refuse service starts during install\nexit 101\n' |
        $sudo tee "$policy" >/dev/null
      $sudo chmod 755 "$policy"
      ours=1
    fi
    if [ ! -f "$CACHE/.apt-updated" ] || [ -n "$(find "$CACHE/.apt-updated" -mmin +1440 2>/dev/null)" ]; then
      $sudo apt-get -o DPkg::Lock::Timeout=900 update -qq && touch "$CACHE/.apt-updated"
    fi
    # The exit status is kept so the policy file is removed whatever happens.
    local rc=0
    DEBIAN_FRONTEND=noninteractive $sudo apt-get -o DPkg::Lock::Timeout=900 install -y -qq \
      --no-install-recommends "${missing[@]}" >/dev/null || rc=$?
    [ "$ours" = 1 ] && $sudo rm -f "$policy"
    [ "$rc" = 0 ] || { echo "dev/setup: installing ${missing[*]} failed (apt-get exit $rc)" >&2; return "$rc"; }
    # A service that started anyway (a host with systemd as PID 1 and no policy) is stopped
    # through systemd, never by process name.
    if [ -d /run/systemd/system ]; then
      for p in prometheus prometheus-alertmanager prometheus-node-exporter; do
        $sudo systemctl disable --now "$p" >/dev/null 2>&1 || true
      done
    fi
    for p in /usr/bin/prometheus /usr/bin/prometheus-alertmanager /usr/bin/prometheus-node-exporter; do
      for pid in $(pidof "$p" 2>/dev/null); do
        # Only a daemon owned by the packages' system users is one the install started.
        if [ "$(stat -c %U "/proc/$pid" 2>/dev/null)" = prometheus ]; then
          echo "dev/setup: $p (pid $pid) was started by its package; stop it: kill $pid" >&2
          return 1
        fi
      done
    done
  fi
  # The scenario starts these itself; the names are the Debian ones.
  for p in promtool amtool prometheus prometheus-alertmanager prometheus-node-exporter; do
    command -v "$p" >/dev/null || { echo "dev/setup: $p missing after install" >&2; return 1; }
  done
  [ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
  if ! "$VENV/bin/python" -c 'import yaml' 2>/dev/null; then
    say "installing PyYAML 6.0.3 into the project venv (checks/monitoring/promql_names.py)"
    "$VENV/bin/pip" install -q --disable-pip-version-check "PyYAML==6.0.3"
  fi
}
_monitoring_setup
