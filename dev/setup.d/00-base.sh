# shellcheck shell=bash
# Build dependencies of the workspace: pkg-config and ALSA headers (cpal), dbus for the
# watchdog's private-bus tests, util-linux for `unshare` (the journald test).
apt_need pkg-config libasound2-dev dbus-daemon util-linux
command -v cargo-nextest >/dev/null || cargo install --locked cargo-nextest
# aiosmtpd: the SMTP server the watchdog's notifier tests deliver e-mail to; openssl makes the
# private CA of its STARTTLS test.
apt_need openssl
pip_need "$ROOT/crates/watchdog/tests/requirements.txt"
# ShellCheck, with which checks/shell/run lints every shell script under dev/, checks/ and .ci/.
apt_need shellcheck
