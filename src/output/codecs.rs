//! RFC 6381 codec strings (`CODECS="avc1.64001f,mp4a.40.2"`) and AAC parameters from codec configuration
//! records, as they arrive from ingest (the FLV sequence headers) or from caps `codec_data`.
//!
//! Everything here reads untrusted bytes from a publisher: it returns `None` on short or malformed input and
//! never panics.

/// `avc1.PPCCLL` from an AVCDecoderConfigurationRecord (ISO/IEC 14496-15 §5.3.3.1): byte 0 is
/// `configurationVersion` (always 1), bytes 1..4 are `AVCProfileIndication`, `profile_compatibility`
/// (the constraint flags) and `AVCLevelIndication`.
///
/// Returns `None` for input shorter than 4 bytes or with a version other than 1 (an Annex B start code
/// `00 00 00 01` passed by mistake must not turn into `avc1.000001`).
pub fn avc1(avcc: &[u8]) -> Option<String> {
    match avcc {
        [1, profile, constraints, level, ..] => {
            Some(format!("avc1.{profile:02x}{constraints:02x}{level:02x}"))
        }
        _ => None,
    }
}

/// `mp4a.40.<audio object type>` from an AAC AudioSpecificConfig (ISO/IEC 14496-3 §1.6.2.1), e.g.
/// `mp4a.40.2` for AAC-LC, `mp4a.40.5` for explicitly signalled HE-AAC, `mp4a.40.29` for HE-AAC v2.
/// Object types above 30 use the escape value 31 plus six more bits (`mp4a.40.42` for USAC).
///
/// Returns `None` for empty or truncated input and for object type 0 (the "null" object).
/// RFC 6381 string from the profile and level names GStreamer puts in H.264 caps (`main`, `3.1`),
/// with the constraint flags x264 writes for each profile.
pub fn avc1_from_names(profile: &str, level: &str) -> Option<String> {
    let (profile_idc, constraints) = match profile {
        "constrained-baseline" | "baseline" => (0x42, 0xc0),
        "main" => (0x4d, 0x40),
        "high" => (0x64, 0x00),
        _ => return None,
    };
    let level_idc: u8 = match level {
        "1b" => 11,
        l => {
            let (major, minor) = l.split_once('.').unwrap_or((l, "0"));
            major
                .parse::<u8>()
                .ok()?
                .checked_mul(10)?
                .checked_add(minor.parse::<u8>().ok()?)?
        }
    };
    Some(format!(
        "avc1.{profile_idc:02x}{constraints:02x}{level_idc:02x}"
    ))
}

pub fn mp4a(asc: &[u8]) -> Option<String> {
    let mut bits = BitReader::new(asc);
    let object_type = audio_object_type(&mut bits)?;
    Some(format!("mp4a.40.{object_type}"))
}

/// Joins a video and an audio codec string into a `CODECS` value: `avc1.64001f,mp4a.40.2`.
/// Either may be missing (audio-only and video-only streams); `None` when both are.
pub fn join(video: Option<String>, audio: Option<String>) -> Option<String> {
    let parts: Vec<String> = [video, audio]
        .into_iter()
        .flatten()
        .filter(|c| !c.is_empty())
        .collect();
    if parts.is_empty() {
        None
    } else {
        Some(parts.join(","))
    }
}

/// Whether two AudioSpecificConfigs describe the same audio (object type, sample rate, channels):
/// encoders and demuxers write the same format with different bytes (FLV from ffmpeg carries
/// extension fields that an ASC rebuilt from ADTS headers leaves out).
pub fn same_aac_format(a: &[u8], b: &[u8]) -> bool {
    let format = |asc: &[u8]| Some((mp4a(asc)?, aac_sample_rate_channels(asc)?));
    a == b || format(a).is_some_and(|f| Some(f) == format(b))
}

/// Output sample rate (Hz) and channel count from an AAC AudioSpecificConfig, for stream health.
///
/// - For explicitly signalled HE-AAC (object type 5 or 29) the rate is the SBR output rate (the extension
///   sampling frequency), which is what a listener hears; for HE-AAC v2 (29) a mono core reports 2 channels,
///   since parametric stereo decodes to stereo.
/// - Channel configuration 0 (layout given in a program config element) reports 0 channels.
/// - `None` on truncated input, a reserved sampling-frequency index or a reserved channel configuration.
pub fn aac_sample_rate_channels(asc: &[u8]) -> Option<(u32, u8)> {
    let mut bits = BitReader::new(asc);
    let object_type = audio_object_type(&mut bits)?;
    let mut rate = sampling_frequency(&mut bits)?;
    let mut channels = channel_count(bits.read(4)?)?;
    if object_type == AOT_SBR || object_type == AOT_PS {
        rate = sampling_frequency(&mut bits)?;
        if object_type == AOT_PS && channels == 1 {
            channels = 2;
        }
    }
    Some((rate, channels))
}

/// Spectral band replication (HE-AAC), ISO/IEC 14496-3 table 1.1.
const AOT_SBR: u32 = 5;
/// Parametric stereo (HE-AAC v2).
const AOT_PS: u32 = 29;
/// Escape value: the object type is 32 + the next six bits.
const AOT_ESCAPE: u32 = 31;
/// `samplingFrequencyIndex` value announcing an explicit 24-bit frequency.
const SF_INDEX_EXPLICIT: u32 = 0xf;

/// `samplingFrequencyIndex` → Hz (ISO/IEC 14496-3 table 1.18); 13 and 14 are reserved.
const SAMPLING_FREQUENCIES: [u32; 13] = [
    96_000, 88_200, 64_000, 48_000, 44_100, 32_000, 24_000, 22_050, 16_000, 12_000, 11_025, 8_000,
    7_350,
];

/// `GetAudioObjectType()`: five bits, or 32 + six bits after the escape value.
fn audio_object_type(bits: &mut BitReader<'_>) -> Option<u32> {
    let object_type = match bits.read(5)? {
        AOT_ESCAPE => 32 + bits.read(6)?,
        0 => return None,
        other => other,
    };
    Some(object_type)
}

/// A `samplingFrequencyIndex` (4 bits), followed by 24 bits of frequency when the index is 0xf.
fn sampling_frequency(bits: &mut BitReader<'_>) -> Option<u32> {
    match bits.read(4)? {
        SF_INDEX_EXPLICIT => bits.read(24).filter(|&hz| hz > 0),
        index => SAMPLING_FREQUENCIES
            .get(usize::try_from(index).ok()?)
            .copied(),
    }
}

/// `channelConfiguration` → channel count (ISO/IEC 14496-3 table 1.19, with the 2009+ amendments).
fn channel_count(config: u32) -> Option<u8> {
    match config {
        0 => Some(0),
        1..=6 => u8::try_from(config).ok(),
        7 | 12 | 14 => Some(8),
        11 => Some(7),
        13 => Some(24),
        _ => None,
    }
}

/// MSB-first bit reader over a byte slice; every read past the end is `None`.
struct BitReader<'a> {
    data: &'a [u8],
    /// Position in bits from the start of `data`.
    pos: usize,
}

impl<'a> BitReader<'a> {
    fn new(data: &'a [u8]) -> Self {
        Self { data, pos: 0 }
    }

    /// Reads `n` ≤ 32 bits as an unsigned big-endian number.
    fn read(&mut self, n: usize) -> Option<u32> {
        debug_assert!(n <= 32);
        let end = self.pos.checked_add(n)?;
        if end > self.data.len().checked_mul(8)? {
            return None;
        }
        let mut value: u32 = 0;
        for bit in self.pos..end {
            let byte = self.data[bit / 8];
            let b = (byte >> (7 - bit % 8)) & 1;
            value = (value << 1) | u32::from(b);
        }
        self.pos = end;
        Some(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// OBS x264 High profile level 3.1: `01 64 00 1f ff e1 …`.
    const AVCC_HIGH_31: [u8; 8] = [0x01, 0x64, 0x00, 0x1f, 0xff, 0xe1, 0x00, 0x19];

    #[test]
    fn avc1_reads_profile_constraints_and_level() {
        assert_eq!(avc1(&AVCC_HIGH_31).as_deref(), Some("avc1.64001f"));
        // Constrained baseline 3.0 (phones): profile 66, constraint_set0+1, level 30.
        assert_eq!(
            avc1(&[0x01, 0x42, 0xc0, 0x1e]).as_deref(),
            Some("avc1.42c01e")
        );
        // Main 4.0.
        assert_eq!(
            avc1(&[0x01, 0x4d, 0x40, 0x28, 0xff]).as_deref(),
            Some("avc1.4d4028")
        );
    }

    #[test]
    fn avc1_rejects_short_input_and_annex_b() {
        assert_eq!(avc1(&[]), None);
        assert_eq!(avc1(&[0x01]), None);
        assert_eq!(avc1(&[0x01, 0x64, 0x00]), None);
        assert_eq!(avc1(&[0x00, 0x00, 0x00, 0x01, 0x67, 0x64]), None);
    }

    #[test]
    fn mp4a_reads_common_object_types() {
        // AAC-LC 44.1 kHz stereo: 00010 0100 0010 000 → 0x12 0x10.
        assert_eq!(mp4a(&[0x12, 0x10]).as_deref(), Some("mp4a.40.2"));
        // AAC-LC 48 kHz stereo: 00010 0011 0010 → 0x11 0x90.
        assert_eq!(mp4a(&[0x11, 0x90]).as_deref(), Some("mp4a.40.2"));
        // HE-AAC explicit: object type 5.
        assert_eq!(
            mp4a(&[0x2b, 0x12, 0x08, 0x80]).as_deref(),
            Some("mp4a.40.5")
        );
        // HE-AAC v2: object type 29 = 11101.
        assert_eq!(
            mp4a(&[0xeb, 0x09, 0x88, 0x00]).as_deref(),
            Some("mp4a.40.29")
        );
        // Only the first five bits are needed for object types below 31.
        assert_eq!(mp4a(&[0x10]).as_deref(), Some("mp4a.40.2"));
    }

    #[test]
    fn mp4a_reads_escaped_object_type() {
        // 11111 + 001010 (10) → 32 + 10 = 42 (USAC): 1111 1001 010x xxxx.
        assert_eq!(mp4a(&[0xf9, 0x40]).as_deref(), Some("mp4a.40.42"));
        // Escape value with its extension bits missing.
        assert_eq!(mp4a(&[0xf8]), None);
    }

    #[test]
    fn mp4a_rejects_empty_input_and_null_object_type() {
        assert_eq!(mp4a(&[]), None);
        assert_eq!(mp4a(&[0x00, 0x00]), None);
    }

    #[test]
    fn sample_rate_and_channels_of_aac_lc() {
        assert_eq!(aac_sample_rate_channels(&[0x12, 0x10]), Some((44_100, 2)));
        assert_eq!(aac_sample_rate_channels(&[0x11, 0x90]), Some((48_000, 2)));
        // 48 kHz mono: 00010 0011 0001 → 0x11 0x88.
        assert_eq!(aac_sample_rate_channels(&[0x11, 0x88]), Some((48_000, 1)));
        // 5.1 at 48 kHz: channel configuration 6 → 00010 0011 0110 → 0x11 0xb0.
        assert_eq!(aac_sample_rate_channels(&[0x11, 0xb0]), Some((48_000, 6)));
    }

    #[test]
    fn sample_rate_explicit_frequency() {
        // 00010 1111 <24 bits: 44100 = 0x00ac44> 0010 (stereo), regrouped into bytes:
        // 00010111 1|0000000 0|1010110 0|0100010 0|0010 000 → 17 80 56 22 10.
        let asc = [0x17, 0x80, 0x56, 0x22, 0x10];
        assert_eq!(aac_sample_rate_channels(&asc), Some((44_100, 2)));
        // Truncated inside the 24-bit frequency.
        assert_eq!(aac_sample_rate_channels(&asc[..3]), None);
    }

    #[test]
    fn sample_rate_of_he_aac_is_the_sbr_output_rate() {
        // AOT 5, core 24 kHz (index 6), stereo, extension index 3 (48 kHz), then AOT 2:
        // 00101 0110 0010 0011 00010 → 0010 1011 0001 0001 1000 10xx → 0x2b 0x11 0x88.
        assert_eq!(
            aac_sample_rate_channels(&[0x2b, 0x11, 0x88]),
            Some((48_000, 2))
        );
        // HE-AAC v2: AOT 29, core 22.05 kHz (7), mono core, extension 44.1 kHz (4):
        // 11101 0111 0001 0100 → 1110 1011 1000 1010 0xxx → 0xeb 0x8a 0x00; PS decodes to stereo.
        assert_eq!(
            aac_sample_rate_channels(&[0xeb, 0x8a, 0x00]),
            Some((44_100, 2))
        );
        // Extension frequency missing.
        assert_eq!(aac_sample_rate_channels(&[0x2b, 0x11]), None);
    }

    #[test]
    fn sample_rate_rejects_reserved_and_short_input() {
        assert_eq!(aac_sample_rate_channels(&[]), None);
        assert_eq!(aac_sample_rate_channels(&[0x12]), None);
        // Reserved sampling frequency index 13: 00010 1101 0010 → 0x16 0x90.
        assert_eq!(aac_sample_rate_channels(&[0x16, 0x90]), None);
        // Reserved channel configuration 8: 00010 0011 1000 → 0x11 0xc0.
        assert_eq!(aac_sample_rate_channels(&[0x11, 0xc0]), None);
        // Channel configuration 0 (program config element): rate known, channels 0.
        assert_eq!(aac_sample_rate_channels(&[0x11, 0x80]), Some((48_000, 0)));
        // 7.1: channel configuration 7 → 8 channels.
        assert_eq!(aac_sample_rate_channels(&[0x11, 0xb8]), Some((48_000, 8)));
    }

    #[test]
    fn no_input_prefix_panics() {
        let inputs: [&[u8]; 4] = [
            &AVCC_HIGH_31,
            &[0x17, 0x80, 0x56, 0x22, 0x10],
            &[0xff; 6],
            &[0xeb, 0x8a, 0x00],
        ];
        for input in inputs {
            for len in 0..=input.len() {
                let prefix = &input[..len];
                let _ = avc1(prefix);
                let _ = mp4a(prefix);
                let _ = aac_sample_rate_channels(prefix);
            }
        }
    }

    #[test]
    fn join_combines_what_is_present() {
        assert_eq!(
            join(Some("avc1.64001f".into()), Some("mp4a.40.2".into())).as_deref(),
            Some("avc1.64001f,mp4a.40.2")
        );
        assert_eq!(
            join(Some("avc1.64001f".into()), None).as_deref(),
            Some("avc1.64001f")
        );
        assert_eq!(
            join(None, Some("mp4a.40.2".into())).as_deref(),
            Some("mp4a.40.2")
        );
        assert_eq!(join(None, None), None);
        assert_eq!(join(Some(String::new()), None), None);
    }

    #[test]
    fn codecs_from_real_configuration_join_for_the_master_playlist() {
        let codecs = join(avc1(&AVCC_HIGH_31), mp4a(&[0x12, 0x10]));
        assert_eq!(codecs.as_deref(), Some("avc1.64001f,mp4a.40.2"));
    }

    #[test]
    fn avc1_from_gstreamer_caps_names() {
        assert_eq!(
            avc1_from_names("main", "3.1").as_deref(),
            Some("avc1.4d401f")
        );
        assert_eq!(avc1_from_names("high", "4").as_deref(), Some("avc1.640028"));
        assert_eq!(
            avc1_from_names("constrained-baseline", "3").as_deref(),
            Some("avc1.42c01e")
        );
        assert_eq!(avc1_from_names("high-4:4:4", "3.1"), None);
        assert_eq!(avc1_from_names("main", "x"), None);
    }

    #[test]
    fn the_same_aac_format_in_other_bytes_is_the_same() {
        // AAC-LC 48 kHz stereo, bare and with ffmpeg's trailing extension bytes.
        assert!(same_aac_format(
            &[0x11, 0x90],
            &[0x11, 0x90, 0x56, 0xe5, 0x00]
        ));
        // 44.1 kHz is not 48 kHz; mono is not stereo.
        assert!(!same_aac_format(&[0x11, 0x90], &[0x12, 0x10]));
        assert!(!same_aac_format(&[0x11, 0x90], &[0x11, 0x88]));
        assert!(!same_aac_format(&[0x11, 0x90], &[]));
    }
}
