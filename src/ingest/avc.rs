//! What an H.264 publisher's configuration says: profile, level, coded size and frame rate, read
//! from the SPS inside the `AVCDecoderConfigurationRecord`. Never panics on malformed input.

/// The facts of an SPS that livefront uses.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SpsInfo {
    pub profile_idc: u8,
    pub constraint_flags: u8,
    pub level_idc: u8,
    /// Display size after cropping.
    pub width: u32,
    pub height: u32,
    /// Frames per second from the VUI timing info, as a fraction, when present.
    pub fps: Option<(u32, u32)>,
}

impl SpsInfo {
    pub fn profile_name(&self) -> &'static str {
        match self.profile_idc {
            66 if self.constraint_flags & 0x40 != 0 => "constrained-baseline",
            66 => "baseline",
            77 => "main",
            88 => "extended",
            100 => "high",
            110 => "high-10",
            122 => "high-4:2:2",
            244 => "high-4:4:4",
            _ => "other",
        }
    }

    /// "3.1" from level_idc 31 (and "1b" for the special case).
    pub fn level_name(&self) -> String {
        match (
            self.level_idc,
            self.constraint_flags & 0x10 != 0 && self.profile_idc == 66,
        ) {
            (11, true) | (9, _) => "1b".into(),
            (l, _) => format!("{}.{}", l / 10, l % 10),
        }
    }
}

/// The first SPS of an avcC record.
pub fn sps_from_avcc(avcc: &[u8]) -> Option<&[u8]> {
    if avcc.len() < 8 || avcc[0] != 1 {
        return None;
    }
    let count = (avcc[5] & 0x1f) as usize;
    if count == 0 {
        return None;
    }
    let len = u16::from_be_bytes([avcc[6], avcc[7]]) as usize;
    avcc.get(8..8 + len)
}

/// Parses the SPS of an avcC record.
pub fn parse_avcc(avcc: &[u8]) -> Option<SpsInfo> {
    parse_sps(sps_from_avcc(avcc)?)
}

pub(crate) struct Bits {
    data: Vec<u8>,
    pos: usize,
}

impl Bits {
    /// RBSP from a NAL unit payload: drops emulation-prevention bytes.
    pub(crate) fn new(nal: &[u8]) -> Bits {
        let mut data = Vec::with_capacity(nal.len());
        let mut zeros = 0;
        for &b in nal {
            if zeros >= 2 && b == 3 {
                zeros = 0;
                continue;
            }
            zeros = if b == 0 { zeros + 1 } else { 0 };
            data.push(b);
        }
        Bits { data, pos: 0 }
    }

    pub(crate) fn bit(&mut self) -> Option<u32> {
        let byte = *self.data.get(self.pos / 8)?;
        let bit = (byte >> (7 - self.pos % 8)) & 1;
        self.pos += 1;
        Some(bit as u32)
    }

    pub(crate) fn bits(&mut self, n: u32) -> Option<u32> {
        (0..n).try_fold(0u32, |acc, _| Some((acc << 1) | self.bit()?))
    }

    pub(crate) fn ue(&mut self) -> Option<u32> {
        let mut zeros = 0;
        while self.bit()? == 0 {
            zeros += 1;
            if zeros > 31 {
                return None;
            }
        }
        Some(((1u64 << zeros) - 1 + self.bits(zeros)? as u64).min(u32::MAX as u64) as u32)
    }

    fn se(&mut self) -> Option<i64> {
        let k = self.ue()? as i64;
        Some(if k % 2 == 1 { (k + 1) / 2 } else { -(k / 2) })
    }
}

const HIGH_PROFILES: &[u8] = &[100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135];

fn skip_scaling_list(b: &mut Bits, size: usize) -> Option<()> {
    let (mut last, mut next) = (8i64, 8i64);
    for _ in 0..size {
        if next != 0 {
            next = (last + b.se()? + 256) % 256;
        }
        if next != 0 {
            last = next;
        }
    }
    Some(())
}

/// Parses an SPS NAL unit (with its one-byte header).
pub fn parse_sps(nal: &[u8]) -> Option<SpsInfo> {
    if nal.first()? & 0x1f != 7 {
        return None;
    }
    let mut b = Bits::new(&nal[1..]);
    let profile_idc = b.bits(8)? as u8;
    let constraint_flags = b.bits(8)? as u8;
    let level_idc = b.bits(8)? as u8;
    b.ue()?; // seq_parameter_set_id
    let mut chroma_format_idc = 1;
    if HIGH_PROFILES.contains(&profile_idc) {
        chroma_format_idc = b.ue()?;
        if chroma_format_idc == 3 {
            b.bit()?; // separate_colour_plane_flag
        }
        b.ue()?; // bit_depth_luma_minus8
        b.ue()?; // bit_depth_chroma_minus8
        b.bit()?; // qpprime_y_zero_transform_bypass_flag
        if b.bit()? == 1 {
            let lists = if chroma_format_idc == 3 { 12 } else { 8 };
            for i in 0..lists {
                if b.bit()? == 1 {
                    skip_scaling_list(&mut b, if i < 6 { 16 } else { 64 })?;
                }
            }
        }
    }
    b.ue()?; // log2_max_frame_num_minus4
    match b.ue()? {
        0 => {
            b.ue()?;
        }
        1 => {
            b.bit()?;
            b.se()?;
            b.se()?;
            let cycle = b.ue()?;
            if cycle > 255 {
                return None;
            }
            for _ in 0..cycle {
                b.se()?;
            }
        }
        _ => {}
    }
    b.ue()?; // max_num_ref_frames
    b.bit()?; // gaps_in_frame_num_value_allowed_flag
    let width_mbs = b.ue()? as u64 + 1;
    let height_map_units = b.ue()? as u64 + 1;
    let frame_mbs_only = b.bit()? as u64;
    if frame_mbs_only == 0 {
        b.bit()?; // mb_adaptive_frame_field_flag
    }
    b.bit()?; // direct_8x8_inference_flag
    let (mut crop_l, mut crop_r, mut crop_t, mut crop_b) = (0u64, 0u64, 0u64, 0u64);
    if b.bit()? == 1 {
        crop_l = b.ue()? as u64;
        crop_r = b.ue()? as u64;
        crop_t = b.ue()? as u64;
        crop_b = b.ue()? as u64;
    }
    let (sub_w, sub_h) = match chroma_format_idc {
        0 => (1, 1),
        1 => (2, 2),
        2 => (2, 1),
        _ => (1, 1),
    };
    let crop_x = sub_w;
    let crop_y = sub_h * (2 - frame_mbs_only);
    let width = (width_mbs * 16).checked_sub(crop_x * (crop_l + crop_r))?;
    let height =
        ((2 - frame_mbs_only) * height_map_units * 16).checked_sub(crop_y * (crop_t + crop_b))?;
    let fps = vui_fps(&mut b);
    Some(SpsInfo {
        profile_idc,
        constraint_flags,
        level_idc,
        width: u32::try_from(width).ok()?,
        height: u32::try_from(height).ok()?,
        fps,
    })
}

fn vui_fps(b: &mut Bits) -> Option<(u32, u32)> {
    if b.bit()? == 0 {
        return None;
    }
    if b.bit()? == 1 && b.bits(8)? == 255 {
        b.bits(32)?; // sar_width, sar_height
    }
    if b.bit()? == 1 {
        b.bit()?; // overscan_appropriate_flag
    }
    if b.bit()? == 1 {
        b.bits(4)?; // video_format, video_full_range_flag
        if b.bit()? == 1 {
            b.bits(24)?; // colour primaries, transfer, matrix
        }
    }
    if b.bit()? == 1 {
        b.ue()?;
        b.ue()?;
    }
    if b.bit()? == 0 {
        return None;
    }
    let num_units_in_tick = b.bits(32)?;
    let time_scale = b.bits(32)?;
    if num_units_in_tick == 0 || time_scale == 0 {
        return None;
    }
    let (num, den) = (time_scale as u64, 2 * num_units_in_tick as u64);
    let g = gcd(num, den);
    Some((
        (num / g).min(u32::MAX as u64) as u32,
        (den / g).min(u32::MAX as u64) as u32,
    ))
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 { a.max(1) } else { gcd(b, a % b) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sps(hex_str: &str) -> SpsInfo {
        parse_sps(&hex::decode(hex_str).unwrap()).expect("parses")
    }

    #[test]
    fn reads_size_profile_level_and_rate_from_x264_output() {
        // ffmpeg/libx264 output, High 720p30.
        let s = sps("6764001facd9405005bb0110000003001000000303c0f1831960");
        assert_eq!((s.width, s.height, s.fps), (1280, 720, Some((30, 1))));
        assert_eq!((s.profile_name(), s.level_name().as_str()), ("high", "3.1"));
        // Constrained baseline portrait 360x640 at 25 fps.
        let s = sps("6742c01ed9017051e5f011000003000100000300320f162e48");
        assert_eq!((s.width, s.height, s.fps), (360, 640, Some((25, 1))));
        assert_eq!(s.profile_name(), "constrained-baseline");
        // Main 1366x768 (cropped from 1376x768) at 29.97.
        let s = sps("674d4020eca02b030f37808800001f480007530078c18cb0");
        assert_eq!((s.width, s.height, s.fps), (1366, 768, Some((30000, 1001))));
        assert_eq!((s.profile_name(), s.level_name().as_str()), ("main", "3.2"));
    }

    #[test]
    fn finds_the_sps_in_an_avcc_record_and_survives_garbage() {
        let sps_bytes =
            hex::decode("6764001facd9405005bb0110000003001000000303c0f1831960").unwrap();
        let mut avcc = vec![1, 0x64, 0, 0x1f, 0xff, 0xe1];
        avcc.extend((sps_bytes.len() as u16).to_be_bytes());
        avcc.extend(&sps_bytes);
        avcc.extend([1, 0, 4, 0x68, 0xeb, 0xe3, 0xcb]);
        assert_eq!(
            parse_avcc(&avcc).map(|s| (s.width, s.height)),
            Some((1280, 720))
        );
        for end in 0..avcc.len() {
            let _ = parse_avcc(&avcc[..end]);
            let _ = parse_sps(&sps_bytes[..end.min(sps_bytes.len())]);
        }
        assert_eq!(parse_avcc(&[0; 3]), None);
        assert_eq!(
            parse_sps(&[0x68, 0xeb, 0xe3, 0xcb]),
            None,
            "a PPS is not an SPS"
        );
    }
}
