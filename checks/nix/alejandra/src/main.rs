//! `alejandra [--check] [PATH...]`: format `.nix` files in place, or with `--check` list the
//! files that are not formatted and exit 1. Directories are walked (skipping `.git`, `target`,
//! `result*`, `.venv`, `node_modules`); no path means the current directory, as `nix fmt` expects.
//! Exit codes: 0 formatted, 1 would change (check mode), 2 parse/IO error.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

const SKIP: &[&str] = &[".git", "target", ".venv", "node_modules", ".direnv"];

fn collect(path: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    if path.is_dir() {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if SKIP.contains(&name) || name.starts_with("result") {
            return Ok(());
        }
        let mut entries = std::fs::read_dir(path)?
            .map(|e| e.map(|e| e.path()))
            .collect::<Result<Vec<_>, _>>()?;
        entries.sort();
        for entry in entries {
            collect(&entry, out)?;
        }
    } else if path.extension().is_some_and(|e| e == "nix") {
        out.push(path.to_path_buf());
    }
    Ok(())
}

fn main() -> ExitCode {
    let mut check = false;
    let mut roots = Vec::new();
    for arg in std::env::args_os().skip(1) {
        match arg.to_str() {
            Some("--check" | "-c") => check = true,
            Some("--help" | "-h") => {
                println!("usage: alejandra [--check] [PATH...]  (alejandra library 3.1.0)");
                return ExitCode::SUCCESS;
            }
            _ => roots.push(PathBuf::from(arg)),
        }
    }
    if roots.is_empty() {
        roots.push(PathBuf::from("."));
    }
    let mut files = Vec::new();
    for root in &roots {
        if let Err(e) = collect(root, &mut files) {
            eprintln!("alejandra: {}: {e}", root.display());
            return ExitCode::from(2);
        }
    }
    let (mut changed, mut errors) = (0usize, 0usize);
    for file in &files {
        let before = match std::fs::read_to_string(file) {
            Ok(text) => text,
            Err(e) => {
                eprintln!("alejandra: {}: {e}", file.display());
                errors += 1;
                continue;
            }
        };
        let (status, after) =
            alejandra::format::in_memory(file.display().to_string(), before.clone());
        match status {
            alejandra::format::Status::Error(e) => {
                eprintln!("alejandra: {}: cannot parse: {e}", file.display());
                errors += 1;
            }
            alejandra::format::Status::Changed(false) => {}
            alejandra::format::Status::Changed(true) if after == before => {}
            alejandra::format::Status::Changed(true) => {
                changed += 1;
                if check {
                    eprintln!("alejandra: {}: not formatted", file.display());
                } else if let Err(e) = std::fs::write(file, after) {
                    eprintln!("alejandra: {}: {e}", file.display());
                    errors += 1;
                } else {
                    eprintln!("alejandra: formatted {}", file.display());
                }
            }
        }
    }
    eprintln!(
        "alejandra: {} file(s), {changed} {}, {errors} error(s)",
        files.len(),
        if check {
            "not formatted"
        } else {
            "reformatted"
        }
    );
    if errors > 0 {
        ExitCode::from(2)
    } else if check && changed > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}
