//! AlterPartitionReassignments on the proposer: each partition's move
//! checked against the image of one turn and committed as its own
//! `AlterPartitionReassignment`, so one bad partition fails alone.

use super::{EmbeddedCoordinator, Turn};
use crate::cluster::metadata::Command;
use crate::cluster::{
    ClusterError, KafkaCode, PartitionOutcome, PartitionReassignment, ReassignmentResult,
    ReassignmentTopic, Rejection,
};

impl EmbeddedCoordinator {
    pub(super) async fn reassign(
        &self,
        topics: Vec<ReassignmentTopic>,
    ) -> Result<Vec<ReassignmentResult>, ClusterError> {
        let mut turn = self.turn().await?;
        let mut results = Vec::with_capacity(topics.len());
        for ReassignmentTopic { topic, partitions } in topics {
            let mut outcomes = Vec::with_capacity(partitions.len());
            for reassignment in partitions {
                let partition = reassignment.partition;
                let (error_code, error_message) =
                    match reassign_one(&mut turn, &topic, reassignment).await {
                        Ok(()) => (KafkaCode::NONE, None),
                        Err(error) => (error.code(), Some(error.message())),
                    };
                outcomes.push(PartitionOutcome {
                    partition,
                    error_code,
                    error_message,
                });
            }
            results.push(ReassignmentResult {
                topic,
                partitions: outcomes,
            });
        }
        Ok(results)
    }
}

async fn reassign_one(
    turn: &mut Turn<'_>,
    topic: &str,
    reassignment: PartitionReassignment,
) -> Result<(), ClusterError> {
    let Some(topic_id) = turn.image().topic(topic).map(|t| t.id) else {
        return Err(Rejection::new(
            KafkaCode::UNKNOWN_TOPIC_OR_PARTITION,
            format!("Unable to find a topic named {topic}."),
        )
        .into());
    };
    let command = Command::AlterPartitionReassignment {
        topic_id,
        partition: reassignment.partition,
        target_replicas: reassignment.target_replicas,
    };
    turn.commit(command).await.map(drop)
}
