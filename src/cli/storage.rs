//! `kafka-storage.sh`: `random-uuid`, and `format` of a KRaft node's data
//! directory with a cluster id and, for a dynamic quorum, its initial
//! voters (`--standalone`, `--initial-controllers`,
//! `--no-initial-controllers`). gregor formats an empty directory by itself
//! on first start, so `format` is needed only to choose the cluster id or
//! to start a dynamic quorum.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use super::ToolError;
use crate::cluster::bootstrap::{self, Bootstrap};
use crate::cluster::new_cluster_id;
use crate::config::{RawConfig, RawValue, Source, parse_voters};

#[derive(Parser, Debug)]
#[command(
    name = "kafka-storage.sh",
    about = "Format a KRaft node's data directory."
)]
pub struct StorageArgs {
    #[command(subcommand)]
    pub command: StorageCommand,
}

#[derive(Subcommand, Debug)]
pub enum StorageCommand {
    /// Print a new cluster id.
    RandomUuid,
    /// Format the data directory of the node `--config` describes.
    Format(FormatArgs),
}

#[derive(Args, Debug)]
pub struct FormatArgs {
    /// The node's server.properties.
    #[arg(short = 'c', long = "config", value_name = "FILE")]
    pub config: PathBuf,
    /// The cluster id (kafka-storage.sh random-uuid makes one).
    #[arg(short = 't', long = "cluster-id", value_name = "ID")]
    pub cluster_id: String,
    /// A dynamic quorum whose only initial voter is this node.
    #[arg(short = 's', long = "standalone")]
    pub standalone: bool,
    /// A dynamic quorum's initial voters: id@host:port[:directory-id],...
    /// (the directory id is accepted and ignored).
    #[arg(short = 'I', long = "initial-controllers", value_name = "VOTERS")]
    pub initial_controllers: Option<String>,
    /// A controller that joins a running quorum with add-controller.
    #[arg(short = 'N', long = "no-initial-controllers")]
    pub no_initial_controllers: bool,
    /// Leave an already formatted directory as it is (exit 0).
    #[arg(short = 'g', long = "ignore-formatted")]
    pub ignore_formatted: bool,
}

pub fn run(args: StorageArgs) -> Result<ExitCode, ToolError> {
    match args.command {
        StorageCommand::RandomUuid => {
            println!("{}", new_cluster_id());
            Ok(ExitCode::SUCCESS)
        }
        StorageCommand::Format(format) => self::format(&format),
    }
}

fn format(args: &FormatArgs) -> Result<ExitCode, ToolError> {
    if args.cluster_id.trim().is_empty() {
        return Err(ToolError::Usage(
            "--cluster-id must not be empty".to_owned(),
        ));
    }
    let chosen = [
        args.standalone,
        args.initial_controllers.is_some(),
        args.no_initial_controllers,
    ];
    if chosen.iter().filter(|c| **c).count() > 1 {
        return Err(ToolError::Usage(
            "only one of --standalone, --initial-controllers and --no-initial-controllers may be given".to_owned(),
        ));
    }
    let mut raw = RawConfig::with_defaults();
    raw.merge(RawConfig::from_file(&args.config).map_err(|e| ToolError::Usage(e.to_string()))?);
    let settings = raw
        .validate()
        .map_err(|e| ToolError::Usage(e.to_string()))?;
    let kraft = settings.kraft.as_ref().ok_or_else(|| {
        ToolError::Usage(format!(
            "{} sets no process.roles: only KRaft nodes are formatted",
            args.config.display()
        ))
    })?;
    let initial_voters = if args.standalone {
        let controller = kraft.controller.as_ref().ok_or_else(|| {
            ToolError::Usage("--standalone needs a node with the controller role".to_owned())
        })?;
        let node_id = u64::try_from(kraft.node_id).unwrap_or(0);
        BTreeMap::from([(node_id, controller.address.clone())])
    } else if let Some(voters) = &args.initial_controllers {
        initial_controllers(voters)?
    } else {
        BTreeMap::new()
    };
    if !initial_voters.is_empty() && !kraft.voters.is_empty() {
        return Err(ToolError::Usage(
            "controller.quorum.voters is set: a static quorum takes no initial controllers"
                .to_owned(),
        ));
    }
    let data_dir = &settings.data_dir;
    if bootstrap::is_formatted(data_dir) {
        if args.ignore_formatted {
            println!("{} is already formatted", data_dir.display());
            return Ok(ExitCode::SUCCESS);
        }
        return Err(ToolError::Failed(format!(
            "log directory {} is already formatted; use --ignore-formatted to leave it as it is",
            data_dir.display()
        )));
    }
    bootstrap::write(
        data_dir,
        &Bootstrap {
            cluster_id: args.cluster_id.trim().to_owned(),
            initial_voters,
        },
    )
    .map_err(|e| ToolError::Failed(e.to_string()))?;
    println!(
        "Formatted {} with cluster id {}",
        data_dir.display(),
        args.cluster_id.trim()
    );
    Ok(ExitCode::SUCCESS)
}

/// `id@host:port[:directory-id],...`, the directory ids dropped.
fn initial_controllers(text: &str) -> Result<BTreeMap<u64, String>, ToolError> {
    let without_directories: Vec<String> = text
        .split(',')
        .map(str::trim)
        .filter(|entry| !entry.is_empty())
        .map(
            |entry| match entry.rsplitn(3, ':').collect::<Vec<_>>().as_slice() {
                // host:port:directory, the directory not a port number.
                [directory, port, host] if directory.parse::<u16>().is_err() => {
                    format!("{host}:{port}")
                }
                _ => entry.to_owned(),
            },
        )
        .collect();
    parse_voters(&RawValue {
        value: without_directories.join(","),
        from: Source::Flag,
    })
    .map_err(|e| ToolError::Usage(format!("--initial-controllers: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn initial_controllers_with_and_without_directory_ids() {
        let voters = initial_controllers("1@c1:9093:pqVnlIhOSK2RAOmWTN8vMA,2@c2:9093").unwrap();
        assert_eq!(voters[&1], "c1:9093");
        assert_eq!(voters[&2], "c2:9093");
        assert!(initial_controllers("c1:9093").is_err());
    }
}
