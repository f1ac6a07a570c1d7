//! Renewing this node's certificate before it expires, as SwarmKit does: at a random point
//! between 50 % and 80 % of its life (so a swarm's nodes do not all renew at once), with a
//! manager that signs a new certificate for the same key role, valid for the swarm's current
//! `CAConfig.NodeCertExpiry`. The new certificate is saved (sealed as the key file is) and
//! becomes the one new connections present; open sessions and Raft streams carry on (see
//! `ca::LiveCredentials`). A failed renewal is retried, more often as the expiry nears.

use std::time::{Duration, SystemTime};

use rand::Rng;
use tokio::sync::watch;

use super::{role, NodeRuntime, SwarmState};
use crate::agent::Connection;
use crate::ca::{NodeCertInfo, CERT_BACKDATE};

/// The earliest and latest point of a certificate's life at which it is renewed.
const RENEW_WINDOW: (f64, f64) = (0.5, 0.8);

/// Longest wait between two attempts after a failure.
const MAX_RETRY: Duration = Duration::from_secs(30);

/// Shortest wait between two attempts.
const MIN_RETRY: Duration = Duration::from_millis(500);

/// When the certificate was issued: certificates are backdated by [`CERT_BACKDATE`] to tolerate
/// clock skew, which is not part of the life they were given.
fn issued_at(info: &NodeCertInfo) -> SystemTime {
    let backdated = info.not_before + CERT_BACKDATE;
    if backdated < info.not_after {
        backdated
    } else {
        info.not_before
    }
}

/// How long to wait before renewing a certificate, `fraction` of the way into its life.
fn renewal_delay(info: &NodeCertInfo, now: SystemTime, fraction: f64) -> Duration {
    let issued = issued_at(info);
    let life = info.not_after.duration_since(issued).unwrap_or_default();
    let at = issued + life.mul_f64(fraction);
    at.duration_since(now).unwrap_or_default()
}

/// How long to wait after a failed renewal: a tenth of the time left, within bounds.
fn retry_delay(info: &NodeCertInfo, now: SystemTime) -> Duration {
    let left = info.not_after.duration_since(now).unwrap_or_default();
    (left / 10).clamp(MIN_RETRY, MAX_RETRY)
}

impl NodeRuntime {
    /// Renews this node's certificate whenever it is due, or at once when the roots the swarm
    /// trusts (sent with every session, `connection`) differ from this node's (a root
    /// rotation), until `stopping` turns true (the agent stopped: the node left the swarm or
    /// shuts down).
    pub(super) async fn renew_certificates(
        self,
        mut stopping: watch::Receiver<bool>,
        mut connection: watch::Receiver<Connection>,
    ) {
        let mut planned: Option<(u64, f64)> = None;
        loop {
            let Ok(creds) = self.inner.live.get() else {
                return;
            };
            let generation = self.inner.live.generation();
            let info = match creds.info() {
                Ok(i) => i,
                Err(e) => {
                    tracing::error!("this node's certificate is unreadable, not renewing it: {e}");
                    return;
                }
            };
            // One random point per certificate, kept while other things change.
            let fraction = match planned {
                Some((g, f)) if g == generation => f,
                _ => {
                    let f = rand::rng().random_range(RENEW_WINDOW.0..RENEW_WINDOW.1);
                    planned = Some((generation, f));
                    f
                }
            };
            let roots_changed = connection
                .borrow_and_update()
                .trust_bundle
                .as_deref()
                .is_some_and(|b| b.trim() != creds.ca_pem.trim());
            let wait = if roots_changed {
                tracing::info!("the swarm's root CA changed: renewing this node's certificate");
                Duration::ZERO
            } else {
                renewal_delay(&info, shoal_store::clock::now(), fraction)
            };
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = stopping.wait_for(|s| *s) => return,
                changed = connection.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    continue;
                }
            }
            // Renewed meanwhile (a role change): plan from the new certificate.
            if self.inner.live.generation() != generation {
                continue;
            }
            if let Err(e) = self.renew_certificate_now(generation).await {
                let retry = retry_delay(&info, shoal_store::clock::now());
                tracing::warn!(
                    "renewing this node's certificate failed, retrying in {retry:?}: {e:#}"
                );
                tokio::select! {
                    _ = tokio::time::sleep(retry) => {}
                    _ = stopping.wait_for(|s| *s) => return,
                }
            }
        }
    }

    /// One renewal, under the lifecycle lock (no join, leave or role change meanwhile).
    pub(super) async fn renew_certificate_now(&self, generation: u64) -> anyhow::Result<()> {
        let _guard = self.inner.lifecycle.lock().await;
        if self.inner.live.generation() != generation {
            return Ok(());
        }
        let membership = match &*self.inner.state.read().await {
            SwarmState::Worker { membership } | SwarmState::Manager { membership, .. } => {
                membership.clone()
            }
            _ => return Ok(()),
        };
        let creds = self.inner.live.get()?;
        let held_role = creds.info()?.identity.role;
        let (new_creds, role, _, via) =
            role::renew(&creds, &membership.managers, &membership.advertise_addr).await?;
        if role != held_role {
            anyhow::bail!(
                "the swarm now grants role {role}; the role change renews the certificate"
            );
        }
        self.save_credentials(&new_creds)?;
        let info = new_creds.info()?;
        tracing::info!(
            via,
            serial = info.serial_hex,
            expires = ?info.not_after,
            "renewed this node's certificate"
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ca::{NodeIdentity, NodeRole};

    fn info(issued: SystemTime, life: Duration) -> NodeCertInfo {
        NodeCertInfo {
            identity: NodeIdentity::new("n", NodeRole::Worker, "c"),
            not_before: issued - CERT_BACKDATE,
            not_after: issued + life,
            serial_hex: "01".into(),
        }
    }

    #[test]
    fn renewal_falls_between_half_and_four_fifths_of_the_life_given() {
        let now = shoal_store::clock::now();
        let cert = info(now, Duration::from_secs(100));
        assert_eq!(renewal_delay(&cert, now, 0.5), Duration::from_secs(50));
        assert_eq!(renewal_delay(&cert, now, 0.8), Duration::from_secs(80));
        // The backdating is not part of the life: a 90-day certificate renews after 45-72 days.
        let cert = info(now, Duration::from_secs(90 * 86400));
        assert_eq!(
            renewal_delay(&cert, now, 0.5),
            Duration::from_secs(45 * 86400)
        );
        // Past the point: at once.
        let cert = info(now - Duration::from_secs(90), Duration::from_secs(100));
        assert_eq!(renewal_delay(&cert, now, 0.5), Duration::ZERO);
    }

    #[test]
    fn retries_come_sooner_as_the_expiry_nears() {
        let now = shoal_store::clock::now();
        assert_eq!(
            retry_delay(&info(now, Duration::from_secs(86400)), now),
            MAX_RETRY
        );
        assert_eq!(
            retry_delay(&info(now, Duration::from_secs(20)), now),
            Duration::from_secs(2)
        );
        assert_eq!(
            retry_delay(
                &info(now - Duration::from_secs(30), Duration::from_secs(20)),
                now
            ),
            MIN_RETRY
        );
    }
}
