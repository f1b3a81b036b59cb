//! Who is connected to which stream's live channel: a seat per connection, at most `max` per
//! stream, and the audience counts last announced in each.
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use super::ViewerCount;
use crate::store::{CreatorId, StreamId};

struct Room {
    creator: CreatorId,
    connected: usize,
    /// The counts last sent as a `viewer_count` event.
    announced: Option<ViewerCount>,
}

pub struct Rooms {
    max_per_stream: usize,
    rooms: Mutex<HashMap<StreamId, Room>>,
}

/// One connection's place in a stream's room; leaving (drop) frees it.
pub struct Seat {
    rooms: Arc<Rooms>,
    stream: StreamId,
}

impl Drop for Seat {
    fn drop(&mut self) {
        let mut rooms = self.rooms.lock();
        if let Some(room) = rooms.get_mut(&self.stream) {
            room.connected -= 1;
            if room.connected == 0 {
                rooms.remove(&self.stream);
            }
        }
    }
}

impl Rooms {
    pub fn new(max_per_stream: usize) -> Arc<Self> {
        Arc::new(Rooms {
            max_per_stream,
            rooms: Mutex::new(HashMap::new()),
        })
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<StreamId, Room>> {
        self.rooms.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A seat in the stream's room, or `None` when it is full.
    pub fn join(self: &Arc<Self>, stream: &StreamId, creator: &CreatorId) -> Option<Seat> {
        let mut rooms = self.lock();
        let room = rooms.entry(stream.clone()).or_insert_with(|| Room {
            creator: creator.clone(),
            connected: 0,
            announced: None,
        });
        if room.connected >= self.max_per_stream {
            return None;
        }
        room.connected += 1;
        Some(Seat {
            rooms: self.clone(),
            stream: stream.clone(),
        })
    }

    /// Open connections to a stream.
    pub fn connected(&self, stream: &StreamId) -> usize {
        self.lock().get(stream).map_or(0, |r| r.connected)
    }

    /// The creator's streams that have connections.
    pub fn streams_of(&self, creator: &CreatorId) -> Vec<StreamId> {
        self.lock()
            .iter()
            .filter(|(_, r)| r.creator == *creator)
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// Streams with connections.
    pub fn streams(&self) -> Vec<StreamId> {
        self.lock().keys().cloned().collect()
    }

    /// Records `watching` for a stream; returns the counts when they differ from the last ones
    /// announced there.
    pub fn count_changed(&self, stream: &StreamId, watching: usize) -> Option<ViewerCount> {
        let mut rooms = self.lock();
        let room = rooms.get_mut(stream)?;
        let now = ViewerCount {
            watching,
            connected: room.connected,
        };
        (room.announced != Some(now)).then(|| {
            room.announced = Some(now);
            now
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seats_are_limited_per_stream_and_freed_on_drop() {
        let rooms = Rooms::new(2);
        let (s1, s2, c) = (
            StreamId("s1".into()),
            StreamId("s2".into()),
            CreatorId("c".into()),
        );
        let a = rooms.join(&s1, &c).unwrap();
        let _b = rooms.join(&s1, &c).unwrap();
        assert!(rooms.join(&s1, &c).is_none(), "full");
        let _other = rooms.join(&s2, &c).unwrap();
        assert_eq!(rooms.streams_of(&c).len(), 2);
        drop(a);
        assert_eq!(rooms.connected(&s1), 1);
        assert!(rooms.join(&s1, &c).is_some());
    }

    #[test]
    fn counts_are_announced_only_when_they_change() {
        let rooms = Rooms::new(10);
        let (s, c) = (StreamId("s".into()), CreatorId("c".into()));
        let _seat = rooms.join(&s, &c).unwrap();
        assert_eq!(
            rooms.count_changed(&s, 3),
            Some(ViewerCount {
                watching: 3,
                connected: 1
            })
        );
        assert_eq!(rooms.count_changed(&s, 3), None);
        let _second = rooms.join(&s, &c).unwrap();
        assert!(rooms.count_changed(&s, 3).is_some());
        assert_eq!(rooms.count_changed(&StreamId("none".into()), 3), None);
    }
}
