//! Orders one connection's OffsetCommits and OffsetFetches as Kafka does.
//!
//! Kafka handles a connection's requests one at a time, so a client may
//! pipeline an OffsetCommit and then an OffsetFetch and read back what it
//! committed; librdkafka's `commit(asynchronous)` followed by `committed()`
//! does exactly that. gregor starts every request at once (see
//! `connection`), so without this an OffsetFetch could be answered before
//! an earlier OffsetCommit reached the store and report the offset before
//! it, see a commit sent after it, or two pipelined commits could land in
//! the wrong order and move the committed offset backwards. Only these two
//! APIs are ordered: they are the ones whose answers depend on each other's
//! effects, and the rest of the connection stays pipelined.
//!
//! Each ordered request waits for the one before it, so the last one
//! finishing means every earlier one has.

use tokio::sync::watch;

/// The connection's latest OffsetCommit or OffsetFetch, held by the
/// connection's reader and updated as requests are dispatched, in arrival
/// order.
#[derive(Debug, Default)]
pub struct OffsetRequestOrder {
    last: Option<watch::Receiver<()>>,
}

/// Resolves once the ordered request dispatched before this one on the
/// connection (and so every earlier one) is answered.
#[derive(Debug)]
pub struct PreviousTurn(Option<watch::Receiver<()>>);

/// Held by an ordered request while it runs; dropping it lets the next one
/// go on.
#[derive(Debug)]
pub struct Turn {
    _sender: watch::Sender<()>,
}

impl OffsetRequestOrder {
    /// For an OffsetCommit or OffsetFetch being dispatched: what it must
    /// wait for, and what it holds until it is answered.
    pub fn take_turn(&mut self) -> (PreviousTurn, Turn) {
        let (sender, finished) = watch::channel(());
        let previous = PreviousTurn(self.last.replace(finished));
        (previous, Turn { _sender: sender })
    }
}

impl PreviousTurn {
    pub async fn finished(self) {
        if let Some(mut previous) = self.0 {
            // Nothing is ever sent: the sender's drop is the signal.
            while previous.changed().await.is_ok() {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn each_request_waits_for_the_one_dispatched_before_it() {
        let mut order = OffsetRequestOrder::default();
        let (nothing_before, commit) = order.take_turn();
        nothing_before.finished().await;
        let (after_commit, fetch) = order.take_turn();
        let (after_fetch, next_commit) = order.take_turn();
        let fetch_starts = tokio::spawn(after_commit.finished());
        let next_commit_starts = tokio::spawn(after_fetch.finished());

        tokio::task::yield_now().await;
        assert!(!fetch_starts.is_finished() && !next_commit_starts.is_finished());
        drop(commit);
        fetch_starts.await.unwrap();
        tokio::task::yield_now().await;
        // A commit sent after a fetch never lands before the fetch reads.
        assert!(!next_commit_starts.is_finished());
        drop(fetch);
        next_commit_starts.await.unwrap();
        drop(next_commit);
        // With nothing in flight the next request goes straight on.
        order.take_turn().0.finished().await;
    }
}
