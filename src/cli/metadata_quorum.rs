//! `kafka-metadata-quorum.sh --bootstrap-controller HOST:PORT[,…] describe
//! --status | --replication`: the coordinator quorum as Kafka's tool shows
//! the KRaft controller quorum, read from the coordinators' `GET /v1/quorum`
//! (their client ports; `--zk-tls-config-file` for their TLS port).

use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use super::ToolError;
use super::bootstrap::coordinator_tls;
use crate::cluster::http::quorum_view;
use crate::cluster::http::wire::QuorumView;

#[derive(Parser, Debug)]
#[command(
    name = "kafka-metadata-quorum.sh",
    about = "Describe the metadata quorum (gregor's coordinators)."
)]
pub struct MetadataQuorumArgs {
    /// The coordinators' client addresses: HOST:PORT[,HOST:PORT...].
    #[arg(long = "bootstrap-controller", value_name = "HOST:PORT")]
    pub bootstrap_controller: Option<String>,
    /// Kafka asks a broker; gregor's quorum is the coordinators, so this is
    /// refused with a pointer to --bootstrap-controller.
    #[arg(long = "bootstrap-server", value_name = "HOST:PORT")]
    pub bootstrap_server: Option<String>,
    /// A properties file with the zookeeper.ssl.* keys, for the
    /// coordinators' secureClientPort.
    #[arg(long = "zk-tls-config-file", value_name = "FILE")]
    pub zk_tls_config_file: Option<std::path::PathBuf>,
    #[command(subcommand)]
    pub command: QuorumCommand,
}

#[derive(Subcommand, Debug)]
pub enum QuorumCommand {
    /// Describe the quorum.
    Describe(DescribeArgs),
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

pub async fn run(args: MetadataQuorumArgs) -> Result<ExitCode, ToolError> {
    let QuorumCommand::Describe(describe) = &args.command;
    let show = super::exactly_one(
        [
            (describe.status, Show::Status),
            (describe.replication, Show::Replication),
        ],
        "describe needs exactly one of --status and --replication",
    )?;
    let controllers = match (&args.bootstrap_controller, &args.bootstrap_server) {
        (Some(controllers), None) => controllers,
        (None, Some(_)) => {
            return Err(ToolError::Usage(
                "gregor's metadata quorum is its coordinators: use --bootstrap-controller with their client ports".to_owned(),
            ));
        }
        _ => {
            return Err(ToolError::Usage(
                "exactly one of --bootstrap-controller and --bootstrap-server is needed".to_owned(),
            ));
        }
    };
    let tls = match &args.zk_tls_config_file {
        Some(path) => coordinator_tls(path)?,
        None => None,
    };
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

#[derive(Clone, Copy)]
enum Show {
    Status,
    Replication,
}

/// Kafka's `describe --status` layout.
fn status(view: &QuorumView) -> String {
    let max_lag = view.voters.iter().filter_map(|v| v.lag).max();
    let voters: Vec<String> = view.voters.iter().map(|v| v.id.to_string()).collect();
    let or_unknown = |n: Option<u64>| n.map_or("-1".to_owned(), |n| n.to_string());
    format!(
        "ClusterId:              {}\n\
         LeaderId:               {}\n\
         LeaderEpoch:            {}\n\
         HighWatermark:          {}\n\
         MaxFollowerLag:         {}\n\
         MaxFollowerLagTimeMs:   -1\n\
         CurrentVoters:          [{}]\n\
         CurrentObservers:       []\n",
        view.cluster_id,
        or_unknown(view.leader_id),
        view.leader_epoch,
        or_unknown(view.high_watermark),
        or_unknown(max_lag),
        voters.join(","),
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
        }
    }

    #[test]
    fn status_and_replication_in_kafkas_layout() {
        let status = status(&view());
        assert!(status.contains("LeaderId:               2\n"));
        assert!(status.contains("HighWatermark:          10\n"));
        assert!(status.contains("MaxFollowerLag:         2\n"));
        assert!(status.contains("CurrentVoters:          [1,2,3]\n"));
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
