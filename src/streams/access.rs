//! The one rule for who may see a stream now. Every door asks it: the API (`http/access.rs`),
//! HLS and low-latency HLS, RTSP, the live channel, clips, posters and listings.
pub use crate::output::hls::Audience;
use crate::store::Mode;

/// What the caller is shown of a stream in `mode`: its owner (the creator or the admin by their
/// token, `owner`) everything; a valid signed playback link (`signed`) everything too, unless the
/// stream was taken down; anyone the public media while it is public; nobody else anything.
pub fn audience(mode: Mode, taken_down: bool, owner: bool, signed: bool) -> Option<Audience> {
    if owner || (signed && !taken_down) {
        Some(Audience::Owner)
    } else if mode == Mode::Public {
        Some(Audience::Public)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owners_see_everything_strangers_only_what_is_public() {
        use Mode::{Practice, Public};
        let (owner, public) = (Some(Audience::Owner), Some(Audience::Public));
        // (mode, taken down, owner, signed) → audience
        let cases = [
            ((Practice, false, true, false), owner),
            ((Practice, false, false, true), owner),
            ((Practice, true, false, true), None),
            ((Practice, true, true, false), owner),
            ((Practice, false, false, false), None),
            ((Public, false, false, false), public),
            ((Public, false, false, true), owner),
            ((Public, false, true, false), owner),
        ];
        for ((mode, taken_down, is_owner, signed), want) in cases {
            assert_eq!(
                audience(mode, taken_down, is_owner, signed),
                want,
                "{mode:?} taken down {taken_down} owner {is_owner} signed {signed}"
            );
        }
    }
}
