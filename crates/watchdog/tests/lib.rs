//! Integration tests: the real watchdog binary against a private dbus-daemon carrying a test
//! implementation of `org.freedesktop.systemd1`, and real `/health` servers.

#![allow(clippy::unwrap_used)]

mod common;
mod gate;
mod notify;
mod notify_ha;
mod real_systemd;
mod replication;
mod supervise;
mod systemd_protocols;
