# shellcheck shell=bash
# barnabee-agents: Home Assistant Core 2024.3.3 (Python 3.11) as the real peer of the action
# agent's tests. Installed from the pinned lock file (an unpinned install is broken: josepy 2),
# into its own venv under $CACHE keyed by the lock's hash; the tests find it at
# $BARNABEE_TEST_HASS or $CACHE/home-assistant-<hash>/bin/hass (see crates/agents/tests/ha/).
ha_lock="$ROOT/crates/agents/tests/ha/requirements-ha.lock"
ha_venv="$CACHE/home-assistant-$(sha256sum "$ha_lock" | cut -c1-16)"
if [ ! -f "$ha_venv/.installed" ]; then
  py311="$(command -v python3.11 || true)"
  # Debian bookworm's python3 is 3.11; its venv module needs python3.11-venv (ensurepip).
  if [ -z "$py311" ] || ! "$py311" -c 'import ensurepip' 2>/dev/null; then
    apt_need python3.11 python3.11-venv
    py311="$(command -v python3.11)"
  fi
  say "installing Home Assistant Core 2024.3.3 into $ha_venv (about 1 minute)"
  rm -rf "$ha_venv"
  "$py311" -m venv "$ha_venv"
  "$ha_venv/bin/pip" install -q --disable-pip-version-check -r "$ha_lock"
  "$ha_venv/bin/hass" --version >/dev/null
  touch "$ha_venv/.installed"
fi
ln -sfn "$ha_venv" "$CACHE/home-assistant"
