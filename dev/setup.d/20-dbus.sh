# shellcheck shell=bash
# barnabee-watchdog tests: a private dbus-daemon (dbus-daemon), a real `systemd --user` manager
# on it (systemd; it is only run by the tests, never as PID 1), and `unshare` for the private
# /run those tests need (util-linux).
apt_need dbus-daemon systemd util-linux
