//! The SRT `streamid` of a caller's handshake.
fn main() {
    afl::fuzz!(|data: &[u8]| {
        let text = String::from_utf8_lossy(data);
        if let Ok(key) = livefront::ingest::srt::stream_id::publish_key(Some(&text)) {
            assert!(
                !key.is_empty() && text.contains(key),
                "{key:?} from {text:?}"
            );
        }
    });
}
