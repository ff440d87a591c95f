//! `kafka-server-stop.sh` and `zookeeper-server-stop.sh`: send SIGTERM to
//! every running `gregor broker` (or `gregor coordinator`) found through
//! /proc, as Kafka's stop scripts do with `ps`.

use std::process::ExitCode;

use super::ToolError;

/// The server role to stop and the script names that start it.
fn role_names(role: &str) -> Option<(&'static str, &'static [&'static str])> {
    match role {
        "broker" => Some(("broker", &["kafka-server-start", "kafka-server-start.sh"])),
        "coordinator" => Some((
            "coordinator",
            &["zookeeper-server-start", "zookeeper-server-start.sh"],
        )),
        _ => None,
    }
}

pub fn run(args: Vec<std::ffi::OsString>) -> Result<ExitCode, ToolError> {
    let role = args
        .first()
        .map(|a| a.to_string_lossy().into_owned())
        .unwrap_or_default();
    let (subcommand, start_scripts) = role_names(&role).ok_or_else(|| {
        ToolError::Usage(format!(
            "expected 'broker' or 'coordinator' to stop, got '{role}'"
        ))
    })?;
    let me = std::process::id();
    let mut stopped = Vec::new();
    let entries = std::fs::read_dir("/proc")
        .map_err(|e| ToolError::Failed(format!("cannot list /proc: {e}")))?;
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<i32>().ok())
        else {
            continue;
        };
        if pid as u32 == me {
            continue;
        }
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let argv: Vec<String> = cmdline
            .split(|b| *b == 0)
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        if is_server(&argv, subcommand, start_scripts) && terminate(pid) {
            stopped.push(pid);
        }
    }
    if stopped.is_empty() {
        return Err(ToolError::Failed(format!("No gregor {subcommand} to stop")));
    }
    for pid in stopped {
        eprintln!("Sent SIGTERM to gregor {subcommand} (pid {pid})");
    }
    Ok(ExitCode::SUCCESS)
}

/// Sends SIGTERM; false if the process is gone or not ours to signal.
fn terminate(pid: i32) -> bool {
    if pid <= 0 {
        return false;
    }
    // SAFETY: kill(2) takes plain integers and touches no memory of ours;
    // pid is positive, so it names one process, never a group.
    unsafe { libc::kill(pid, libc::SIGTERM) == 0 }
}

fn base_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// `gregor <subcommand> ...` or a start script link to the binary.
fn is_server(argv: &[String], subcommand: &str, start_scripts: &[&str]) -> bool {
    let Some(program) = argv.first().map(|p| base_name(p)) else {
        return false;
    };
    if start_scripts.contains(&program) {
        return true;
    }
    program == "gregor" && argv.get(1).map(String::as_str) == Some(subcommand)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn recognises_broker_by_subcommand_or_script_name() {
        let (sub, scripts) = role_names("broker").unwrap();
        assert!(is_server(
            &argv(&["/opt/bin/gregor", "broker", "x"]),
            sub,
            scripts
        ));
        assert!(is_server(
            &argv(&["./kafka-server-start.sh", "c"]),
            sub,
            scripts
        ));
        assert!(!is_server(&argv(&["gregor", "coordinator"]), sub, scripts));
        assert!(!is_server(
            &argv(&["gregor", "topics", "--list"]),
            sub,
            scripts
        ));
    }
}
