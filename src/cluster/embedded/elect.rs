//! ElectLeaders on the proposer: each partition's election decided against
//! the image of one turn and committed as its own `PartitionChange`.

use super::{EmbeddedCoordinator, Turn};
use crate::cluster::{
    ClusterError, ElectLeadersRequest, ElectionResult, ElectionTopic, ElectionType, KafkaCode,
    PartitionElection,
};

impl EmbeddedCoordinator {
    pub(super) async fn elect(
        &self,
        request: ElectLeadersRequest,
    ) -> Result<Vec<ElectionResult>, ClusterError> {
        let mut turn = self.turn().await?;
        let all = request.topic_partitions.is_none();
        let wanted = match request.topic_partitions {
            Some(topics) => topics,
            None => turn
                .image()
                .topics()
                .map(|topic| ElectionTopic {
                    topic: topic.name.clone(),
                    partitions: (0..topic.partitions.len())
                        .filter_map(|p| i32::try_from(p).ok())
                        .collect(),
                })
                .collect(),
        };
        let mut results = Vec::with_capacity(wanted.len());
        for ElectionTopic { topic, partitions } in wanted {
            let mut elected = Vec::with_capacity(partitions.len());
            for partition in partitions {
                let outcome = elect_one(&mut turn, &topic, partition, request.election_type).await;
                let (error_code, error_message) = match outcome {
                    Ok(()) => (KafkaCode::NONE, None),
                    Err(error) => (error.code(), Some(error.message())),
                };
                // Asked for everything, Kafka lists only what it elected or
                // could not.
                if all && error_code == KafkaCode::ELECTION_NOT_NEEDED {
                    continue;
                }
                elected.push(PartitionElection {
                    partition,
                    error_code,
                    error_message,
                });
            }
            results.push(ElectionResult {
                topic,
                partitions: elected,
            });
        }
        Ok(results)
    }

    /// Preferred elections for the partitions the automatic rebalance picks
    /// at `percentage` (`leader.imbalance.per.broker.percentage`); returns
    /// how many leaders moved.
    pub async fn rebalance_leaders(&self, percentage: u32) -> Result<usize, ClusterError> {
        let mut turn = self.turn().await?;
        let mut moved = 0;
        for (topic, partition) in turn.image().imbalanced_partitions(percentage) {
            match elect_one(&mut turn, &topic, partition, ElectionType::Preferred).await {
                Ok(()) => moved += 1,
                Err(error) => tracing::debug!(
                    topic,
                    partition,
                    %error,
                    "automatic preferred leader election not applied"
                ),
            }
        }
        Ok(moved)
    }
}

async fn elect_one(
    turn: &mut Turn<'_>,
    topic: &str,
    partition: i32,
    kind: ElectionType,
) -> Result<(), ClusterError> {
    let command = turn.image().election(topic, partition, kind)?;
    turn.commit(command).await.map(drop)
}
