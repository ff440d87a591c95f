//! `kafka-metadata-quorum.sh --bootstrap-controller HOST:PORT[,…]`:
//! `describe --status | --replication`, the quorum as Kafka's tool shows the
//! KRaft controller quorum, read from the controllers' `GET /v1/quorum`
//! (their client ports); and `add-controller` / `remove-controller`, one
//! voter change at a time. An SSL controller listener is reached as Kafka's
//! tool reaches it, with `security.protocol=SSL` and the client `ssl.*`
//! keys of `--command-config`; a coordinator's `secureClientPort` with
//! `--zk-tls-config-file`.

use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use super::ToolError;
use super::args::properties_file;
use super::bootstrap::coordinator_tls;
use super::client_security::ClientSecurity;
use crate::cluster::http::CoordinatorTls;
use crate::cluster::http::wire::QuorumView;
use crate::cluster::http::{change_voters, quorum_view};
use crate::cluster::raft::{Member, MembershipChange};
use crate::config::RawConfig;

#[derive(Parser, Debug)]
#[command(
    name = "kafka-metadata-quorum.sh",
    about = "Describe and change the metadata quorum (gregor's controllers)."
)]
pub struct MetadataQuorumArgs {
    /// The controllers' addresses: HOST:PORT[,HOST:PORT...].
    #[arg(long = "bootstrap-controller", value_name = "HOST:PORT")]
    pub bootstrap_controller: Option<String>,
    /// Kafka asks a broker; gregor's quorum is the controllers, so this is
    /// refused with a pointer to --bootstrap-controller.
    #[arg(long = "bootstrap-server", value_name = "HOST:PORT")]
    pub bootstrap_server: Option<String>,
    /// A properties file with the zookeeper.ssl.* keys, for the
    /// coordinators' secureClientPort.
    #[arg(long = "zk-tls-config-file", value_name = "FILE")]
    pub zk_tls_config_file: Option<std::path::PathBuf>,
    /// The client's security.protocol and ssl.* keys (SSL to an SSL
    /// controller listener); for add-controller, also the new controller's
    /// properties (node.id and its controller listener), as Kafka's tool
    /// reads them.
    #[arg(long = "command-config", value_name = "FILE")]
    pub command_config: Option<std::path::PathBuf>,
    #[command(subcommand)]
    pub command: QuorumCommand,
}

#[derive(Subcommand, Debug)]
pub enum QuorumCommand {
    /// Describe the quorum.
    Describe(DescribeArgs),
    /// Add a controller as a voter: the one --command-config describes, or
    /// --controller-id with --controller-address.
    AddController(AddControllerArgs),
    /// Remove the voter --controller-id.
    RemoveController(RemoveControllerArgs),
}

#[derive(Args, Debug)]
pub struct DescribeArgs {
    /// Leader, epoch, high watermark, voters.
    #[arg(long)]
    pub status: bool,
    /// Each voter's log end offset and lag.
    #[arg(long)]
    pub replication: bool,
}

#[derive(Args, Debug)]
pub struct AddControllerArgs {
    /// The new controller's node.id (instead of --command-config).
    #[arg(long = "controller-id", value_name = "ID")]
    pub controller_id: Option<u64>,
    /// host:port of its controller listener (instead of --command-config).
    #[arg(long = "controller-address", value_name = "HOST:PORT")]
    pub controller_address: Option<String>,
    /// Kafka's tool runs on the new controller; accepted and ignored.
    #[arg(long = "dry-run")]
    pub dry_run: bool,
}

#[derive(Args, Debug)]
pub struct RemoveControllerArgs {
    #[arg(long = "controller-id", value_name = "ID")]
    pub controller_id: u64,
    /// Kafka names the voter's log directory too (KIP-853); gregor's voter
    /// ids are never reused, so the id alone is enough: accepted, ignored.
    #[arg(long = "controller-directory-id", value_name = "UUID")]
    pub controller_directory_id: Option<String>,
}

pub async fn run(args: MetadataQuorumArgs) -> Result<ExitCode, ToolError> {
    let controllers = controllers(&args)?;
    let tls = controller_tls(&args)?;
    let describe = match &args.command {
        QuorumCommand::Describe(describe) => describe,
        QuorumCommand::AddController(add) => {
            let change = new_controller(add, args.command_config.as_deref())?;
            change_voters(controllers, tls, &change)
                .await
                .map_err(|e| ToolError::Failed(e.to_string()))?;
            println!("Added controller {} to the quorum", add_id(&change));
            return Ok(ExitCode::SUCCESS);
        }
        QuorumCommand::RemoveController(remove) => {
            let change = MembershipChange::Remove {
                member_id: remove.controller_id,
            };
            change_voters(controllers, tls, &change)
                .await
                .map_err(|e| ToolError::Failed(e.to_string()))?;
            println!(
                "Removed controller {} from the quorum",
                remove.controller_id
            );
            return Ok(ExitCode::SUCCESS);
        }
    };
    let show = super::exactly_one(
        [
            (describe.status, Show::Status),
            (describe.replication, Show::Replication),
        ],
        "describe needs exactly one of --status and --replication",
    )?;
    let view = quorum_view(controllers, tls)
        .await
        .map_err(|e| ToolError::Failed(e.to_string()))?;
    print!(
        "{}",
        match show {
            Show::Status => status(&view),
            Show::Replication => replication(&view),
        }
    );
    Ok(ExitCode::SUCCESS)
}

fn controllers(args: &MetadataQuorumArgs) -> Result<&str, ToolError> {
    match (&args.bootstrap_controller, &args.bootstrap_server) {
        (Some(controllers), None) => Ok(controllers),
        (None, Some(_)) => Err(ToolError::Usage(
            "gregor's metadata quorum is its controllers: use --bootstrap-controller with their controller (or client) ports".to_owned(),
        )),
        _ => Err(ToolError::Usage(
            "exactly one of --bootstrap-controller and --bootstrap-server is needed".to_owned(),
        )),
    }
}

/// TLS to the controllers: `--command-config`'s `security.protocol=SSL`
/// with Kafka's client `ssl.*` keys, or `--zk-tls-config-file`'s
/// `zookeeper.ssl.*` keys; not both.
fn controller_tls(args: &MetadataQuorumArgs) -> Result<Option<CoordinatorTls>, ToolError> {
    let from_command_config = match &args.command_config {
        Some(path) => {
            let security = ClientSecurity::from_properties(&properties_file(path)?)?;
            if security.sasl.is_some() {
                return Err(ToolError::Usage(format!(
                    "--command-config {}: gregor's controllers take no SASL; use security.protocol=SSL with a client certificate",
                    path.display()
                )));
            }
            security.tls.map(CoordinatorTls::from_connector)
        }
        None => None,
    };
    match (&args.zk_tls_config_file, from_command_config) {
        (Some(_), Some(_)) => Err(ToolError::Usage(
            "--command-config sets security.protocol=SSL: drop --zk-tls-config-file".to_owned(),
        )),
        (Some(path), None) => coordinator_tls(path),
        (None, tls) => Ok(tls),
    }
}

fn add_id(change: &MembershipChange) -> u64 {
    match change {
        MembershipChange::Add { member_id, .. } | MembershipChange::Remove { member_id } => {
            *member_id
        }
    }
}

/// The controller to add: from the flags, or from `--command-config` (its
/// `node.id` and controller listener, as Kafka's tool reads them).
fn new_controller(
    add: &AddControllerArgs,
    command_config: Option<&std::path::Path>,
) -> Result<MembershipChange, ToolError> {
    let (member_id, address) = match (&add.controller_id, &add.controller_address, command_config) {
        (Some(id), Some(address), _) => (*id, address.clone()),
        (None, None, Some(path)) => controller_of(path)?,
        _ => {
            return Err(ToolError::Usage(
                "add-controller needs --command-config with the new controller's properties, or --controller-id and --controller-address".to_owned(),
            ));
        }
    };
    Ok(MembershipChange::Add {
        member_id,
        member: Member {
            peer_address: address.clone(),
            client_address: address,
        },
    })
}

/// `node.id` and the controller listener's address from a controller's
/// properties file.
fn controller_of(path: &std::path::Path) -> Result<(u64, String), ToolError> {
    let mut raw = RawConfig::with_defaults();
    raw.merge(RawConfig::from_file(path).map_err(|e| ToolError::Usage(e.to_string()))?);
    let settings = raw
        .validate()
        .map_err(|e| ToolError::Usage(format!("--command-config {}: {e}", path.display())))?;
    let controller = settings
        .kraft
        .as_ref()
        .and_then(|kraft| Some((kraft.node_id, kraft.controller.as_ref()?.address.clone())));
    match controller {
        Some((id, address)) => Ok((u64::try_from(id).unwrap_or(0), address)),
        None => Err(ToolError::Usage(format!(
            "--command-config {} describes no controller (process.roles has no 'controller')",
            path.display()
        ))),
    }
}

#[derive(Clone, Copy)]
enum Show {
    Status,
    Replication,
}

/// Kafka's `describe --status` layout.
fn status(view: &QuorumView) -> String {
    let max_lag = view.voters.iter().filter_map(|v| v.lag).max();
    let voters: Vec<String> = view.voters.iter().map(|v| v.id.to_string()).collect();
    let observers: Vec<String> = view.observers.iter().map(u64::to_string).collect();
    let or_unknown = |n: Option<u64>| n.map_or("-1".to_owned(), |n| n.to_string());
    format!(
        "ClusterId:              {}\n\
         LeaderId:               {}\n\
         LeaderEpoch:            {}\n\
         HighWatermark:          {}\n\
         MaxFollowerLag:         {}\n\
         MaxFollowerLagTimeMs:   -1\n\
         CurrentVoters:          [{}]\n\
         CurrentObservers:       [{}]\n",
        view.cluster_id,
        or_unknown(view.leader_id),
        view.leader_epoch,
        or_unknown(view.high_watermark),
        or_unknown(max_lag),
        voters.join(","),
        observers.join(","),
    )
}

/// Kafka's `describe --replication` layout (tab separated), leader first.
fn replication(view: &QuorumView) -> String {
    let mut out =
        "NodeId\tLogEndOffset\tLag\tLastFetchTimestamp\tLastCaughtUpTimestamp\tStatus\n".to_owned();
    let mut voters: Vec<_> = view.voters.iter().collect();
    voters.sort_by_key(|v| (Some(v.id) != view.leader_id, v.id));
    for voter in voters {
        let role = if Some(voter.id) == view.leader_id {
            "Leader"
        } else {
            "Follower"
        };
        let number = |n: Option<u64>| n.map_or("-1".to_owned(), |n| n.to_string());
        out.push_str(&format!(
            "{}\t{}\t{}\t-1\t-1\t{role}\n",
            voter.id,
            number(voter.log_end_offset),
            number(voter.lag),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::http::wire::VoterView;

    fn view() -> QuorumView {
        let voter = |id, log_end_offset, lag| VoterView {
            id,
            peer_address: format!("zk{id}:2888"),
            client_address: format!("zk{id}:2181"),
            log_end_offset,
            lag,
        };
        QuorumView {
            cluster_id: "c".to_owned(),
            member_id: 2,
            leader_id: Some(2),
            leader_epoch: 3,
            high_watermark: Some(10),
            voters: vec![
                voter(1, Some(8), Some(2)),
                voter(2, Some(10), Some(0)),
                voter(3, None, None),
            ],
            observers: vec![4],
        }
    }

    #[test]
    fn status_and_replication_in_kafkas_layout() {
        let status = status(&view());
        assert!(status.contains("LeaderId:               2\n"));
        assert!(status.contains("HighWatermark:          10\n"));
        assert!(status.contains("MaxFollowerLag:         2\n"));
        assert!(status.contains("CurrentVoters:          [1,2,3]\n"));
        assert!(status.contains("CurrentObservers:       [4]\n"));
        let rows: Vec<String> = replication(&view())
            .lines()
            .skip(1)
            .map(str::to_owned)
            .collect();
        assert_eq!(rows[0], "2\t10\t0\t-1\t-1\tLeader");
        assert_eq!(rows[1], "1\t8\t2\t-1\t-1\tFollower");
        assert_eq!(rows[2], "3\t-1\t-1\t-1\t-1\tFollower");
    }
}
