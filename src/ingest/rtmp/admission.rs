//! Who may hold an RTMP connection. Publishing connections (their key was accepted) keep their
//! slot; connections that have not published yet are "pending": at most a few per address, and
//! when the server is full the oldest pending one makes room for a newcomer. So idle sockets,
//! even hundreds from one address, cannot lock a real encoder out (they once could: 256 idle
//! sockets held every slot for 10 s at a time).
use std::collections::VecDeque;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use tokio_util::sync::CancellationToken;

/// The slots of one server.
#[derive(Debug)]
pub(super) struct Admission {
    max_connections: usize,
    max_pending_per_address: usize,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    next_id: u64,
    /// Oldest first.
    pending: VecDeque<Pending>,
    publishing: usize,
}

#[derive(Debug)]
struct Pending {
    id: u64,
    ip: IpAddr,
    evict: CancellationToken,
}

/// One admitted connection; dropping it frees the slot.
#[derive(Debug)]
pub(super) struct Ticket {
    admission: Arc<Admission>,
    id: u64,
    publishing: bool,
    /// Cancelled when the connection has to make room (while still pending).
    pub evicted: CancellationToken,
}

impl Admission {
    pub(super) fn new(max_connections: usize, max_pending_per_address: usize) -> Arc<Self> {
        Arc::new(Admission {
            max_connections: max_connections.max(1),
            max_pending_per_address: max_pending_per_address.max(1),
            state: Mutex::new(State::default()),
        })
    }

    /// A slot for a new connection from `ip`, evicting the oldest pending connection of that
    /// address (or, when the server is full, of any address) if need be; `None` when every slot
    /// is publishing.
    pub(super) fn admit(self: &Arc<Self>, ip: IpAddr) -> Option<Ticket> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let same_address = state.pending.iter().filter(|p| p.ip == ip).count();
        if same_address >= self.max_pending_per_address
            && let Some(i) = state.pending.iter().position(|p| p.ip == ip)
        {
            evict(&mut state, i);
        }
        if state.pending.len() + state.publishing >= self.max_connections {
            if state.pending.is_empty() {
                return None;
            }
            evict(&mut state, 0);
        }
        let id = state.next_id;
        state.next_id += 1;
        let evicted = CancellationToken::new();
        state.pending.push_back(Pending {
            id,
            ip,
            evict: evicted.clone(),
        });
        Some(Ticket {
            admission: self.clone(),
            id,
            publishing: false,
            evicted,
        })
    }

    #[cfg(test)]
    fn counts(&self) -> (usize, usize) {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        (state.pending.len(), state.publishing)
    }
}

fn evict(state: &mut State, i: usize) {
    if let Some(p) = state.pending.remove(i) {
        tracing::info!(peer = %p.ip, "rtmp: closing a connection that has not published, to make room (pending connections per address or the server's connection cap)");
        p.evict.cancel();
    }
}

impl Ticket {
    /// The connection's key was accepted: it keeps its slot from now on.
    pub(super) fn publishing(&mut self) {
        if self.publishing {
            return;
        }
        let mut state = self
            .admission
            .state
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(i) = state.pending.iter().position(|p| p.id == self.id) {
            state.pending.remove(i);
        }
        state.publishing += 1;
        self.publishing = true;
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut state = self
            .admission
            .state
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if self.publishing {
            state.publishing = state.publishing.saturating_sub(1);
        } else if let Some(i) = state.pending.iter().position(|p| p.id == self.id) {
            state.pending.remove(i);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn one_address_holds_at_most_its_pending_share_and_the_oldest_gives_way() {
        let admission = Admission::new(10, 2);
        let a1 = admission.admit(ip("10.0.0.1")).unwrap();
        let a2 = admission.admit(ip("10.0.0.1")).unwrap();
        let b1 = admission.admit(ip("10.0.0.2")).unwrap();
        let a3 = admission.admit(ip("10.0.0.1")).unwrap();
        assert!(a1.evicted.is_cancelled());
        assert!(!a2.evicted.is_cancelled() && !a3.evicted.is_cancelled());
        assert!(!b1.evicted.is_cancelled());
        assert_eq!(admission.counts(), (3, 0));
        drop(a1);
        assert_eq!(
            admission.counts(),
            (3, 0),
            "an evicted ticket was already gone"
        );
    }

    #[test]
    fn a_full_server_evicts_the_oldest_pending_and_never_a_publisher() {
        let admission = Admission::new(2, 8);
        let mut publisher = admission.admit(ip("10.0.0.1")).unwrap();
        publisher.publishing();
        let idle = admission.admit(ip("10.0.0.2")).unwrap();
        let newcomer = admission.admit(ip("10.0.0.3")).unwrap();
        assert!(idle.evicted.is_cancelled());
        assert!(!publisher.evicted.is_cancelled() && !newcomer.evicted.is_cancelled());
        let mut second = newcomer;
        second.publishing();
        assert!(
            admission.admit(ip("10.0.0.4")).is_none(),
            "every slot is publishing"
        );
        drop(publisher);
        assert!(admission.admit(ip("10.0.0.4")).is_some());
        drop(second);
        assert_eq!(admission.counts(), (0, 0));
    }
}
