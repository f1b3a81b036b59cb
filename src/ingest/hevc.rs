//! What an H.265 publisher's configuration says: profile, tier, level and coded size, read from
//! the `HEVCDecoderConfigurationRecord` (hvcC, ISO/IEC 14496-15 §8.3.3.1) and the SPS inside it.
//! Never panics on malformed input.
use super::avc::Bits;

/// NAL unit types of the parameter sets (ITU-T H.265 Table 7-1).
const NAL_VPS: u8 = 32;
const NAL_SPS: u8 = 33;
const NAL_PPS: u8 = 34;
/// The fixed part of an hvcC before its NAL unit arrays.
const HVCC_HEADER_LEN: usize = 23;

/// The facts of an hvcC (and its SPS) that livefront uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HevcInfo {
    pub profile_space: u8,
    pub high_tier: bool,
    pub profile_idc: u8,
    pub compatibility_flags: u32,
    pub constraint_flags: [u8; 6],
    pub level_idc: u8,
    /// Display size after the conformance window.
    pub width: u32,
    pub height: u32,
}

impl HevcInfo {
    pub fn profile_name(&self) -> &'static str {
        match self.profile_idc {
            1 => "main",
            2 => "main-10",
            3 => "main-still-picture",
            4 => "range-extensions",
            _ => "other",
        }
    }

    /// "3.1" from general_level_idc 93 (the level times 30).
    pub fn level_name(&self) -> String {
        let l = u32::from(self.level_idc);
        format!("{}.{}", l / 30, l % 30 / 3)
    }

    /// The RFC 6381 / ISO/IEC 14496-15 Annex E codec string: `hvc1.1.6.L93.B0` (profile space
    /// and profile, the compatibility flags bit-reversed in hex, tier and level, the constraint
    /// bytes without the trailing zero ones).
    pub fn codec_string(&self) -> String {
        let space = ["", "A", "B", "C"][usize::from(self.profile_space & 3)];
        let tier = if self.high_tier { 'H' } else { 'L' };
        let mut s = format!(
            "hvc1.{space}{}.{:x}.{tier}{}",
            self.profile_idc,
            self.compatibility_flags.reverse_bits(),
            self.level_idc
        );
        let used = self
            .constraint_flags
            .iter()
            .rposition(|&b| b != 0)
            .map_or(0, |i| i + 1);
        for b in &self.constraint_flags[..used] {
            s.push_str(&format!(".{b:X}"));
        }
        s
    }
}

/// Parses an hvcC: its header and the size from its first SPS. `None` unless the record has a
/// VPS, an SPS and a PPS and the SPS gives a size: what a decoder needs before the first frame.
pub fn parse_hvcc(hvcc: &[u8]) -> Option<HevcInfo> {
    let header = hvcc.get(..HVCC_HEADER_LEN)?;
    if header[0] != 1 {
        return None;
    }
    let mut sets = [false; 3];
    let mut sps = None;
    let mut rest = &hvcc[HVCC_HEADER_LEN..];
    for _ in 0..header[22] {
        let (&kind, tail) = rest.split_first()?;
        let count = u16::from_be_bytes([*tail.first()?, *tail.get(1)?]);
        rest = &tail[2..];
        for _ in 0..count {
            let len = usize::from(u16::from_be_bytes([*rest.first()?, *rest.get(1)?]));
            let nal = rest.get(2..2 + len)?;
            rest = &rest[2 + len..];
            match kind & 0x3f {
                NAL_VPS => sets[0] = true,
                NAL_SPS => {
                    sets[1] = true;
                    sps = sps.or(Some(nal));
                }
                NAL_PPS => sets[2] = true,
                _ => {}
            }
        }
    }
    if sets != [true; 3] {
        return None;
    }
    let (width, height) = sps_size(sps?)?;
    let mut constraint_flags = [0u8; 6];
    constraint_flags.copy_from_slice(&header[6..12]);
    Some(HevcInfo {
        profile_space: header[1] >> 6,
        high_tier: header[1] & 0x20 != 0,
        profile_idc: header[1] & 0x1f,
        compatibility_flags: u32::from_be_bytes([header[2], header[3], header[4], header[5]]),
        constraint_flags,
        level_idc: header[12],
        width,
        height,
    })
}

/// The display size an SPS NAL unit (with its two-byte header) gives (H.265 §7.3.2.2).
fn sps_size(nal: &[u8]) -> Option<(u32, u32)> {
    if (nal.first()? >> 1) & 0x3f != NAL_SPS || nal.len() < 3 {
        return None;
    }
    let mut b = Bits::new(&nal[2..]);
    b.bits(4)?; // sps_video_parameter_set_id
    let sub_layers = b.bits(3)? as usize; // sps_max_sub_layers_minus1
    b.bit()?; // sps_temporal_id_nesting_flag
    // profile_tier_level: the general profile (88 bits) and level (8 bits), then the sub-layers'.
    b.bits(32)?;
    b.bits(32)?;
    b.bits(32)?;
    let mut present = Vec::with_capacity(sub_layers);
    for _ in 0..sub_layers {
        present.push((b.bit()? == 1, b.bit()? == 1));
    }
    if sub_layers > 0 {
        for _ in sub_layers..8 {
            b.bits(2)?;
        }
    }
    for (profile, level) in present {
        if profile {
            b.bits(32)?;
            b.bits(32)?;
            b.bits(24)?;
        }
        if level {
            b.bits(8)?;
        }
    }
    b.ue()?; // sps_seq_parameter_set_id
    let chroma_format_idc = b.ue()?;
    if chroma_format_idc == 3 {
        b.bit()?; // separate_colour_plane_flag
    }
    let width = u64::from(b.ue()?);
    let height = u64::from(b.ue()?);
    let (mut crop_w, mut crop_h) = (0u64, 0u64);
    if b.bit()? == 1 {
        let (sub_w, sub_h) = match chroma_format_idc {
            1 => (2, 2),
            2 => (2, 1),
            _ => (1, 1),
        };
        crop_w = sub_w * (u64::from(b.ue()?) + u64::from(b.ue()?));
        crop_h = sub_h * (u64::from(b.ue()?) + u64::from(b.ue()?));
    }
    let width = u32::try_from(width.checked_sub(crop_w)?).ok()?;
    let height = u32::try_from(height.checked_sub(crop_h)?).ok()?;
    (width > 0 && height > 0).then_some((width, height))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// x265 (GStreamer x265enc) Main, 320x240 and 1366x768 (coded 1368x768, cropped).
    const HVCC_240P: &str = "0101600000009000000000003ff000fcfdf8f800000f03200001001840010c01ffff01600000030090000003000003003fba0240210001002f42010101600000030090000003000003003fa00a080f165ba4a4c2fff000100016a0c0c0c080000003008000000c8422000100064401c0718312";
    const HVCC_768P: &str = "01016000000090000000000078f000fcfdf8f800000f03200001001840010c01ffff016000000300900000030000030078ba02402100010030420101016000000300900000030000030078a002b080301cde5ba4a4c2fff000100016a0202020800001f480003a980422000100064401c0718312";

    #[test]
    fn reads_profile_level_and_size_from_x265_output() {
        let info = parse_hvcc(&hex::decode(HVCC_240P).unwrap()).expect("parses");
        assert_eq!((info.width, info.height), (320, 240));
        assert_eq!(
            (info.profile_name(), info.level_name().as_str()),
            ("main", "2.1")
        );
        assert_eq!(info.codec_string(), "hvc1.1.6.L63.90");
        let info = parse_hvcc(&hex::decode(HVCC_768P).unwrap()).expect("parses");
        assert_eq!((info.width, info.height), (1366, 768));
        assert_eq!(info.codec_string(), "hvc1.1.6.L120.90");
    }

    #[test]
    fn codec_string_follows_annex_e() {
        // The example of ISO/IEC 14496-15 Annex E and Apple's HLS authoring spec.
        let info = HevcInfo {
            profile_space: 0,
            high_tier: false,
            profile_idc: 1,
            compatibility_flags: 0x6000_0000,
            constraint_flags: [0xb0, 0, 0, 0, 0, 0],
            level_idc: 93,
            width: 1280,
            height: 720,
        };
        assert_eq!(info.codec_string(), "hvc1.1.6.L93.B0");
        let main10_high = HevcInfo {
            profile_idc: 2,
            high_tier: true,
            compatibility_flags: 0x2000_0000,
            constraint_flags: [0; 6],
            level_idc: 120,
            ..info
        };
        assert_eq!(main10_high.codec_string(), "hvc1.2.4.H120");
    }

    #[test]
    fn survives_truncation_and_garbage() {
        let hvcc = hex::decode(HVCC_240P).unwrap();
        for end in 0..hvcc.len() {
            assert_eq!(parse_hvcc(&hvcc[..end]), None, "cut at {end}");
        }
        assert_eq!(parse_hvcc(&[0xff; 64]), None);
        // An avcC is not an hvcC.
        let avcc = hex::decode(
            "01640028ffe1001b67640028acd940780227e5c044000003000400000300f03c60c65801000468ebe3cb",
        )
        .unwrap();
        assert_eq!(parse_hvcc(&avcc), None);
    }
}
