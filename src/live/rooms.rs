//! Who is connected to which stream's live channel: a seat per connection, at most `max` per
//! stream and a few per client address (per stream and over all streams, so that one client
//! cannot fill a stream's chat or inflate its `connected` count), and the audience counts last
//! announced in each.
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use super::ViewerCount;
use crate::store::{CreatorId, StreamId};

struct Room {
    creator: CreatorId,
    connected: usize,
    /// Of those, the stream owner's (the studio): not the audience.
    owners: usize,
    /// Connections per client address (IPv6 grouped by /64).
    per_address: HashMap<IpAddr, usize>,
    /// The counts last sent as a `viewer_count` event.
    announced: Option<ViewerCount>,
}

/// The limits of [`Rooms`].
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub per_stream: usize,
    /// Connections from one address to one stream.
    pub per_address: usize,
    /// Connections from one address to all streams together.
    pub per_address_all_streams: usize,
}

#[derive(Default)]
struct State {
    rooms: HashMap<StreamId, Room>,
    per_address: HashMap<IpAddr, usize>,
}

pub struct Rooms {
    limits: Limits,
    state: Mutex<State>,
}

/// Why there is no seat.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Full {
    /// The stream has `per_stream` connections.
    Stream,
    /// This address has its share of connections (to this stream or to all).
    Address,
}

/// One connection's place in a stream's room; leaving (drop) frees it.
pub struct Seat {
    rooms: Arc<Rooms>,
    stream: StreamId,
    address: IpAddr,
    owner: bool,
}

/// Lowers a count, forgetting it at zero (the maps hold only open connections).
fn leave(counts: &mut HashMap<IpAddr, usize>, address: IpAddr) {
    if let Some(n) = counts.get_mut(&address) {
        *n -= 1;
        if *n == 0 {
            counts.remove(&address);
        }
    }
}

impl Drop for Seat {
    fn drop(&mut self) {
        let mut state = self.rooms.lock();
        leave(&mut state.per_address, self.address);
        if let Some(room) = state.rooms.get_mut(&self.stream) {
            room.connected -= 1;
            room.owners -= usize::from(self.owner);
            leave(&mut room.per_address, self.address);
            if room.connected == 0 {
                state.rooms.remove(&self.stream);
            }
        }
    }
}

impl Rooms {
    pub fn new(limits: Limits) -> Arc<Self> {
        Arc::new(Rooms {
            limits,
            state: Mutex::new(State::default()),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A seat in the stream's room for a client at `address` (the stream's `owner` or not).
    pub fn join(
        self: &Arc<Self>,
        stream: &StreamId,
        creator: &CreatorId,
        address: IpAddr,
        owner: bool,
    ) -> Result<Seat, Full> {
        let address = crate::address::client_group(address);
        let mut state = self.lock();
        let State { rooms, per_address } = &mut *state;
        if per_address.get(&address).copied().unwrap_or(0) >= self.limits.per_address_all_streams {
            return Err(Full::Address);
        }
        let (connected, from_address) = rooms.get(stream).map_or((0, 0), |r| {
            (
                r.connected,
                r.per_address.get(&address).copied().unwrap_or(0),
            )
        });
        if connected >= self.limits.per_stream {
            return Err(Full::Stream);
        }
        if from_address >= self.limits.per_address {
            return Err(Full::Address);
        }
        let room = rooms.entry(stream.clone()).or_insert_with(|| Room {
            creator: creator.clone(),
            connected: 0,
            owners: 0,
            per_address: HashMap::new(),
            announced: None,
        });
        room.connected += 1;
        room.owners += usize::from(owner);
        *room.per_address.entry(address).or_default() += 1;
        *per_address.entry(address).or_default() += 1;
        Ok(Seat {
            rooms: self.clone(),
            stream: stream.clone(),
            address,
            owner,
        })
    }

    /// Open connections to a stream.
    pub fn connected(&self, stream: &StreamId) -> usize {
        self.lock().rooms.get(stream).map_or(0, |r| r.connected)
    }

    /// Open connections to a stream of others than its owner.
    pub fn audience(&self, stream: &StreamId) -> usize {
        self.lock()
            .rooms
            .get(stream)
            .map_or(0, |r| r.connected - r.owners)
    }

    /// The creator's streams that have connections.
    pub fn streams_of(&self, creator: &CreatorId) -> Vec<StreamId> {
        self.lock()
            .rooms
            .iter()
            .filter(|(_, r)| r.creator == *creator)
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// Streams with connections.
    pub fn streams(&self) -> Vec<StreamId> {
        self.lock().rooms.keys().cloned().collect()
    }

    /// Records a stream's counts (see `Chat::viewer_count`); returns them when they differ from
    /// the last ones announced there (`None` too for a stream without connections here).
    pub fn count_changed(&self, stream: &StreamId, now: ViewerCount) -> Option<ViewerCount> {
        let mut state = self.lock();
        let room = state.rooms.get_mut(stream)?;
        (room.announced != Some(now)).then(|| {
            room.announced = Some(now);
            now
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(per_stream: usize) -> Limits {
        Limits {
            per_stream,
            per_address: 100,
            per_address_all_streams: 100,
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn seats_are_limited_per_stream_and_freed_on_drop() {
        let rooms = Rooms::new(limits(2));
        let c = CreatorId("c".into());
        let (s1, s2) = (StreamId("s1".into()), StreamId("s2".into()));
        let a = rooms.join(&s1, &c, ip("10.0.0.1"), false).unwrap();
        let _b = rooms.join(&s1, &c, ip("10.0.0.2"), false).unwrap();
        assert_eq!(
            rooms.join(&s1, &c, ip("10.0.0.3"), false).err(),
            Some(Full::Stream)
        );
        let _other = rooms.join(&s2, &c, ip("10.0.0.3"), false).unwrap();
        assert_eq!(rooms.streams_of(&c).len(), 2);
        drop(a);
        assert_eq!(rooms.connected(&s1), 1);
        assert!(rooms.join(&s1, &c, ip("10.0.0.3"), false).is_ok());
    }

    #[test]
    fn one_address_gets_its_share_per_stream_and_over_all_streams() {
        let rooms = Rooms::new(Limits {
            per_stream: 100,
            per_address: 2,
            per_address_all_streams: 3,
        });
        let c = CreatorId("c".into());
        let (s1, s2, s3) = (
            StreamId("s1".into()),
            StreamId("s2".into()),
            StreamId("s3".into()),
        );
        let a = rooms.join(&s1, &c, ip("2001:db8::1"), false).unwrap();
        // The same /64.
        let _b = rooms.join(&s1, &c, ip("2001:db8::2"), false).unwrap();
        assert_eq!(
            rooms.join(&s1, &c, ip("2001:db8::3"), false).err(),
            Some(Full::Address)
        );
        assert!(rooms.join(&s1, &c, ip("2001:db8:0:1::1"), false).is_ok());
        let _c = rooms.join(&s2, &c, ip("2001:db8::4"), false).unwrap();
        assert_eq!(
            rooms.join(&s3, &c, ip("2001:db8::5"), false).err(),
            Some(Full::Address),
            "three over all streams"
        );
        drop(a);
        let _d = rooms.join(&s3, &c, ip("2001:db8::5"), false).unwrap();
        assert_eq!(rooms.connected(&s1), 1);
    }

    #[test]
    fn counts_are_announced_only_when_they_change() {
        let rooms = Rooms::new(limits(10));
        let (s, c) = (StreamId("s".into()), CreatorId("c".into()));
        let _seat = rooms.join(&s, &c, ip("10.0.0.1"), false).unwrap();
        let studio = rooms.join(&s, &c, ip("10.0.0.9"), true).unwrap();
        assert_eq!((rooms.connected(&s), rooms.audience(&s)), (2, 1));
        drop(studio);
        assert_eq!((rooms.connected(&s), rooms.audience(&s)), (1, 1));
        let count = |connected| ViewerCount {
            watching: 3,
            connected,
        };
        assert_eq!(rooms.count_changed(&s, count(1)), Some(count(1)));
        assert_eq!(rooms.count_changed(&s, count(1)), None);
        assert_eq!(rooms.count_changed(&s, count(2)), Some(count(2)));
        assert_eq!(
            rooms.count_changed(&StreamId("none".into()), count(1)),
            None
        );
    }
}
