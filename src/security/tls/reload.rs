//! Re-reading a TLS listener's certificates and keys without a restart: on
//! SIGHUP, and when one of its files' modification time changes (polled).
//! A new config applies to new connections; a file that does not load
//! leaves the previous config in place and is reported in one log line.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rustls::ServerConfig;
use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio::sync::watch;

use super::build_server_config;
use crate::config::TlsSettings;

/// How often the files' modification times are looked at.
pub const POLL_INTERVAL: Duration = Duration::from_secs(5);

/// Rebuilds one listener's config when asked or when its files change.
#[derive(Debug)]
pub struct TlsReloader {
    listener: String,
    settings: TlsSettings,
    files: Vec<PathBuf>,
    config: watch::Sender<Arc<ServerConfig>>,
    /// The files' modification times at the last (attempted) load.
    seen: Vec<Option<SystemTime>>,
}

impl TlsReloader {
    pub(super) fn new(
        listener: &str,
        settings: TlsSettings,
        config: watch::Sender<Arc<ServerConfig>>,
    ) -> Self {
        let files = settings.files();
        let seen = modified(&files);
        TlsReloader {
            listener: listener.to_string(),
            settings,
            files,
            config,
            seen,
        }
    }

    /// Reloads when `forced` or when a file changed since the last attempt.
    /// Reads files: call it off the async workers.
    pub fn check(&mut self, forced: bool) {
        let now = modified(&self.files);
        if !forced && now == self.seen {
            return;
        }
        // Remembered even when the load fails, so a bad file is reported
        // once, not at every poll; the next write is tried again.
        self.seen = now;
        match build_server_config(&self.settings) {
            Ok(config) => {
                self.config.send_replace(config);
                tracing::info!(listener = %self.listener, "TLS certificates reloaded");
            }
            Err(error) => tracing::warn!(
                listener = %self.listener,
                %error,
                "TLS certificates not reloaded; new connections keep the previous ones"
            ),
        }
    }
}

fn modified(files: &[PathBuf]) -> Vec<Option<SystemTime>> {
    files
        .iter()
        .map(|path| std::fs::metadata(path).and_then(|m| m.modified()).ok())
        .collect()
}

/// Runs the reloaders until shutdown: on every SIGHUP, and every
/// [`POLL_INTERVAL`] for files that changed.
pub async fn reload_on_change(
    mut reloaders: Vec<TlsReloader>,
    mut shutdown: watch::Receiver<bool>,
) {
    if reloaders.is_empty() {
        return;
    }
    let mut hangups = match signal(SignalKind::hangup()) {
        Ok(hangups) => Some(hangups),
        Err(error) => {
            tracing::warn!(%error, "cannot listen for SIGHUP; TLS files are still polled");
            None
        }
    };
    let mut poll = tokio::time::interval(POLL_INTERVAL);
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    poll.tick().await;
    loop {
        let forced = tokio::select! {
            _ = poll.tick() => false,
            () = hangup(&mut hangups) => true,
            _ = shutdown.changed() => return,
        };
        let checked = tokio::task::spawn_blocking(move || {
            for reloader in &mut reloaders {
                reloader.check(forced);
            }
            reloaders
        });
        reloaders = match checked.await {
            Ok(reloaders) => reloaders,
            Err(error) => {
                tracing::error!(%error, "TLS reload failed; certificates will not reload");
                return;
            }
        };
    }
}

/// The next SIGHUP, or never when they cannot be received.
async fn hangup(hangups: &mut Option<Signal>) {
    if let Some(signals) = hangups
        && signals.recv().await.is_some()
    {
        return;
    }
    std::future::pending().await
}
