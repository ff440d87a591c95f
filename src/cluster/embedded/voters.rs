//! Adding and removing controllers (Kafka's `add-controller` and
//! `remove-controller`), checked against the quorum's own rules before
//! openraft changes the voters: one change at a time, no duplicate voter,
//! never the last voter, and never an id that was removed before.

use super::{Committer, EmbeddedCoordinator, quorum_error};
use crate::cluster::metadata::{KafkaCode, Rejection};
use crate::cluster::raft::{MembershipChange, Proposal};
use crate::cluster::{ClusterError, raft::MemberId};

impl EmbeddedCoordinator {
    /// Applies one voter change on the quorum's leader (NOT_CONTROLLER
    /// elsewhere).
    pub async fn change_voters(&self, change: MembershipChange) -> Result<(), ClusterError> {
        let Committer::Quorum { node, .. } = &self.committer else {
            return Err(Rejection::new(
                KafkaCode::INVALID_REQUEST,
                "this node is not a member of a controller quorum",
            )
            .into());
        };
        // The turn confirms the lead and orders the check with proposals;
        // it is let go before a new voter's catch-up, which may be long.
        let turn = self.turn().await?;
        let voters = node.voters();
        match &change {
            MembershipChange::Add { member_id, .. } => {
                if turn.image().removed_controllers.contains(member_id) {
                    return Err(removed_before(*member_id));
                }
                if voters.contains_key(member_id) {
                    return Err(Rejection::new(
                        KafkaCode::DUPLICATE_VOTER,
                        format!("controller {member_id} is already a voter"),
                    )
                    .into());
                }
            }
            MembershipChange::Remove { member_id } => {
                if !voters.contains_key(member_id) {
                    return Err(Rejection::new(
                        KafkaCode::VOTER_NOT_FOUND,
                        format!(
                            "controller {member_id} is not a voter; the voters are {:?}",
                            voters.keys().collect::<Vec<_>>()
                        ),
                    )
                    .into());
                }
                if voters.len() == 1 {
                    return Err(Rejection::new(
                        KafkaCode::INVALID_REQUEST,
                        format!("controller {member_id} is the last voter"),
                    )
                    .into());
                }
                // Recorded before the change: should the change fail, the id
                // is still never reused, which is the safe side.
                node.propose(Proposal::VoterRemoved {
                    member_id: *member_id,
                })
                .await
                .map_err(quorum_error)?;
            }
        }
        drop(turn);
        node.change_voters(change.clone())
            .await
            .map_err(quorum_error)?;
        tracing::info!(?change, voters = ?node.voters().keys().collect::<Vec<_>>(), "controller quorum voters changed");
        Ok(())
    }
}

fn removed_before(member_id: MemberId) -> ClusterError {
    Rejection::new(
        KafkaCode::INVALID_REQUEST,
        format!(
            "controller {member_id} was removed from the quorum and its id is never reused; give the new controller another node.id"
        ),
    )
    .into()
}
