//! Accepting TCP connections without spinning, for every listener gregor
//! has (Kafka listeners, the admin HTTP listener, the coordinator's HTTP
//! listener).
//!
//! When the process runs out of file descriptors, `accept` fails at once
//! and the listening socket stays readable, so a loop that just retries
//! burns a core and floods the log. Errors that concern the whole process
//! are therefore retried after a delay that starts at 10 ms and doubles up
//! to 1 s; the first success resets it. Errors that concern only the one
//! connection being accepted (it was reset before we took it) are retried
//! at once, as they say nothing about the next one.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};

/// Delay between retries of a failing accept: 10 ms doubling to 1 s.
#[derive(Debug, Clone)]
pub struct Backoff {
    next: Duration,
}

impl Backoff {
    pub const FIRST: Duration = Duration::from_millis(10);
    pub const MAX: Duration = Duration::from_secs(1);

    pub fn new() -> Self {
        Backoff { next: Self::FIRST }
    }

    /// The delay to wait now; the one after it is twice as long, up to
    /// [`Backoff::MAX`].
    pub fn next_delay(&mut self) -> Duration {
        let delay = self.next;
        self.next = (self.next * 2).min(Self::MAX);
        delay
    }

    pub fn reset(&mut self) {
        self.next = Self::FIRST;
    }
}

impl Default for Backoff {
    fn default() -> Self {
        Self::new()
    }
}

/// A listening socket whose [`Acceptor::accept`] never fails and never
/// spins. Cancel-safe: dropping the future loses no connection and keeps
/// the backoff.
#[derive(Debug)]
pub struct Acceptor {
    listener: TcpListener,
    /// Names the listener in log lines.
    name: String,
    backoff: Backoff,
}

impl Acceptor {
    pub fn new(listener: TcpListener, name: impl Into<String>) -> Self {
        Acceptor {
            listener,
            name: name.into(),
            backoff: Backoff::new(),
        }
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The next connection; errors are logged and retried with backoff.
    pub async fn accept(&mut self) -> (TcpStream, SocketAddr) {
        let listener = &self.listener;
        retry_with_backoff(&self.name, &mut self.backoff, || listener.accept()).await
    }
}

/// Calls `accept` until it succeeds, sleeping between failures as
/// described in the module documentation.
pub async fn retry_with_backoff<T, F, Fut>(name: &str, backoff: &mut Backoff, mut accept: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = io::Result<T>>,
{
    loop {
        match accept().await {
            Ok(accepted) => {
                backoff.reset();
                return accepted;
            }
            Err(error) if concerns_one_connection(&error) => {
                tracing::debug!(listener = name, %error, "accept failed for one connection");
            }
            Err(error) => {
                let delay = backoff.next_delay();
                tracing::warn!(listener = name, %error, retry_in = ?delay, "accept failed");
                tokio::time::sleep(delay).await;
            }
        }
    }
}

fn concerns_one_connection(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionRefused
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::time::Instant;

    #[test]
    fn backoff_doubles_to_one_second_and_resets() {
        let mut backoff = Backoff::new();
        let delays: Vec<u64> = (0..9)
            .map(|_| backoff.next_delay().as_millis() as u64)
            .collect();
        assert_eq!(delays, [10, 20, 40, 80, 160, 320, 640, 1000, 1000]);
        backoff.reset();
        assert_eq!(backoff.next_delay(), Duration::from_millis(10));
    }

    #[tokio::test(start_paused = true)]
    async fn out_of_descriptors_waits_between_retries() {
        let mut failures = 3;
        let started = Instant::now();
        let mut backoff = Backoff::new();
        let accepted = retry_with_backoff("test", &mut backoff, || {
            let result = if failures > 0 {
                failures -= 1;
                Err(io::Error::from_raw_os_error(libc::EMFILE))
            } else {
                Ok(7)
            };
            async move { result }
        })
        .await;
        assert_eq!(accepted, 7);
        assert_eq!(started.elapsed(), Duration::from_millis(10 + 20 + 40));
        // Success reset the backoff for the next failure.
        assert_eq!(backoff.next_delay(), Backoff::FIRST);
    }

    #[tokio::test(start_paused = true)]
    async fn a_connection_reset_before_accept_is_retried_at_once() {
        let mut failures = 5;
        let started = Instant::now();
        let accepted = retry_with_backoff("test", &mut Backoff::new(), || {
            let result = if failures > 0 {
                failures -= 1;
                Err(io::Error::from(io::ErrorKind::ConnectionAborted))
            } else {
                Ok(())
            };
            async move { result }
        })
        .await;
        assert_eq!(accepted, ());
        assert_eq!(started.elapsed(), Duration::ZERO);
    }
}
