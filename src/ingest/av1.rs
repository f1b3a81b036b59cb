//! What an AV1 publisher's configuration says: profile, level, tier, bit depth and picture size,
//! read from the `AV1CodecConfigurationRecord` (av1C, AV1-ISOBMFF §2.3.3) and the sequence header
//! OBU inside it (AV1 spec §5.5). Also the OBU walk (low-overhead bitstream format, §5.2) that
//! Enhanced RTMP `av01` frames use. Never panics on malformed input.

/// `marker` (1) and `version` (1): the first byte of every av1C.
const AV1C_MARKER_VERSION: u8 = 0x81;
/// The fixed part of an av1C before its `configOBUs`.
const AV1C_HEADER_LEN: usize = 4;
/// An av1C larger than this is not a configuration record (a sequence header is tens of bytes;
/// metadata OBUs beside it stay small).
pub const AV1C_MAX_LEN: usize = 4096;
/// OBU types (AV1 spec §6.2.2).
pub const OBU_SEQUENCE_HEADER: u8 = 1;
pub const OBU_TEMPORAL_DELIMITER: u8 = 2;

/// The facts of an av1C (and its sequence header) that livefront uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Av1Info {
    /// `seq_profile`: 0 Main, 1 High, 2 Professional.
    pub profile: u8,
    /// `seq_level_idx[0]`: level X.Y is `(X - 2) * 4 + Y`; 31 means no level constraint.
    pub level_idx: u8,
    pub high_tier: bool,
    /// 8, 10 or 12.
    pub bit_depth: u8,
    pub monochrome: bool,
    /// `(subsampling_x, subsampling_y)`: (1, 1) is 4:2:0.
    pub subsampling: (u8, u8),
    /// `max_frame_width`/`max_frame_height`: the size of every frame of a live encoder.
    pub width: u32,
    pub height: u32,
    /// Frames per second, when the sequence header's timing info says (a constant rate).
    pub fps: Option<(u32, u32)>,
}

impl Av1Info {
    pub fn profile_name(&self) -> &'static str {
        match self.profile {
            0 => "main",
            1 => "high",
            2 => "professional",
            _ => "other",
        }
    }

    /// "3.1" from `seq_level_idx` 5; "max" for 31 (no constraint).
    pub fn level_name(&self) -> String {
        match self.level_idx {
            31 => "max".to_string(),
            l => format!("{}.{}", 2 + l / 4, l % 4),
        }
    }

    /// The tier as GStreamer caps name it.
    pub fn tier_name(&self) -> &'static str {
        if self.high_tier { "high" } else { "main" }
    }

    /// The codec string of AV1-ISOBMFF Annex A (RFC 6381 `CODECS`): `av01.P.LLT.DD`, profile,
    /// two-digit level index, tier `M`/`H`, two-digit bit depth. The optional fields after it
    /// (chroma, colour) are left out, which means their defaults; players need only these.
    pub fn codec_string(&self) -> String {
        let tier = if self.high_tier { 'H' } else { 'M' };
        format!(
            "av01.{}.{:02}{tier}.{:02}",
            self.profile, self.level_idx, self.bit_depth
        )
    }
}

/// Parses an av1C: its marker and version, and the first sequence header OBU among its
/// `configOBUs`, which gives the size and which must agree with the record's profile, level,
/// tier and bit depth. `None` for anything else (no sequence header, a record that contradicts
/// it, more than [`AV1C_MAX_LEN`] bytes): a decoder could not be set up from it.
pub fn parse_av1c(av1c: &[u8]) -> Option<Av1Info> {
    if av1c.len() > AV1C_MAX_LEN {
        return None;
    }
    let header = av1c.get(..AV1C_HEADER_LEN)?;
    if header[0] != AV1C_MARKER_VERSION {
        return None;
    }
    let sequence_header = obus(&av1c[AV1C_HEADER_LEN..])
        .map_while(Result::ok)
        .find(|o| o.kind == OBU_SEQUENCE_HEADER)?;
    let info = parse_sequence_header(sequence_header.payload)?;
    let record = (
        header[1] >> 5,
        header[1] & 0x1f,
        header[2] & 0x80 != 0,
        match (header[2] & 0x40 != 0, header[2] & 0x20 != 0) {
            (false, _) => 8,
            (true, false) => 10,
            (true, true) => 12,
        },
    );
    (record == (info.profile, info.level_idx, info.high_tier, info.bit_depth)).then_some(info)
}

/// One OBU of a low-overhead bitstream: its type and payload, and its whole bytes (header too).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Obu<'a> {
    pub kind: u8,
    pub payload: &'a [u8],
    pub bytes: &'a [u8],
}

/// Why a run of OBUs could not be walked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MalformedObu;

/// The OBUs of `data` in order (AV1 spec §5.3: header, optional extension byte, `leb128` size;
/// an OBU without a size field runs to the end). Stops with an error at a forbidden bit or a
/// size past the end.
pub fn obus(data: &[u8]) -> impl Iterator<Item = Result<Obu<'_>, MalformedObu>> {
    let mut rest = data;
    std::iter::from_fn(move || {
        let (&header, tail) = rest.split_first()?;
        let parsed = (|| {
            if header & 0x80 != 0 {
                return None;
            }
            let kind = (header >> 3) & 0x0f;
            let extension = usize::from(header & 0x04 != 0);
            let has_size = header & 0x02 != 0;
            let tail = tail.get(extension..)?;
            let (size, tail) = if has_size {
                let (size, used) = leb128(tail)?;
                (usize::try_from(size).ok()?, &tail[used..])
            } else {
                (tail.len(), tail)
            };
            let payload = tail.get(..size)?;
            let whole = rest.len() - tail.len() + size;
            Some((
                Obu {
                    kind,
                    payload,
                    bytes: &rest[..whole],
                },
                &tail[size..],
            ))
        })();
        match parsed {
            Some((obu, next)) => {
                rest = next;
                Some(Ok(obu))
            }
            None => {
                rest = &[];
                Some(Err(MalformedObu))
            }
        }
    })
}

/// `leb128()` (AV1 spec §4.10.5): the value and the bytes it took (at most eight).
fn leb128(data: &[u8]) -> Option<(u64, usize)> {
    let mut value = 0u64;
    for (i, &b) in data.iter().take(8).enumerate() {
        value |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Some((value, i + 1));
        }
    }
    None
}

/// A plain MSB-first bit reader (AV1 has no emulation prevention).
struct Bits<'a> {
    data: &'a [u8],
    pos: usize,
}

impl Bits<'_> {
    /// `f(n)` for n ≤ 32.
    fn f(&mut self, n: u32) -> Option<u32> {
        (0..n).try_fold(0u32, |acc, _| {
            let byte = *self.data.get(self.pos / 8)?;
            let bit = (byte >> (7 - self.pos % 8)) & 1;
            self.pos += 1;
            Some((acc << 1) | u32::from(bit))
        })
    }

    fn flag(&mut self) -> Option<bool> {
        Some(self.f(1)? == 1)
    }

    /// `uvlc()` (§4.10.3).
    fn uvlc(&mut self) -> Option<u32> {
        let mut zeros = 0;
        while !self.flag()? {
            zeros += 1;
            if zeros >= 32 {
                return Some(u32::MAX);
            }
        }
        Some(self.f(zeros)?.saturating_add((1u32 << zeros) - 1))
    }
}

/// The parts of `sequence_header_obu()` (§5.5.1) up to `color_config()`'s bit depth and
/// subsampling.
fn parse_sequence_header(payload: &[u8]) -> Option<Av1Info> {
    let mut b = Bits {
        data: payload,
        pos: 0,
    };
    let profile = b.f(3)? as u8;
    if profile > 2 {
        return None;
    }
    b.f(1)?; // still_picture
    let reduced = b.flag()?;
    let mut fps = None;
    let (level_idx, high_tier);
    let mut decoder_model = false;
    let mut buffer_delay_bits = 0;
    if reduced {
        level_idx = b.f(5)? as u8;
        high_tier = false;
    } else {
        if b.flag()? {
            // timing_info()
            let tick = b.f(32)?;
            let scale = b.f(32)?;
            if b.flag()? {
                let ticks = b.uvlc()?.checked_add(1)?;
                let per_frame = tick.checked_mul(ticks)?;
                fps = (per_frame > 0 && scale > 0).then_some((scale, per_frame));
            }
            decoder_model = b.flag()?;
            if decoder_model {
                buffer_delay_bits = b.f(5)? + 1;
                b.f(32)?; // num_units_in_decoding_tick
                b.f(5)?; // buffer_removal_time_length_minus_1
                b.f(5)?; // frame_presentation_time_length_minus_1
            }
        }
        let initial_display_delay = b.flag()?;
        let points = b.f(5)? + 1;
        let mut first = None;
        for _ in 0..points {
            b.f(12)?; // operating_point_idc
            let level = b.f(5)? as u8;
            let tier = level > 7 && b.flag()?;
            if decoder_model && b.flag()? {
                b.f(buffer_delay_bits)?; // decoder_buffer_delay
                b.f(buffer_delay_bits)?; // encoder_buffer_delay
                b.f(1)?; // low_delay_mode_flag
            }
            if initial_display_delay && b.flag()? {
                b.f(4)?;
            }
            first = first.or(Some((level, tier)));
        }
        (level_idx, high_tier) = first?;
    }
    let width_bits = b.f(4)? + 1;
    let height_bits = b.f(4)? + 1;
    let width = b.f(width_bits)?.checked_add(1)?;
    let height = b.f(height_bits)?.checked_add(1)?;
    if !reduced && b.flag()? {
        b.f(4)?; // delta_frame_id_length_minus_2
        b.f(3)?; // additional_frame_id_length_minus_1
    }
    b.f(3)?; // use_128x128_superblock, enable_filter_intra, enable_intra_edge_filter
    if !reduced {
        b.f(4)?; // interintra, masked compound, warped motion, dual filter
        let order_hint = b.flag()?;
        if order_hint {
            b.f(2)?; // enable_jnt_comp, enable_ref_frame_mvs
        }
        let force_screen_content_tools = if b.flag()? { 2 } else { b.f(1)? };
        if force_screen_content_tools > 0 && !b.flag()? {
            b.f(1)?; // seq_force_integer_mv
        }
        if order_hint {
            b.f(3)?; // order_hint_bits_minus_1
        }
    }
    b.f(3)?; // enable_superres, enable_cdef, enable_restoration
    // color_config()
    let high_bitdepth = b.flag()?;
    let bit_depth = match (profile, high_bitdepth) {
        (2, true) => {
            if b.flag()? {
                12
            } else {
                10
            }
        }
        (_, true) => 10,
        (_, false) => 8,
    };
    let monochrome = profile != 1 && b.flag()?;
    let (mut cp, mut tc, mut mc) = (2, 2, 2);
    if b.flag()? {
        cp = b.f(8)?;
        tc = b.f(8)?;
        mc = b.f(8)?;
    }
    let subsampling = if monochrome {
        (1, 1)
    } else if cp == 1 && tc == 13 && mc == 0 {
        // sRGB: 4:4:4
        (0, 0)
    } else {
        b.f(1)?; // color_range
        match profile {
            0 => (1, 1),
            1 => (0, 0),
            _ if bit_depth == 12 => {
                let x = b.f(1)? as u8;
                let y = if x == 1 { b.f(1)? as u8 } else { 0 };
                (x, y)
            }
            _ => (1, 0),
        }
    };
    Some(Av1Info {
        profile,
        level_idx,
        high_tier,
        bit_depth,
        monochrome,
        subsampling,
        width,
        height,
        fps,
    })
}

/// An av1C for `sequence_header` (a whole sequence header OBU, as an encoder writes it at a
/// keyframe): what a publisher sends as its Enhanced RTMP SequenceStart. `None` when the OBU is
/// not a sequence header livefront can read.
pub fn config_record(sequence_header: &[u8]) -> Option<Vec<u8>> {
    let obu = obus(sequence_header).next()?.ok()?;
    if obu.kind != OBU_SEQUENCE_HEADER {
        return None;
    }
    let info = parse_sequence_header(obu.payload)?;
    let twelve = info.bit_depth == 12;
    let mut record = vec![
        AV1C_MARKER_VERSION,
        info.profile << 5 | info.level_idx,
        u8::from(info.high_tier) << 7
            | u8::from(info.bit_depth > 8) << 6
            | u8::from(twelve) << 5
            | u8::from(info.monochrome) << 4
            | info.subsampling.0 << 3
            | info.subsampling.1 << 2,
        0,
    ];
    record.extend_from_slice(obu.bytes);
    Some(record)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Sequence header OBUs from GStreamer's av1enc (libaom, realtime usage): 320x180 and
    /// 1280x720 4:2:0 8 bit (profile Main), 1920x1080 4:4:4 (profile High).
    const SEQ_180P: &str = "0a0c000000043cfecf81b5f20080";
    const SEQ_720P: &str = "0a0c0000002d4cffb3f81b5f2008";
    const SEQ_1080P_444: &str = "0a0c20000042abbfc37e0ed7c810";

    fn info(seq: &str) -> Av1Info {
        let record = config_record(&hex::decode(seq).unwrap()).expect("a sequence header");
        parse_av1c(&record).expect("the record parses")
    }

    #[test]
    fn reads_profile_level_depth_and_size_from_libaom_output() {
        let i = info(SEQ_180P);
        assert_eq!((i.width, i.height, i.bit_depth), (320, 180, 8));
        assert_eq!((i.profile_name(), i.level_name().as_str()), ("main", "2.0"));
        assert_eq!(i.codec_string(), "av01.0.00M.08");
        assert_eq!(i.subsampling, (1, 1));
        let i = info(SEQ_720P);
        assert_eq!((i.width, i.height), (1280, 720));
        assert_eq!(i.level_name(), "3.1");
        assert_eq!(i.codec_string(), "av01.0.05M.08");
        let i = info(SEQ_1080P_444);
        assert_eq!((i.width, i.height, i.subsampling), (1920, 1080, (0, 0)));
        assert_eq!(i.codec_string(), "av01.1.08M.08");
        assert_eq!(i.profile_name(), "high");
    }

    #[test]
    fn the_record_is_av1c_with_the_sequence_header_as_config_obus() {
        let seq = hex::decode(SEQ_180P).unwrap();
        let record = config_record(&seq).unwrap();
        // marker|version, profile 0 level 0, 4:2:0 (subsampling x and y), no presentation delay.
        assert_eq!(record[..4], [0x81, 0x00, 0x0c, 0x00]);
        assert_eq!(record[4..], seq[..]);
    }

    #[test]
    fn codec_string_follows_av1_isobmff_annex_a() {
        // The spec's example `av01.0.04M.10.0.112.09.16.09.0` without its default-valued tail.
        let example = Av1Info {
            profile: 0,
            level_idx: 4,
            high_tier: false,
            bit_depth: 10,
            monochrome: false,
            subsampling: (1, 1),
            width: 1280,
            height: 720,
            fps: None,
        };
        assert_eq!(example.codec_string(), "av01.0.04M.10");
        assert_eq!(example.level_name(), "3.0");
        let high = Av1Info {
            level_idx: 13,
            high_tier: true,
            bit_depth: 8,
            ..example
        };
        assert_eq!(high.codec_string(), "av01.0.13H.08");
        assert_eq!(high.level_name(), "5.1");
    }

    #[test]
    fn a_record_that_contradicts_its_sequence_header_is_refused() {
        let mut record = config_record(&hex::decode(SEQ_720P).unwrap()).unwrap();
        record[1] = 0x08; // level 3.0 where the sequence header says 3.1
        assert_eq!(parse_av1c(&record), None);
    }

    #[test]
    fn survives_truncation_and_garbage() {
        let record = config_record(&hex::decode(SEQ_720P).unwrap()).unwrap();
        for end in 0..record.len() {
            assert_eq!(parse_av1c(&record[..end]), None, "cut at {end}");
        }
        assert_eq!(parse_av1c(&[0xff; 64]), None);
        assert_eq!(parse_av1c(&[0x81, 0, 0x0c, 0]), None, "no sequence header");
        let mut huge = record.clone();
        huge.resize(AV1C_MAX_LEN + 1, 0);
        assert_eq!(parse_av1c(&huge), None);
        // An hvcC is not an av1C.
        assert_eq!(parse_av1c(&[0x01, 0x01, 0x60, 0, 0, 0]), None);
    }

    #[test]
    fn obus_walks_a_temporal_unit_and_stops_at_garbage() {
        // Temporal delimiter, then the sequence header, then a frame OBU without a size field.
        let mut tu = vec![0x12, 0x00];
        tu.extend(hex::decode(SEQ_180P).unwrap());
        tu.extend([0x30, 0xaa, 0xbb]);
        let kinds: Vec<u8> = obus(&tu).map(|o| o.unwrap().kind).collect();
        assert_eq!(kinds, [OBU_TEMPORAL_DELIMITER, OBU_SEQUENCE_HEADER, 6]);
        let last = obus(&tu).last().unwrap().unwrap();
        assert_eq!(
            (last.payload, last.bytes),
            (&[0xaa, 0xbb][..], &[0x30, 0xaa, 0xbb][..])
        );
        // A size past the end, and the forbidden bit.
        assert_eq!(obus(&[0x0a, 0x05, 1]).next(), Some(Err(MalformedObu)));
        assert_eq!(obus(&[0x80]).next(), Some(Err(MalformedObu)));
        assert_eq!(obus(&[0x0a, 0xff, 0xff]).count(), 1);
    }
}
