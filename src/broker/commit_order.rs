//! Orders one connection's OffsetCommits and OffsetFetches as Kafka does.
//!
//! Kafka handles a connection's requests one at a time, so a client may
//! pipeline an OffsetCommit and then an OffsetFetch and read back what it
//! committed; librdkafka's `commit(asynchronous)` followed by `committed()`
//! does exactly that. gregor starts every request at once (see
//! `connection`), so without this an OffsetFetch could be answered before
//! an earlier OffsetCommit reached the store, and report the offset before
//! it; two pipelined commits could also land in the wrong order and move
//! the committed offset backwards. Only these two APIs are ordered: they
//! are the ones whose answers depend on each other's effects.
//!
//! Each commit waits for the connection's previous commit before it starts,
//! so the last commit finishing means every earlier one has.

use tokio::sync::watch;

/// The connection's latest OffsetCommit, held by the connection's reader
/// and updated as requests are dispatched, in arrival order.
#[derive(Debug, Default)]
pub struct CommitOrder {
    last: Option<watch::Receiver<()>>,
}

/// Resolves once the commits dispatched before it on the connection are
/// answered.
#[derive(Debug)]
pub struct EarlierCommits(Option<watch::Receiver<()>>);

/// Held by an OffsetCommit while it runs; dropping it lets the requests
/// dispatched after it go on.
#[derive(Debug)]
pub struct CommitRunning {
    _sender: watch::Sender<()>,
}

impl CommitOrder {
    /// For an OffsetCommit being dispatched: what it must wait for, and
    /// what it holds until it is answered.
    pub fn commit(&mut self) -> (EarlierCommits, CommitRunning) {
        let (running, finished) = watch::channel(());
        let earlier = EarlierCommits(self.last.replace(finished));
        (earlier, CommitRunning { _sender: running })
    }

    /// For an OffsetFetch being dispatched: the commits it must see.
    pub fn fetch(&self) -> EarlierCommits {
        EarlierCommits(self.last.clone())
    }
}

impl EarlierCommits {
    pub async fn finished(self) {
        if let Some(mut last) = self.0 {
            // Nothing is ever sent: the sender's drop is the signal.
            while last.changed().await.is_ok() {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_fetch_waits_for_every_commit_dispatched_before_it() {
        let mut order = CommitOrder::default();
        let (none_before, first) = order.commit();
        none_before.finished().await;
        let (after_first, second) = order.commit();
        let fetch = tokio::spawn(order.fetch().finished());
        let second_started = tokio::spawn(after_first.finished());

        tokio::task::yield_now().await;
        assert!(!fetch.is_finished() && !second_started.is_finished());
        drop(first);
        second_started.await.unwrap();
        tokio::task::yield_now().await;
        assert!(!fetch.is_finished());
        drop(second);
        fetch.await.unwrap();
        // With nothing in flight a fetch goes straight on.
        order.fetch().finished().await;
    }
}
