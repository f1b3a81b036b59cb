//! An MPEG-2 Transport Stream muxer (ISO/IEC 13818-1) for the HLS segments of every rendition
//! (written by [`ts_segments`](super::ts_segments)): one program, an H.264 or H.265 video stream
//! and/or an ADTS AAC audio stream.
//!
//! It replaces GStreamer's `mpegtsmux`, which allocates a `GstBuffer` for every 188-byte packet
//! and cost about a third of the server's CPU on passthrough streams (`perf`, 20 streams). Here packets are written
//! straight into the caller's `Vec<u8>`: nothing is allocated per packet, and no I/O is done.
//!
//! What is written:
//! - the PAT and PMT, one packet each, at the start of every segment ([`TsMuxer::write_tables`]);
//! - each video access unit as one PES (stream id `0xE0`, unbounded length, PTS and DTS), with an
//!   access unit delimiter in front when it has none (Apple's HLS validator and some TVs want
//!   one); its first packet carries the PCR, and the random access indicator on keyframes;
//! - each ADTS frame as one PES (stream id `0xC0`, PTS only), carrying the PCR when there is no
//!   video.
//!
//! The PCR runs 0.7 s behind the DTS (as ffmpeg's default `muxdelay`), so that no access unit is
//! due before it has arrived. The last packet of a PES is filled up with adaptation field
//! stuffing, as the standard requires (payload bytes cannot be padded).

/// Video codec of the video elementary stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VideoStream {
    H264,
    H265,
}

pub const PMT_PID: u16 = 0x1000;
pub const VIDEO_PID: u16 = 0x100;
pub const AUDIO_PID: u16 = 0x101;

const PAT_PID: u16 = 0;
const PACKET_SIZE: usize = 188;
/// Bytes after the 4-byte packet header.
const PACKET_BODY: usize = PACKET_SIZE - 4;
/// Timestamps are 33-bit counters of a 90 kHz clock.
const TIMESTAMP_MASK: u64 = (1 << 33) - 1;
/// How far the PCR runs behind the DTS: 0.7 s, in 90 kHz ticks.
const PCR_DELAY: u64 = 63_000;

const STREAM_TYPE_H264: u8 = 0x1B;
const STREAM_TYPE_H265: u8 = 0x24;
const STREAM_TYPE_ADTS_AAC: u8 = 0x0F;

const H264_AUD: [u8; 6] = [0, 0, 0, 1, 0x09, 0xF0];
const H265_AUD: [u8; 7] = [0, 0, 0, 1, 0x46, 0x01, 0x50];

/// Writes the packets of one program. Keeps the continuity counter of each PID, so one muxer is
/// used for the whole stream (segment after segment).
#[derive(Debug, Clone)]
pub struct TsMuxer {
    video: Option<VideoStream>,
    audio: bool,
    pat_counter: u8,
    pmt_counter: u8,
    video_counter: u8,
    audio_counter: u8,
}

impl TsMuxer {
    /// A muxer for one program with the given tracks (at least one).
    pub fn new(video: Option<VideoStream>, audio: bool) -> Self {
        debug_assert!(video.is_some() || audio, "a transport stream needs a track");
        Self {
            video,
            audio,
            pat_counter: 0,
            pmt_counter: 0,
            video_counter: 0,
            audio_counter: 0,
        }
    }

    /// The PID whose packets carry the PCR.
    fn pcr_pid(&self) -> u16 {
        if self.video.is_some() {
            VIDEO_PID
        } else {
            AUDIO_PID
        }
    }

    /// PAT then PMT, one packet each; the caller writes them at the start of every segment file.
    pub fn write_tables(&mut self, out: &mut Vec<u8>) {
        // PAT (table id 0), transport_stream_id 1: program 1 is described on PMT_PID.
        let pat = [0x00, 0x01, 0xE0 | (PMT_PID >> 8) as u8, PMT_PID as u8];
        write_section(out, PAT_PID, &mut self.pat_counter, 0x00, 1, &pat);

        // PMT (table id 2) of program 1: the PCR PID, no program descriptors, then the streams.
        let pcr_pid = self.pcr_pid();
        let mut pmt = [0u8; 4 + 2 * 5];
        pmt[..4].copy_from_slice(&[0xE0 | (pcr_pid >> 8) as u8, pcr_pid as u8, 0xF0, 0x00]);
        let mut len = 4;
        let video = self.video.map(|codec| match codec {
            VideoStream::H264 => (STREAM_TYPE_H264, VIDEO_PID),
            VideoStream::H265 => (STREAM_TYPE_H265, VIDEO_PID),
        });
        let audio = self.audio.then_some((STREAM_TYPE_ADTS_AAC, AUDIO_PID));
        for (stream_type, pid) in video.into_iter().chain(audio) {
            // Stream type, PID, no elementary stream descriptors.
            pmt[len..len + 5].copy_from_slice(&[
                stream_type,
                0xE0 | (pid >> 8) as u8,
                pid as u8,
                0xF0,
                0x00,
            ]);
            len += 5;
        }
        write_section(out, PMT_PID, &mut self.pmt_counter, 0x02, 1, &pmt[..len]);
    }

    /// One access unit of Annex B video (start codes; SPS/PPS(/VPS) already in-band before keyframes).
    /// `pts`/`dts` in 90 kHz units (may exceed 33 bits: wrap them modulo 2^33 when writing).
    pub fn write_video(
        &mut self,
        out: &mut Vec<u8>,
        pts: u64,
        dts: u64,
        keyframe: bool,
        access_unit: &[u8],
    ) {
        debug_assert!(
            self.video.is_some(),
            "video written to a muxer without video"
        );
        let delimiter: &[u8] = match (self.video, first_nal_header(access_unit)) {
            (Some(VideoStream::H264), Some(header)) if header & 0x1F == 9 => &[],
            (Some(VideoStream::H264), _) => &H264_AUD,
            (Some(VideoStream::H265), Some(header)) if (header >> 1) & 0x3F == 35 => &[],
            (Some(VideoStream::H265), _) => &H265_AUD,
            (None, _) => &[],
        };
        let mut header = [0u8; 19];
        let dts = (pts != dts).then_some(dts);
        // Unbounded length: an access unit may not fit in 16 bits, and the standard allows it
        // for video.
        let header_len = pes_header(&mut header, 0xE0, pts, dts, 0);
        let first_packet = FirstPacket {
            pcr: Some(pcr_base(dts.unwrap_or(pts))),
            random_access: keyframe,
        };
        write_pes(
            out,
            VIDEO_PID,
            &mut self.video_counter,
            first_packet,
            [&header[..header_len], delimiter, access_unit],
        );
    }

    /// One AAC frame with its ADTS header, `pts` in 90 kHz units.
    pub fn write_audio(&mut self, out: &mut Vec<u8>, pts: u64, adts_frame: &[u8]) {
        let mut header = [0u8; 19];
        // PES_packet_length counts the bytes after it: 3 header bytes, the PTS, the frame. An
        // ADTS frame is under 8 KiB; 0 (unbounded) otherwise.
        let length = u16::try_from(3 + 5 + adts_frame.len()).unwrap_or(0);
        let header_len = pes_header(&mut header, 0xC0, pts, None, length);
        // Without video, audio carries the clock and every frame is a random access point.
        let first_packet = if self.video.is_none() {
            FirstPacket {
                pcr: Some(pcr_base(pts)),
                random_access: true,
            }
        } else {
            FirstPacket::default()
        };
        write_pes(
            out,
            AUDIO_PID,
            &mut self.audio_counter,
            first_packet,
            [&header[..header_len], &[], adts_frame],
        );
    }
}

/// The header byte of the first NAL unit: the byte after the first start code.
fn first_nal_header(access_unit: &[u8]) -> Option<u8> {
    let start = access_unit.windows(3).position(|w| w == [0, 0, 1])?;
    access_unit.get(start + 3).copied()
}

/// The PCR base for a packet due at `dts`: [`PCR_DELAY`] earlier, not before 0.
fn pcr_base(dts: u64) -> u64 {
    dts.saturating_sub(PCR_DELAY) & TIMESTAMP_MASK
}

/// What the adaptation field of a PES's first packet carries.
#[derive(Debug, Clone, Copy, Default)]
struct FirstPacket {
    /// PCR base, in 90 kHz ticks.
    pcr: Option<u64>,
    random_access: bool,
}

/// Writes a PES header into `buf` and returns its length (14 or 19 bytes): start code, stream
/// id, `length`, data alignment, then the PTS and, when given, the DTS.
fn pes_header(buf: &mut [u8; 19], stream_id: u8, pts: u64, dts: Option<u64>, length: u16) -> usize {
    buf[..4].copy_from_slice(&[0, 0, 1, stream_id]);
    buf[4..6].copy_from_slice(&length.to_be_bytes());
    // '10' marker bits, data_alignment_indicator (the payload starts with an access unit).
    buf[6] = 0x84;
    match dts {
        Some(dts) => {
            buf[7] = 0xC0; // PTS_DTS_flags '11'
            buf[8] = 10;
            write_timestamp(&mut buf[9..14], 0b0011, pts);
            write_timestamp(&mut buf[14..19], 0b0001, dts);
            19
        }
        None => {
            buf[7] = 0x80; // PTS_DTS_flags '10'
            buf[8] = 5;
            write_timestamp(&mut buf[9..14], 0b0010, pts);
            14
        }
    }
}

/// A 33-bit timestamp (taken modulo 2^33) in the 5-byte PES layout: `prefix` in the top 4 bits,
/// then bits 32..30, 29..15 and 14..0, each group followed by a marker bit.
fn write_timestamp(buf: &mut [u8], prefix: u8, ts: u64) {
    let ts = ts & TIMESTAMP_MASK;
    buf[0] = (prefix << 4) | ((ts >> 29) as u8 & 0x0E) | 1;
    buf[1] = (ts >> 22) as u8;
    buf[2] = ((ts >> 14) as u8 & 0xFE) | 1;
    buf[3] = (ts >> 7) as u8;
    buf[4] = ((ts << 1) as u8 & 0xFE) | 1;
}

/// The 4-byte packet header; `counter` is the PID's continuity counter, advanced here (every
/// packet written carries payload).
fn write_packet_header(
    out: &mut Vec<u8>,
    pid: u16,
    counter: &mut u8,
    unit_start: bool,
    adaptation_field: bool,
) {
    let control = if adaptation_field { 0x30 } else { 0x10 };
    out.extend_from_slice(&[
        0x47,
        (u8::from(unit_start) << 6) | ((pid >> 8) as u8 & 0x1F),
        pid as u8,
        control | *counter,
    ]);
    *counter = (*counter + 1) & 0x0F;
}

/// A PCR with this base and extension 0: 33 bits of base, 6 reserved bits, 9 of extension.
fn write_pcr(out: &mut Vec<u8>, base: u64) {
    out.extend_from_slice(&[
        (base >> 25) as u8,
        (base >> 17) as u8,
        (base >> 9) as u8,
        (base >> 1) as u8,
        ((base as u8 & 1) << 7) | 0x7E,
        0x00,
    ]);
}

/// Packetizes one PES, given as consecutive parts (header, inserted delimiter, elementary
/// stream data), into packets of `pid`. The first has the unit start indicator and the
/// adaptation field of `first`; the last is stuffed to full size.
fn write_pes(
    out: &mut Vec<u8>,
    pid: u16,
    counter: &mut u8,
    first: FirstPacket,
    mut parts: [&[u8]; 3],
) {
    let mut remaining: usize = parts.iter().map(|part| part.len()).sum();
    // One packet more than the payload needs, for the first packet's adaptation field.
    out.reserve((remaining.div_ceil(PACKET_BODY) + 1) * PACKET_SIZE);
    let mut first = Some(first);
    while remaining > 0 {
        let unit_start = first.is_some();
        let FirstPacket { pcr, random_access } = first.take().unwrap_or_default();
        // Adaptation field bytes needed before stuffing: length, flags, PCR.
        let fields = match (pcr, random_access) {
            (Some(_), _) => 2 + 6,
            (None, true) => 2,
            (None, false) => 0,
        };
        let room = PACKET_BODY - fields;
        let taken = remaining.min(room);
        let adaptation_len = fields + (room - taken);
        write_packet_header(out, pid, counter, unit_start, adaptation_len > 0);
        if adaptation_len > 0 {
            // adaptation_field_length counts the bytes after itself; a 1-byte field is just
            // that length (0), with no flags byte.
            out.push((adaptation_len - 1) as u8);
            if adaptation_len > 1 {
                let flags = (u8::from(random_access) << 6) | (u8::from(pcr.is_some()) << 4);
                out.push(flags);
                if let Some(base) = pcr {
                    write_pcr(out, base);
                }
                let stuffing = adaptation_len - 2 - if pcr.is_some() { 6 } else { 0 };
                out.resize(out.len() + stuffing, 0xFF);
            }
        }
        let mut wanted = taken;
        for part in &mut parts {
            let (now, later) = part.split_at(wanted.min(part.len()));
            out.extend_from_slice(now);
            *part = later;
            wanted -= now.len();
        }
        remaining -= taken;
    }
}

/// One PSI section in one packet: pointer field 0, the section (syntax indicator set, version 0,
/// current, section 0 of 0) around `body`, its CRC, then 0xFF up to the packet's end.
fn write_section(
    out: &mut Vec<u8>,
    pid: u16,
    counter: &mut u8,
    table_id: u8,
    table_id_extension: u16,
    body: &[u8],
) {
    let start = out.len();
    write_packet_header(out, pid, counter, true, false);
    out.push(0); // pointer_field
    let section_start = out.len();
    // section_length counts the bytes after it: 5 of header, the body, 4 of CRC.
    let section_length = 5 + body.len() + 4;
    out.extend_from_slice(&[
        table_id,
        0xB0 | (section_length >> 8) as u8,
        section_length as u8,
    ]);
    out.extend_from_slice(&table_id_extension.to_be_bytes());
    out.extend_from_slice(&[0xC1, 0x00, 0x00]); // version 0, current; section 0, last 0
    out.extend_from_slice(body);
    let crc = crc32(&out[section_start..]);
    out.extend_from_slice(&crc.to_be_bytes());
    out.resize(start + PACKET_SIZE, 0xFF);
}

/// CRC-32/MPEG-2: polynomial 0x04C11DB7, initial value 0xFFFFFFFF, no reflection, no final
/// xor. Bit by bit: only the two table packets of a segment go through it.
fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &byte in data {
        crc ^= u32::from(byte) << 24;
        for _ in 0..8 {
            crc = if crc & 0x8000_0000 != 0 {
                (crc << 1) ^ 0x04C1_1DB7
            } else {
                crc << 1
            };
        }
    }
    crc
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// One packet read back.
    #[derive(Debug)]
    struct Packet<'a> {
        pid: u16,
        unit_start: bool,
        counter: u8,
        /// The adaptation field after its length byte (empty when its length is 0); `None`
        /// without one.
        adaptation: Option<&'a [u8]>,
        payload: &'a [u8],
    }

    /// Splits `ts` into packets, checking the fixed parts of each.
    fn packets(ts: &[u8]) -> Vec<Packet<'_>> {
        assert_eq!(ts.len() % PACKET_SIZE, 0, "not whole packets");
        ts.chunks(PACKET_SIZE)
            .map(|p| {
                assert_eq!(p[0], 0x47, "sync byte");
                assert_eq!(p[1] & 0x80, 0, "transport error indicator");
                assert_eq!(p[3] & 0xC0, 0, "scrambling");
                let control = (p[3] >> 4) & 3;
                assert!(control & 1 == 1, "every packet carries payload");
                let (adaptation, payload) = if control & 2 != 0 {
                    let len = p[4] as usize;
                    assert!(len <= 183, "adaptation field length {len}");
                    (Some(&p[5..5 + len]), &p[5 + len..])
                } else {
                    (None, &p[4..])
                };
                Packet {
                    pid: u16::from(p[1] & 0x1F) << 8 | u16::from(p[2]),
                    unit_start: p[1] & 0x40 != 0,
                    counter: p[3] & 0x0F,
                    adaptation,
                    payload,
                }
            })
            .collect()
    }

    /// The PCR base of an adaptation field, and its random access indicator; checks that
    /// whatever follows the flags is stuffing.
    fn adaptation(field: &[u8]) -> (Option<u64>, bool) {
        let Some((&flags, rest)) = field.split_first() else {
            return (None, false);
        };
        assert_eq!(
            flags & !0x50,
            0,
            "only PCR and random access flags: {flags:#x}"
        );
        let (pcr, stuffing) = if flags & 0x10 != 0 {
            let b = &rest[..6];
            let base = u64::from(b[0]) << 25
                | u64::from(b[1]) << 17
                | u64::from(b[2]) << 9
                | u64::from(b[3]) << 1
                | u64::from(b[4]) >> 7;
            assert_eq!(b[4] & 0x7F, 0x7E, "reserved bits, extension 0");
            assert_eq!(b[5], 0, "extension 0");
            (Some(base), &rest[6..])
        } else {
            (None, rest)
        };
        assert!(stuffing.iter().all(|&b| b == 0xFF), "stuffing bytes");
        (pcr, flags & 0x40 != 0)
    }

    /// One PES read back: its first packet's PCR and random access indicator, and its bytes.
    #[derive(Debug)]
    struct Pes {
        pcr: Option<u64>,
        random_access: bool,
        bytes: Vec<u8>,
    }

    /// The PESs of `pid`, checking that only their first packets have an adaptation field other
    /// than stuffing.
    fn pes_of(ts: &[u8], pid: u16) -> Vec<Pes> {
        let mut all: Vec<Pes> = Vec::new();
        for packet in packets(ts).into_iter().filter(|p| p.pid == pid) {
            let (pcr, random_access) = packet.adaptation.map(adaptation).unwrap_or_default();
            if packet.unit_start {
                all.push(Pes {
                    pcr,
                    random_access,
                    bytes: Vec::new(),
                });
            } else {
                assert_eq!((pcr, random_access), (None, false), "PCR or RAI mid-PES");
            }
            all.last_mut()
                .expect("a PES starts with the unit start indicator")
                .bytes
                .extend_from_slice(packet.payload);
        }
        all
    }

    fn read_timestamp(b: &[u8], prefix: u8) -> u64 {
        assert_eq!(b[0] >> 4, prefix, "timestamp prefix");
        assert_eq!(b[0] & 1, 1, "marker bit");
        assert_eq!(b[2] & 1, 1, "marker bit");
        assert_eq!(b[4] & 1, 1, "marker bit");
        u64::from(b[0] & 0x0E) << 29
            | u64::from(b[1]) << 22
            | u64::from(b[2] >> 1) << 15
            | u64::from(b[3]) << 7
            | u64::from(b[4] >> 1)
    }

    /// A PES's stream id, PTS, DTS (when written apart) and payload; checks its length field.
    fn parse_pes(pes: &[u8]) -> (u8, u64, Option<u64>, &[u8]) {
        assert_eq!(&pes[..3], &[0, 0, 1], "PES start code");
        let length = usize::from(u16::from_be_bytes([pes[4], pes[5]]));
        if pes[3] == 0xE0 {
            assert_eq!(length, 0, "unbounded video PES");
        } else {
            assert_eq!(length, pes.len() - 6, "PES_packet_length");
        }
        assert_eq!(pes[6], 0x84);
        let header_len = usize::from(pes[8]);
        let (pts, dts) = match pes[7] {
            0x80 => {
                assert_eq!(header_len, 5);
                (read_timestamp(&pes[9..14], 0b0010), None)
            }
            0xC0 => {
                assert_eq!(header_len, 10);
                let dts = read_timestamp(&pes[14..19], 0b0001);
                (read_timestamp(&pes[9..14], 0b0011), Some(dts))
            }
            flags => panic!("PTS_DTS flags {flags:#x}"),
        };
        (pes[3], pts, dts, &pes[9 + header_len..])
    }

    /// Some video and audio around packet boundaries, for the structure checks.
    fn mixed_stream() -> (Vec<u8>, usize, usize) {
        let mut muxer = TsMuxer::new(Some(VideoStream::H264), true);
        let mut out = Vec::new();
        let (mut video, mut audio) = (0, 0);
        for round in 0..3u64 {
            muxer.write_tables(&mut out);
            for size in [
                0usize, 1, 150, 151, 152, 153, 157, 158, 335, 336, 2000, 40_000,
            ] {
                let frame = vec![0x5A; size];
                let base = round * 100_000 + size as u64;
                muxer.write_video(&mut out, base + 3000, base, size % 2 == 0, &frame);
                muxer.write_audio(&mut out, base, &frame[..size.min(5000)]);
                video += 1;
                audio += 1;
            }
        }
        (out, video, audio)
    }

    #[test]
    fn packets_are_whole_and_counters_run_per_pid() {
        let (ts, video, audio) = mixed_stream();
        let mut last: HashMap<u16, u8> = HashMap::new();
        let mut starts: HashMap<u16, usize> = HashMap::new();
        for packet in packets(&ts) {
            if let Some(previous) = last.insert(packet.pid, packet.counter) {
                assert_eq!(
                    packet.counter,
                    (previous + 1) % 16,
                    "continuity counter of PID {:#x}",
                    packet.pid
                );
            } else {
                assert_eq!(packet.counter, 0, "first counter of PID {:#x}", packet.pid);
            }
            if packet.unit_start {
                *starts.entry(packet.pid).or_default() += 1;
                if packet.pid == VIDEO_PID || packet.pid == AUDIO_PID {
                    assert_eq!(&packet.payload[..3], &[0, 0, 1], "PES starts in its packet");
                } else {
                    assert_eq!(packet.payload[0], 0, "pointer field");
                }
            } else {
                // Continuation packets never start with what looks like a PES header here.
                assert!(packet.pid == VIDEO_PID || packet.pid == AUDIO_PID);
            }
        }
        assert_eq!(starts[&PAT_PID], 3);
        assert_eq!(starts[&PMT_PID], 3);
        assert_eq!(starts[&VIDEO_PID], video);
        assert_eq!(starts[&AUDIO_PID], audio);
        assert_eq!(last.len(), 4, "only the four PIDs");
    }

    /// A section from a table packet: checks pointer field, padding and CRC; returns the table
    /// id, table id extension and the body between the fixed header and the CRC.
    fn section(packet: &Packet<'_>) -> (u8, u16, Vec<u8>) {
        assert!(packet.unit_start);
        assert!(packet.adaptation.is_none());
        let payload = packet.payload;
        assert_eq!(payload[0], 0, "pointer field");
        let s = &payload[1..];
        assert_eq!(s[1] & 0xF0, 0xB0, "syntax indicator, reserved bits");
        let length = usize::from(u16::from_be_bytes([s[1] & 0x0F, s[2]]));
        let whole = &s[..3 + length];
        assert_eq!(crc32(whole), 0, "CRC residue");
        let written = u32::from_be_bytes(whole[whole.len() - 4..].try_into().unwrap());
        assert_eq!(crc32(&whole[..whole.len() - 4]), written);
        assert!(
            s[3 + length..].iter().all(|&b| b == 0xFF),
            "packet filled with 0xFF"
        );
        assert_eq!(
            &s[5..8],
            &[0xC1, 0, 0],
            "version 0, current, section 0 of 0"
        );
        (
            s[0],
            u16::from_be_bytes([s[3], s[4]]),
            whole[8..whole.len() - 4].to_vec(),
        )
    }

    /// The PCR PID and (stream type, PID) of each stream in a muxer's PMT; checks its PAT.
    fn tables(muxer: &mut TsMuxer) -> (u16, Vec<(u8, u16)>) {
        let mut out = Vec::new();
        muxer.write_tables(&mut out);
        let all = packets(&out);
        assert_eq!(all.len(), 2);
        assert_eq!(all[0].pid, PAT_PID);
        let (table_id, transport_stream, pat) = section(&all[0]);
        assert_eq!((table_id, transport_stream), (0, 1));
        assert_eq!(pat, [0x00, 0x01, 0xF0, 0x00], "program 1 on PID 0x1000");
        assert_eq!(all[1].pid, PMT_PID);
        let (table_id, program, pmt) = section(&all[1]);
        assert_eq!((table_id, program), (2, 1));
        assert_eq!(pmt[0] & 0xE0, 0xE0);
        let pcr_pid = u16::from_be_bytes([pmt[0] & 0x1F, pmt[1]]);
        assert_eq!(&pmt[2..4], &[0xF0, 0x00], "no program descriptors");
        let streams = pmt[4..]
            .chunks(5)
            .map(|s| {
                assert_eq!(s.len(), 5);
                assert_eq!(&s[3..], &[0xF0, 0x00], "no stream descriptors");
                (s[0], u16::from_be_bytes([s[1] & 0x1F, s[2]]))
            })
            .collect();
        (pcr_pid, streams)
    }

    #[test]
    fn tables_describe_the_tracks_with_valid_crcs() {
        let mut both = TsMuxer::new(Some(VideoStream::H264), true);
        assert_eq!(
            tables(&mut both),
            (VIDEO_PID, vec![(0x1B, VIDEO_PID), (0x0F, AUDIO_PID)])
        );
        let mut hevc = TsMuxer::new(Some(VideoStream::H265), false);
        assert_eq!(tables(&mut hevc), (VIDEO_PID, vec![(0x24, VIDEO_PID)]));
        let mut audio = TsMuxer::new(None, true);
        assert_eq!(tables(&mut audio), (AUDIO_PID, vec![(0x0F, AUDIO_PID)]));
        // Known value of CRC-32/MPEG-2.
        assert_eq!(crc32(b"123456789"), 0x0376_E6E7);
        // Counters run on over segments.
        let mut out = Vec::new();
        audio.write_tables(&mut out);
        assert!(packets(&out).iter().all(|p| p.counter == 1));
    }

    #[test]
    fn pes_headers_carry_timestamps_and_the_pcr() {
        let mut muxer = TsMuxer::new(Some(VideoStream::H265), true);
        let mut out = Vec::new();
        let au = [0, 0, 0, 1, 0x26, 0x01, 0xAF];
        muxer.write_video(&mut out, 900_000 + 6000, 900_000, true, &au);
        muxer.write_video(&mut out, 903_000, 903_000, false, &au);
        // Beyond 2^33: written modulo 2^33.
        let big = (1u64 << 33) + 12_345;
        muxer.write_video(&mut out, big + 3000, big, false, &au);
        // Early: the PCR cannot go below 0.
        muxer.write_video(&mut out, 10, 10, false, &au);
        muxer.write_audio(&mut out, 901_234, &[0xFF, 0xF1, 1, 2]);
        muxer.write_audio(&mut out, (1 << 34) + 7, &[0xFF, 0xF1, 1, 2]);

        let video = pes_of(&out, VIDEO_PID);
        let read: Vec<_> = video
            .iter()
            .map(|p| {
                let (id, pts, dts, _) = parse_pes(&p.bytes);
                assert_eq!(id, 0xE0);
                (pts, dts, p.pcr, p.random_access)
            })
            .collect();
        assert_eq!(
            read,
            [
                (906_000, Some(900_000), Some(837_000), true),
                (903_000, None, Some(840_000), false),
                (
                    15_345,
                    Some(12_345),
                    Some((big - 63_000) & TIMESTAMP_MASK),
                    false
                ),
                (10, None, Some(0), false),
            ]
        );
        let audio = pes_of(&out, AUDIO_PID);
        let read: Vec<_> = audio
            .iter()
            .map(|p| {
                let (id, pts, dts, payload) = parse_pes(&p.bytes);
                assert_eq!((id, payload), (0xC0, &[0xFF, 0xF1, 1, 2][..]));
                (pts, dts, p.pcr, p.random_access)
            })
            .collect();
        // With video, audio carries no PCR.
        assert_eq!(read, [(901_234, None, None, false), (7, None, None, false)]);

        let mut muxer = TsMuxer::new(None, true);
        let mut out = Vec::new();
        muxer.write_audio(&mut out, 901_234, &[0xFF, 0xF1]);
        let audio = pes_of(&out, AUDIO_PID);
        assert_eq!(audio[0].pcr, Some(901_234 - 63_000));
        assert!(audio[0].random_access);
    }

    #[test]
    fn payloads_come_back_whole_whatever_their_size() {
        let mut muxer = TsMuxer::new(Some(VideoStream::H264), true);
        let mut out = Vec::new();
        let mut sent_video = Vec::new();
        let mut sent_audio = Vec::new();
        // Sizes across the boundaries of one, two and three packets for both PIDs (video's
        // first packet has 8 bytes of adaptation field and 25 of header and delimiter).
        for size in 0..=600usize {
            let data: Vec<u8> = (0..size).map(|i| (i * 7 + size) as u8).collect();
            muxer.write_audio(&mut out, size as u64 * 1920, &data);
            sent_audio.push(data.clone());
            // Every other access unit already starts with a delimiter (3-byte start code).
            let mut au = Vec::new();
            if size % 2 == 1 {
                au.extend_from_slice(&[0, 0, 1, 0x09, 0x30]);
            }
            au.extend_from_slice(&[0, 0, 0, 1, 0x65]);
            au.extend_from_slice(&data);
            muxer.write_video(&mut out, size as u64 * 3000, size as u64 * 3000, true, &au);
            let mut expected = if size % 2 == 1 {
                Vec::new()
            } else {
                H264_AUD.to_vec()
            };
            expected.extend_from_slice(&au);
            sent_video.push(expected);
        }
        // `packets` and `adaptation` check each adaptation field's length and stuffing.
        let audio: Vec<Vec<u8>> = pes_of(&out, AUDIO_PID)
            .iter()
            .map(|p| parse_pes(&p.bytes).3.to_vec())
            .collect();
        assert_eq!(audio, sent_audio);
        let video: Vec<Vec<u8>> = pes_of(&out, VIDEO_PID)
            .iter()
            .map(|p| parse_pes(&p.bytes).3.to_vec())
            .collect();
        assert_eq!(video, sent_video);
        // The one- and two-byte adaptation fields appear (payloads of 183 and 182 bytes).
        let lengths: Vec<Option<usize>> = packets(&out)
            .iter()
            .map(|p| p.adaptation.map(<[u8]>::len))
            .collect();
        assert!(lengths.contains(&Some(0)));
        assert!(lengths.contains(&Some(1)));
    }

    #[test]
    fn h265_delimiters_are_added_only_when_missing() {
        let mut muxer = TsMuxer::new(Some(VideoStream::H265), false);
        let mut out = Vec::new();
        let with = [0, 0, 0, 1, 0x46, 0x01, 0x10, 0, 0, 1, 0x26, 0x01, 0xAA];
        let without = [0, 0, 1, 0x40, 0x01, 0x0C, 0, 0, 1, 0x26, 0x01, 0xAA];
        muxer.write_video(&mut out, 0, 0, true, &with);
        muxer.write_video(&mut out, 3000, 3000, false, &without);
        muxer.write_video(&mut out, 6000, 6000, false, &[]);
        let payloads: Vec<Vec<u8>> = pes_of(&out, VIDEO_PID)
            .iter()
            .map(|p| parse_pes(&p.bytes).3.to_vec())
            .collect();
        assert_eq!(payloads[0], with);
        assert_eq!(payloads[1], [&H265_AUD[..], &without].concat());
        assert_eq!(payloads[2], H265_AUD);
    }

    /// Runs a program; `None` when it is not installed.
    fn run(program: &str, args: &[&str]) -> Option<std::process::Output> {
        match std::process::Command::new(program).args(args).output() {
            Ok(output) => Some(output),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => panic!("{program}: {e}"),
        }
    }

    /// Positions of the start codes (3 or 4 bytes) of the NAL units for which `is_split` holds
    /// of the NAL header byte.
    fn nal_starts(stream: &[u8], is_split: impl Fn(u8) -> bool) -> Vec<usize> {
        let mut starts = Vec::new();
        let mut i = 0;
        while i + 3 < stream.len() {
            if stream[i..i + 3] == [0, 0, 1] {
                if is_split(stream[i + 3]) {
                    starts.push(if i > 0 && stream[i - 1] == 0 {
                        i - 1
                    } else {
                        i
                    });
                }
                i += 3;
            } else {
                i += 1;
            }
        }
        starts
    }

    #[test]
    fn ffprobe_reads_a_muxed_stream() {
        let dir = tempfile::tempdir().unwrap();
        let path = |name: &str| dir.path().join(name).to_str().unwrap().to_string();
        let (video_file, audio_file, ts_file) = (path("v.h264"), path("a.aac"), path("out.ts"));
        let video = "-v error -f lavfi -i testsrc2=size=320x240:rate=30 -t 2 -an -c:v libx264 \
                     -bf 0 -g 30 -x264-params aud=1 -bsf:v h264_mp4toannexb -f h264 -y";
        let audio = "-v error -f lavfi -i sine=sample_rate=48000 -t 2 -vn -c:a aac -f adts -y";
        for (args, file) in [(video, &video_file), (audio, &audio_file)] {
            let args: Vec<&str> = args.split_whitespace().chain([file.as_str()]).collect();
            let Some(output) = run("ffmpeg", &args) else {
                println!("ffmpeg is not installed: skipping the ffprobe check");
                return;
            };
            assert!(output.status.success(), "ffmpeg: {output:?}");
        }

        // Access units, each starting with its delimiter.
        let h264 = std::fs::read(&video_file).unwrap();
        let mut bounds = nal_starts(&h264, |header| header & 0x1F == 9);
        assert_eq!(bounds.first(), Some(&0));
        bounds.push(h264.len());
        let units: Vec<&[u8]> = bounds.windows(2).map(|w| &h264[w[0]..w[1]]).collect();
        assert_eq!(units.len(), 60);
        // ADTS frames, by their 13-bit frame length.
        let adts = std::fs::read(&audio_file).unwrap();
        let mut frames = Vec::new();
        let mut rest = &adts[..];
        while !rest.is_empty() {
            assert_eq!(rest[0], 0xFF, "ADTS sync");
            let len = (usize::from(rest[3] & 3) << 11)
                | (usize::from(rest[4]) << 3)
                | usize::from(rest[5] >> 5);
            frames.push(&rest[..len]);
            rest = &rest[len..];
        }
        assert!(
            (90..=100).contains(&frames.len()),
            "{} frames",
            frames.len()
        );

        let start = 3600 * 90_000;
        let mut muxer = TsMuxer::new(Some(VideoStream::H264), true);
        let mut ts = Vec::new();
        muxer.write_tables(&mut ts);
        let (mut v, mut a) = (0, 0);
        let mut second_segment = false;
        while v < units.len() || a < frames.len() {
            let video_pts = start + v as u64 * 3000;
            let audio_pts = start + a as u64 * 1920;
            if v < units.len() && (a == frames.len() || video_pts <= audio_pts) {
                let unit = units[v];
                let keyframe = !nal_starts(unit, |header| header & 0x1F == 5).is_empty();
                assert!(keyframe || v != 0, "the stream starts with a keyframe");
                // Odd units without their delimiter: the muxer puts one back.
                let unit = if v % 2 == 1 {
                    let next = nal_starts(&unit[4..], |_| true)[0] + 4;
                    &unit[next..]
                } else {
                    unit
                };
                muxer.write_video(&mut ts, video_pts, video_pts, keyframe, unit);
                v += 1;
            } else {
                muxer.write_audio(&mut ts, audio_pts, frames[a]);
                a += 1;
            }
            if v == 30 && !second_segment {
                // A second segment's tables, before the second keyframe.
                muxer.write_tables(&mut ts);
                second_segment = true;
            }
        }
        std::fs::write(&ts_file, &ts).unwrap();

        let Some(output) = run(
            "ffprobe",
            &[
                "-v",
                "error",
                "-show_entries",
                "stream=codec_name,nb_read_frames,start_time",
                "-count_frames",
                "-of",
                "json",
                &ts_file,
            ],
        ) else {
            println!("ffprobe is not installed: skipping the ffprobe check");
            return;
        };
        assert!(output.status.success(), "ffprobe: {output:?}");
        assert_eq!(
            String::from_utf8_lossy(&output.stderr),
            "",
            "ffprobe reported errors"
        );
        let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
        let mut streams: Vec<[&str; 3]> = json["streams"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| ["codec_name", "nb_read_frames", "start_time"].map(|k| s[k].as_str().unwrap()))
            .collect();
        streams.sort();
        // Both start at the first timestamps written, 3600 s.
        let audio_frames = frames.len().to_string();
        assert_eq!(
            streams,
            [
                ["aac", &audio_frames, "3600.000000"],
                ["h264", "60", "3600.000000"],
            ]
        );
    }
}
