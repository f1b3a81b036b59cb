//! H.264 configuration as publishers send it: an `AVCDecoderConfigurationRecord`, or one SPS.
fn main() {
    afl::fuzz!(|data: &[u8]| {
        if let Some(info) = livefront::ingest::avc::parse_avcc(data) {
            let _ = (info.profile_name(), info.level_name());
        }
        let _ = livefront::ingest::avc::parse_sps(data);
    });
}
