//! The appliance's daemons as the CLI knows them: role, binary, default local port, and the
//! embedded development config `barnabee up` starts them with.
//!
//! Ports are the appliance's defaults (the NixOS modules use the same): memory 7701,
//! agents 7702, voice 7703, inference 7704, watchdog 7705, console 7706.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

pub struct Daemon {
    /// The role: `memory`; the unit is `barnabee-memory.service`.
    pub role: &'static str,
    /// Default HTTP port on 127.0.0.1.
    pub port: u16,
    /// Development config, with placeholders (inside TOML strings) filled in by `barnabee up`:
    /// `@STATE@` the daemon's state dir, `@LISTEN@` its address, `@URL:<role>@` another
    /// daemon's base URL and `@ADDR:<port>@` `127.0.0.1:<port>`, both shifted by the offset;
    /// a line `# @INFERENCE_MODELS@` becomes the default model set from the set-up cache
    /// (`crate::models`).
    pub dev_config: &'static str,
}

impl Daemon {
    pub fn binary(&self) -> String {
        format!("barnabee-{}", self.role)
    }

    pub fn default_addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    pub fn addr(&self, port_offset: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port.saturating_add(port_offset)))
    }

    pub fn render_config(&self, state_dir: &Path, port_offset: u16) -> String {
        let mut text = self
            .dev_config
            .replace("@STATE@", &toml_escape(&state_dir.display().to_string()))
            .replace("@LISTEN@", &self.addr(port_offset).to_string());
        for other in DAEMONS {
            let url = format!("http://{}", other.addr(port_offset));
            text = text.replace(&format!("@URL:{}@", other.role), &url);
        }
        while let Some(start) = text.find("@ADDR:") {
            let rest = &text[start + 6..];
            let Some(end) = rest.find('@') else { break };
            let port: u16 = rest[..end].parse().unwrap_or(0);
            let addr = format!("127.0.0.1:{}", port.saturating_add(port_offset));
            text.replace_range(start..start + 6 + end + 1, &addr);
        }
        if text.contains("# @INFERENCE_MODELS@") {
            let models = crate::models::dev_inference(crate::models::inference_cache().as_deref());
            text = text.replace("# @INFERENCE_MODELS@\n", &models.toml);
        }
        text
    }
}

/// Escape `s` for the inside of a TOML basic string (the templates supply the quotes).
pub(crate) fn toml_escape(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

/// Every daemon of the appliance, in start order (dependencies first).
pub const DAEMONS: &[Daemon] = &[
    Daemon {
        role: "memory",
        port: 7701,
        dev_config: include_str!("up/memory.toml"),
    },
    Daemon {
        role: "agents",
        port: 7702,
        dev_config: include_str!("up/agents.toml"),
    },
    Daemon {
        role: "inference",
        port: 7704,
        dev_config: include_str!("up/inference.toml"),
    },
    Daemon {
        role: "voice",
        port: 7703,
        dev_config: include_str!("up/voice.toml"),
    },
    Daemon {
        role: "watchdog",
        port: 7705,
        dev_config: include_str!("up/watchdog.toml"),
    },
    Daemon {
        role: "console",
        port: 7706,
        dev_config: include_str!("up/console.toml"),
    },
];

/// Where a daemon's binary is: `bin_dir` if given, else beside this executable (cargo puts
/// every workspace binary in the same `target/<profile>/`), else `$PATH`.
pub fn find_binary(daemon: &Daemon, bin_dir: Option<&Path>) -> Option<PathBuf> {
    let name = daemon.binary();
    let beside = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(Path::to_path_buf));
    let path_var = std::env::var_os("PATH").unwrap_or_default();
    let candidates = bin_dir
        .map(Path::to_path_buf)
        .into_iter()
        .chain(beside)
        .chain(std::env::split_paths(&path_var));
    for dir in candidates {
        let path = dir.join(&name);
        if path.is_file() {
            return Some(path);
        }
        if bin_dir.is_some() {
            // An explicit bin dir is the only place to look.
            return None;
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dev_configs_render_to_valid_toml_with_shifted_addresses() {
        for d in DAEMONS {
            let text = d.render_config(Path::new("/tmp/a \"b\"/state"), 100);
            assert!(
                !text.contains('@'),
                "{}: unfilled placeholder\n{text}",
                d.role
            );
            let value: toml::Table =
                toml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}\n{text}", d.role));
            let listen = value["service"]["listen"].as_str();
            let expected = format!("127.0.0.1:{}", d.port + 100);
            assert_eq!(listen, Some(expected.as_str()), "{}", d.role);
        }
    }

    #[test]
    fn placeholders_for_peers_follow_the_offset() {
        let d = Daemon {
            role: "x",
            port: 1,
            dev_config: "a = \"@URL:memory@\"\nb = \"@ADDR:10300@\"\n",
        };
        assert_eq!(
            d.render_config(Path::new("/s"), 5),
            "a = \"http://127.0.0.1:7706\"\nb = \"127.0.0.1:10305\"\n"
        );
    }

    #[test]
    fn ports_are_distinct() {
        let mut ports: Vec<u16> = DAEMONS.iter().map(|d| d.port).collect();
        ports.sort_unstable();
        ports.dedup();
        assert_eq!(ports.len(), DAEMONS.len());
    }
}
