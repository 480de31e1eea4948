//! The subscriber thread: one pub/sub connection to the namespace's channel,
//! a short read timeout so it notices a stop request and silence, a `PING`
//! after silence (a frozen server shows up only as timeouts), strict
//! validation of every notice before the worker sees it.

use std::sync::atomic::Ordering;
use std::sync::mpsc::SyncSender;
use std::sync::Arc;
use std::time::{Duration, Instant};

use redis::Value;

use crate::conn::{describe, Endpoint};
use crate::keys::Namespace;
use crate::{notice, Backoff, Event, Shared, SyncConfig};

pub(crate) struct Subscriber {
    pub(crate) cfg: SyncConfig,
    pub(crate) ns: Namespace,
    pub(crate) endpoint: Endpoint,
    pub(crate) shared: Arc<Shared>,
    pub(crate) tx: SyncSender<Event>,
}

impl Subscriber {
    fn stopping(&self) -> bool {
        self.shared.stop.load(Ordering::Relaxed)
    }

    /// Sleeps `d` in short steps, returning early on stop.
    fn sleep(&self, d: Duration) {
        let until = Instant::now() + d;
        while !self.stopping() {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return;
            }
            std::thread::sleep(left.min(Duration::from_millis(50)));
        }
    }

    pub(crate) fn run(self) {
        let mut backoff = Backoff::new(self.cfg.backoff_min, self.cfg.backoff_max);
        let mut attempt = 0usize;
        let mut ever_subscribed = false;
        while !self.stopping() {
            match self.session(attempt, &mut ever_subscribed, &mut backoff) {
                Ok(()) => return, // stop requested
                Err(e) => {
                    self.shared.error(format!("subscriber: {e}"));
                    if self.tx.send(Event::SubscriberDown).is_err() {
                        return;
                    }
                }
            }
            attempt = attempt.wrapping_add(1);
            self.sleep(backoff.next_delay());
        }
    }

    /// One connection's life. `Ok` only when stopping.
    fn session(
        &self,
        attempt: usize,
        ever_subscribed: &mut bool,
        backoff: &mut Backoff,
    ) -> Result<(), String> {
        let mut con = self.endpoint.single(attempt, self.cfg.connect_timeout)?;
        con.set_read_timeout(Some(self.cfg.subscribe_timeout))
            .map_err(|e| describe(&e))?;
        con.set_write_timeout(Some(self.cfg.io_timeout))
            .map_err(|e| describe(&e))?;
        subscribe(&mut con, self.ns.channel())?;
        let mut ps = con.as_pubsub();
        backoff.reset();
        if *ever_subscribed {
            Shared::bump(&self.shared.reconnects);
        }
        *ever_subscribed = true;
        if self.tx.send(Event::Subscribed).is_err() {
            return Ok(());
        }
        let mut last_heard = Instant::now();
        loop {
            if self.stopping() {
                return Ok(());
            }
            match ps.get_message() {
                Ok(msg) => {
                    last_heard = Instant::now();
                    if msg.get_channel_name() != self.ns.channel() {
                        Shared::bump(&self.shared.malformed_ignored);
                        continue;
                    }
                    match notice::parse(msg.get_payload_bytes(), &self.ns) {
                        Ok(n) => {
                            if self.tx.send(Event::Hint(n.hint())).is_err() {
                                return Ok(());
                            }
                        }
                        Err(_) => match crate::fleetconf::parse_config_notice(
                            msg.get_payload_bytes(),
                            &self.ns,
                        ) {
                            Some(h) => {
                                if self.tx.send(Event::ConfigHint(h.enc)).is_err() {
                                    return Ok(());
                                }
                            }
                            None => Shared::bump(&self.shared.malformed_ignored),
                        },
                    }
                }
                Err(e) if e.is_timeout() => {
                    if last_heard.elapsed() >= self.cfg.ping_after {
                        ps.ping::<Value>()
                            .map_err(|e| format!("no answer to PING: {}", describe(&e)))?;
                        last_heard = Instant::now();
                    }
                }
                Err(e) => return Err(describe(&e)),
            }
        }
    }
}

/// Sends `SUBSCRIBE channel` and waits for the server's confirmation. An
/// error reply (`NOPERM` for an ACL user without the channel) is an error
/// here; the `redis` crate's `PubSub::subscribe` would let it pass.
pub(crate) fn subscribe(con: &mut redis::Connection, channel: &str) -> Result<(), String> {
    con.send_packed_command(&redis::cmd("SUBSCRIBE").arg(channel).get_packed_command())
        .map_err(|e| describe(&e))?;
    match con.recv_response() {
        Ok(Value::Array(items))
            if items.first().is_some_and(
                |k| matches!(k, Value::BulkString(b) if b.as_slice() == b"subscribe"),
            ) =>
        {
            Ok(())
        }
        Ok(Value::ServerError(e)) => Err(format!("SUBSCRIBE {channel}: {e}")),
        Ok(other) => Err(format!("SUBSCRIBE {channel}: unexpected reply {other:?}")),
        Err(e) => Err(format!("SUBSCRIBE {channel}: {}", describe(&e))),
    }
}
