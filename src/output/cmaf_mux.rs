//! A fragmented MP4 writer (CMAF: ISO/IEC 14496-12, with the sample entries of 14496-15 for
//! H.264/H.265 and 14496-14 for AAC) for the parts of a low-latency HLS rendition.
//!
//! It replaces GStreamer's `isofmp4mux` for H.264/H.265 video and AAC audio: that muxer is an
//! aggregator, which holds a chunk back until every one of its inputs has data past the chunk's
//! end, so a part could only be listed some time after its last video frame arrived. Here the
//! caller cuts a part as soon as its video is complete and has it written at once. Nothing is
//! read from GStreamer and no I/O is done: boxes are appended to the caller's `Vec<u8>`.
//!
//! What is written:
//! - [`init_segment`]: `ftyp` (CMAF brands), then `moov`: `mvhd`, a `trak` per track (its
//!   sample description in `stsd`, empty sample tables, as fragmented files have), and `mvex`
//!   with a `trex` per track;
//! - [`fragment`]: a `moof` (`mfhd` with the sequence number, a `traf` per track with samples:
//!   `tfhd` with default-base-is-moof, `tfdt` with the decode time, a `trun` giving every sample's
//!   duration, size, flags and composition offset), then one `mdat` with the samples' bytes.
//!
//! Sizes and counts that do not fit their fields saturate instead of panicking (parts are small:
//! none is anywhere near); the `mdat` switches to a 64-bit size when its data needs it.

/// A track's sample description (its `stsd` entry).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SampleEntry {
    /// H.264: `avc1` with `avcC` = `config` (the AVCDecoderConfigurationRecord, as GStreamer's
    /// caps `codec_data` with stream-format=avc).
    Avc {
        config: Vec<u8>,
        width: u16,
        height: u16,
    },
    /// H.265: `hvc1` with `hvcC` = `config` (HEVCDecoderConfigurationRecord, caps `codec_data`
    /// with stream-format=hvc1).
    Hevc {
        config: Vec<u8>,
        width: u16,
        height: u16,
    },
    /// AAC: `mp4a` with `esds` carrying `config` (the AudioSpecificConfig, caps `codec_data`
    /// with stream-format=raw).
    Aac {
        config: Vec<u8>,
        rate: u32,
        channels: u16,
    },
}

impl SampleEntry {
    /// Ticks per second of the track: 90 000 for video, the sample rate for audio.
    pub fn timescale(&self) -> u32 {
        match self {
            SampleEntry::Avc { .. } | SampleEntry::Hevc { .. } => VIDEO_TIMESCALE,
            SampleEntry::Aac { rate, .. } => *rate,
        }
    }
}

/// One sample of a run, in decode order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    /// In the track's timescale.
    pub duration: u32,
    pub size: u32,
    /// A sync sample (keyframe); every audio sample is one.
    pub sync: bool,
    /// Presentation minus decode time, in the track's timescale (negative allowed: trun
    /// version 1).
    pub composition_offset: i32,
}

/// A track's samples in one fragment.
#[derive(Debug, Clone, Copy)]
pub struct Run<'a> {
    /// 1-based: the track's position in the `init_segment` list + 1.
    pub track: u32,
    /// Decode time of the first sample, in the track's timescale (`tfdt`, version 1).
    pub base_decode_time: u64,
    pub samples: &'a [Sample],
    /// The samples' bytes, concatenated in order (video: 4-byte length-prefixed NAL units, as
    /// GStreamer's stream-format=avc/hvc1 gives; audio: raw AAC frames).
    pub data: &'a [u8],
}

const VIDEO_TIMESCALE: u32 = 90_000;
/// Timescale of the movie header (no durations are given in it: they are all 0).
const MOVIE_TIMESCALE: u32 = 1000;
/// 16.16 fixed point 1.0 (rate), then 8.8 fixed point 1.0 (volume).
const RATE_ONE: u32 = 0x0001_0000;
const VOLUME_ONE: u16 = 0x0100;
/// The identity transformation (a b u / c d v / x y w, with u v w in 2.30 fixed point).
const UNITY_MATRIX: [u32; 9] = [0x0001_0000, 0, 0, 0, 0x0001_0000, 0, 0, 0, 0x4000_0000];
/// `und` as three 5-bit letters (each minus 0x60), ISO 639-2/T.
const LANGUAGE_UND: u16 =
    (((b'u' - 0x60) as u16) << 10) | (((b'n' - 0x60) as u16) << 5) | ((b'd' - 0x60) as u16);
/// 72 dpi, 16.16 fixed point.
const DPI_72: u32 = 0x0048_0000;

/// `tkhd`: track_enabled | track_in_movie.
const TKHD_ENABLED_IN_MOVIE: u32 = 0x3;
/// `url `: the media data is in this file.
const URL_SELF_CONTAINED: u32 = 0x1;
/// `tfhd`: data offsets are counted from the start of the `moof`.
const TFHD_DEFAULT_BASE_IS_MOOF: u32 = 0x02_0000;
/// `trun`: data-offset-present | sample-duration-present | sample-size-present |
/// sample-flags-present | sample-composition-time-offsets-present.
const TRUN_FLAGS: u32 = 0x0001 | 0x0100 | 0x0200 | 0x0400 | 0x0800;
/// Sample flags of a sync sample: sample_depends_on = 2 (does not depend on others).
const SYNC_SAMPLE_FLAGS: u32 = 0x0200_0000;
/// Sample flags of any other: sample_depends_on = 1 (depends on others), and
/// sample_is_non_sync_sample.
const NON_SYNC_SAMPLE_FLAGS: u32 = 0x0100_0000 | 0x0001_0000;

/// MPEG-4 descriptor tags (ISO/IEC 14496-1).
const ES_DESCRIPTOR: u8 = 0x03;
const DECODER_CONFIG_DESCRIPTOR: u8 = 0x04;
const DECODER_SPECIFIC_INFO: u8 = 0x05;
const SL_CONFIG_DESCRIPTOR: u8 = 0x06;
/// objectTypeIndication: Audio ISO/IEC 14496-3 (AAC).
const OBJECT_TYPE_AAC: u8 = 0x40;
/// streamType 5 (audio) << 2, upStream 0, reserved 1.
const STREAM_TYPE_AUDIO: u8 = (0x05 << 2) | 1;
/// SLConfigDescriptor predefined = 2: reserved for use in MP4 files.
const SL_PREDEFINED_MP4: u8 = 2;
/// The largest size a descriptor's 4-byte size field can express (7 bits a byte).
const MAX_DESCRIPTOR_SIZE: usize = (1 << 28) - 1;

/// Appends the init segment: `ftyp` then `moov` (mvhd, one trak per entry, mvex with a trex per
/// track).
pub fn init_segment(out: &mut Vec<u8>, tracks: &[SampleEntry]) {
    write_box(out, b"ftyp", |out| {
        out.extend_from_slice(b"iso6");
        put_u32(out, 0);
        for brand in [b"iso6", b"cmfc", b"mp41"] {
            out.extend_from_slice(brand);
        }
    });
    write_box(out, b"moov", |out| {
        full_box(out, b"mvhd", 0, 0, |out| {
            put_u32(out, 0); // creation_time
            put_u32(out, 0); // modification_time
            put_u32(out, MOVIE_TIMESCALE);
            put_u32(out, 0); // duration
            put_u32(out, RATE_ONE);
            put_u16(out, VOLUME_ONE);
            out.extend_from_slice(&[0; 10]); // reserved
            put_matrix(out);
            out.extend_from_slice(&[0; 24]); // pre_defined
            put_u32(out, track_id(tracks.len()));
        });
        for (index, entry) in tracks.iter().enumerate() {
            write_trak(out, track_id(index), entry);
        }
        write_box(out, b"mvex", |out| {
            for index in 0..tracks.len() {
                full_box(out, b"trex", 0, 0, |out| {
                    put_u32(out, track_id(index));
                    put_u32(out, 1); // default_sample_description_index
                    put_u32(out, 0); // default_sample_duration
                    put_u32(out, 0); // default_sample_size
                    put_u32(out, 0); // default_sample_flags
                });
            }
        });
    });
}

/// Appends one fragment: `moof` (mfhd with `sequence`, a traf per run: tfhd with
/// default-base-is-moof, tfdt v1, trun v1 with data offset and per-sample duration, size, flags
/// and composition offset) then one `mdat` with the runs' data in order. Runs with no samples are
/// left out (with their data); with none left, the `moof` holds only the `mfhd` and the `mdat` is
/// empty. `sequence` starts at 1 and the caller increments it.
///
/// Each run's `data` is written as given: its length should be the sum of its samples' sizes.
pub fn fragment(out: &mut Vec<u8>, sequence: u32, runs: &[Run]) {
    let runs: Vec<&Run> = runs.iter().filter(|run| !run.samples.is_empty()).collect();
    let moof_start = out.len();
    // Where each trun's data offset goes, patched once the moof's size is known.
    let mut data_offsets = Vec::with_capacity(runs.len());
    write_box(out, b"moof", |out| {
        full_box(out, b"mfhd", 0, 0, |out| put_u32(out, sequence));
        for run in &runs {
            write_box(out, b"traf", |out| {
                full_box(out, b"tfhd", 0, TFHD_DEFAULT_BASE_IS_MOOF, |out| {
                    put_u32(out, run.track);
                });
                full_box(out, b"tfdt", 1, 0, |out| put_u64(out, run.base_decode_time));
                full_box(out, b"trun", 1, TRUN_FLAGS, |out| {
                    let count = u32::try_from(run.samples.len()).unwrap_or(u32::MAX);
                    put_u32(out, count);
                    data_offsets.push(out.len());
                    put_u32(out, 0);
                    for sample in run.samples.iter().take(count as usize) {
                        put_u32(out, sample.duration);
                        put_u32(out, sample.size);
                        put_u32(out, sample_flags(sample));
                        out.extend_from_slice(&sample.composition_offset.to_be_bytes());
                    }
                });
            });
        }
    });

    let data_len = runs
        .iter()
        .fold(0u64, |sum, run| sum.saturating_add(len_u64(run.data)));
    let moof_len = len_u64(&out[moof_start..]);
    let mut offset = moof_len.saturating_add(mdat_header_len(data_len));
    for (&at, run) in data_offsets.iter().zip(&runs) {
        let value = i32::try_from(offset).unwrap_or(i32::MAX);
        patch(out, at, &value.to_be_bytes());
        offset = offset.saturating_add(len_u64(run.data));
    }

    write_mdat_header(out, data_len);
    for run in &runs {
        out.extend_from_slice(run.data);
    }
}

/// A sample's flags in a `trun`.
fn sample_flags(sample: &Sample) -> u32 {
    if sample.sync {
        SYNC_SAMPLE_FLAGS
    } else {
        NON_SYNC_SAMPLE_FLAGS
    }
}

/// One `trak`: its header, and its media with the sample description and empty sample tables.
fn write_trak(out: &mut Vec<u8>, id: u32, entry: &SampleEntry) {
    let video = !matches!(entry, SampleEntry::Aac { .. });
    let (width, height) = match entry {
        SampleEntry::Avc { width, height, .. } | SampleEntry::Hevc { width, height, .. } => {
            (*width, *height)
        }
        SampleEntry::Aac { .. } => (0, 0),
    };
    write_box(out, b"trak", |out| {
        full_box(out, b"tkhd", 0, TKHD_ENABLED_IN_MOVIE, |out| {
            put_u32(out, 0); // creation_time
            put_u32(out, 0); // modification_time
            put_u32(out, id);
            put_u32(out, 0); // reserved
            put_u32(out, 0); // duration
            out.extend_from_slice(&[0; 8]); // reserved
            put_u16(out, 0); // layer
            put_u16(out, 0); // alternate_group
            put_u16(out, if video { 0 } else { VOLUME_ONE });
            put_u16(out, 0); // reserved
            put_matrix(out);
            put_u32(out, u32::from(width) << 16);
            put_u32(out, u32::from(height) << 16);
        });
        write_box(out, b"mdia", |out| {
            full_box(out, b"mdhd", 0, 0, |out| {
                put_u32(out, 0); // creation_time
                put_u32(out, 0); // modification_time
                put_u32(out, entry.timescale());
                put_u32(out, 0); // duration
                put_u16(out, LANGUAGE_UND);
                put_u16(out, 0); // pre_defined
            });
            full_box(out, b"hdlr", 0, 0, |out| {
                put_u32(out, 0); // pre_defined
                out.extend_from_slice(if video { b"vide" } else { b"soun" });
                out.extend_from_slice(&[0; 12]); // reserved
                let name: &[u8] = if video {
                    b"VideoHandler\0"
                } else {
                    b"SoundHandler\0"
                };
                out.extend_from_slice(name);
            });
            write_box(out, b"minf", |out| {
                if video {
                    full_box(out, b"vmhd", 0, 1, |out| {
                        put_u16(out, 0); // graphicsmode: copy
                        out.extend_from_slice(&[0; 6]); // opcolor
                    });
                } else {
                    full_box(out, b"smhd", 0, 0, |out| {
                        put_u16(out, 0); // balance
                        put_u16(out, 0); // reserved
                    });
                }
                write_box(out, b"dinf", |out| {
                    full_box(out, b"dref", 0, 0, |out| {
                        put_u32(out, 1); // entry_count
                        full_box(out, b"url ", 0, URL_SELF_CONTAINED, |_| {});
                    });
                });
                write_box(out, b"stbl", |out| {
                    full_box(out, b"stsd", 0, 0, |out| {
                        put_u32(out, 1); // entry_count
                        write_sample_entry(out, entry);
                    });
                    // The samples are all in the fragments: every table is empty.
                    full_box(out, b"stts", 0, 0, |out| put_u32(out, 0));
                    full_box(out, b"stsc", 0, 0, |out| put_u32(out, 0));
                    full_box(out, b"stsz", 0, 0, |out| {
                        put_u32(out, 0); // sample_size
                        put_u32(out, 0); // sample_count
                    });
                    full_box(out, b"stco", 0, 0, |out| put_u32(out, 0));
                });
            });
        });
    });
}

/// The `stsd` entry: `avc1`, `hvc1` or `mp4a`.
fn write_sample_entry(out: &mut Vec<u8>, entry: &SampleEntry) {
    match entry {
        SampleEntry::Avc {
            config,
            width,
            height,
        } => write_visual_entry(out, b"avc1", b"avcC", config, *width, *height),
        SampleEntry::Hevc {
            config,
            width,
            height,
        } => write_visual_entry(out, b"hvc1", b"hvcC", config, *width, *height),
        SampleEntry::Aac {
            config,
            rate,
            channels,
        } => write_box(out, b"mp4a", |out| {
            out.extend_from_slice(&[0; 6]); // reserved
            put_u16(out, 1); // data_reference_index
            out.extend_from_slice(&[0; 8]); // reserved
            put_u16(out, *channels);
            put_u16(out, 16); // samplesize
            put_u16(out, 0); // pre_defined
            put_u16(out, 0); // reserved
            put_u32(out, (*rate).min(0xFFFF) << 16); // samplerate, 16.16
            write_esds(out, config);
        }),
    }
}

/// A VisualSampleEntry (14496-12 §12.1.3) with its decoder configuration box and a square
/// pixel aspect ratio.
fn write_visual_entry(
    out: &mut Vec<u8>,
    kind: &[u8; 4],
    config_kind: &[u8; 4],
    config: &[u8],
    width: u16,
    height: u16,
) {
    write_box(out, kind, |out| {
        out.extend_from_slice(&[0; 6]); // reserved
        put_u16(out, 1); // data_reference_index
        out.extend_from_slice(&[0; 16]); // pre_defined, reserved, pre_defined
        put_u16(out, width);
        put_u16(out, height);
        put_u32(out, DPI_72); // horizresolution
        put_u32(out, DPI_72); // vertresolution
        put_u32(out, 0); // reserved
        put_u16(out, 1); // frame_count
        out.extend_from_slice(&[0; 32]); // compressorname: empty
        put_u16(out, 0x0018); // depth: colour, no alpha
        put_u16(out, 0xFFFF); // pre_defined = -1
        write_box(out, config_kind, |out| out.extend_from_slice(config));
        write_box(out, b"pasp", |out| {
            put_u32(out, 1); // hSpacing
            put_u32(out, 1); // vSpacing
        });
    });
}

/// The `esds` of an AAC track (14496-14 §5.6): an ES_Descriptor holding the decoder
/// configuration, whose DecoderSpecificInfo is the AudioSpecificConfig.
fn write_esds(out: &mut Vec<u8>, audio_specific_config: &[u8]) {
    full_box(out, b"esds", 0, 0, |out| {
        let mut decoder_config = vec![OBJECT_TYPE_AAC, STREAM_TYPE_AUDIO];
        decoder_config.extend_from_slice(&[0; 3]); // bufferSizeDB: unknown
        decoder_config.extend_from_slice(&[0; 4]); // maxBitrate: unknown
        decoder_config.extend_from_slice(&[0; 4]); // avgBitrate: variable / unknown
        write_descriptor(
            &mut decoder_config,
            DECODER_SPECIFIC_INFO,
            audio_specific_config,
        );
        // ES_ID 0 (as stored in a file), no dependence, URL or OCR stream, priority 0.
        let mut es = vec![0, 0, 0];
        write_descriptor(&mut es, DECODER_CONFIG_DESCRIPTOR, &decoder_config);
        write_descriptor(&mut es, SL_CONFIG_DESCRIPTOR, &[SL_PREDEFINED_MP4]);
        write_descriptor(out, ES_DESCRIPTOR, &es);
    });
}

/// An MPEG-4 descriptor: its tag, its size in as few bytes as needed (7 bits each, the high
/// bit set on all but the last), then `body`. A body too large for the size field is cut.
fn write_descriptor(out: &mut Vec<u8>, tag: u8, body: &[u8]) {
    let len = body.len().min(MAX_DESCRIPTOR_SIZE);
    out.push(tag);
    let mut started = false;
    for shift in [21, 14, 7] {
        let bits = ((len >> shift) & 0x7F) as u8;
        if bits != 0 || started {
            out.push(0x80 | bits);
            started = true;
        }
    }
    out.push((len & 0x7F) as u8);
    out.extend_from_slice(&body[..len]);
}

/// Bytes of the `mdat` header for `data_len` bytes of data: 8, or 16 with a 64-bit size.
fn mdat_header_len(data_len: u64) -> u64 {
    if data_len.saturating_add(8) <= u64::from(u32::MAX) {
        8
    } else {
        16
    }
}

/// The `mdat` header for `data_len` bytes of data following it.
fn write_mdat_header(out: &mut Vec<u8>, data_len: u64) {
    let header_len = mdat_header_len(data_len);
    let size = data_len.saturating_add(header_len);
    if header_len == 8 {
        put_u32(out, u32::try_from(size).unwrap_or(u32::MAX));
        out.extend_from_slice(b"mdat");
    } else {
        put_u32(out, 1); // the size follows as a 64-bit largesize
        out.extend_from_slice(b"mdat");
        put_u64(out, size);
    }
}

/// Appends a box: a size placeholder and `kind`, then what `body` writes; the size is filled in
/// once the body is written (saturating at `u32::MAX`, which no box here comes near).
fn write_box(out: &mut Vec<u8>, kind: &[u8; 4], body: impl FnOnce(&mut Vec<u8>)) {
    let start = out.len();
    put_u32(out, 0);
    out.extend_from_slice(kind);
    body(out);
    let size = u32::try_from(out.len() - start).unwrap_or(u32::MAX);
    patch(out, start, &size.to_be_bytes());
}

/// Appends a full box: a box whose body starts with its version and 24-bit flags.
fn full_box(
    out: &mut Vec<u8>,
    kind: &[u8; 4],
    version: u8,
    flags: u32,
    body: impl FnOnce(&mut Vec<u8>),
) {
    write_box(out, kind, |out| {
        put_u32(out, u32::from(version) << 24 | (flags & 0x00FF_FFFF));
        body(out);
    });
}

/// The 1-based id of the track at `index`.
fn track_id(index: usize) -> u32 {
    u32::try_from(index).map_or(u32::MAX, |i| i.saturating_add(1))
}

fn len_u64(bytes: &[u8]) -> u64 {
    u64::try_from(bytes.len()).unwrap_or(u64::MAX)
}

/// Overwrites the bytes at `at` (written earlier, so always there).
fn patch(out: &mut [u8], at: usize, bytes: &[u8]) {
    if let Some(slot) = out.get_mut(at..at.saturating_add(bytes.len())) {
        slot.copy_from_slice(bytes);
    }
}

fn put_matrix(out: &mut Vec<u8>) {
    for value in UNITY_MATRIX {
        put_u32(out, value);
    }
}

fn put_u16(out: &mut Vec<u8>, value: u16) {
    out.extend_from_slice(&value.to_be_bytes());
}

fn put_u32(out: &mut Vec<u8>, value: u32) {
    out.extend_from_slice(&value.to_be_bytes());
}

fn put_u64(out: &mut Vec<u8>, value: u64) {
    out.extend_from_slice(&value.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use gstreamer as gst;
    use gstreamer::prelude::*;
    use gstreamer_app as gst_app;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};

    /// A box read back: its type, where it starts in the bytes it was read from, and its body.
    #[derive(Debug, Clone, Copy)]
    struct Atom<'a> {
        kind: &'a str,
        at: usize,
        body: &'a [u8],
    }

    /// The boxes `data` is made of, one after the other; checks that their sizes add up to
    /// exactly `data`.
    fn boxes(data: &[u8]) -> Vec<Atom<'_>> {
        let mut found = Vec::new();
        let mut at = 0;
        while at < data.len() {
            assert!(data.len() - at >= 8, "a box header at {at}");
            let kind = std::str::from_utf8(&data[at + 4..at + 8]).unwrap();
            let (header, size) = match u32_at(data, at) {
                1 => (16, usize::try_from(u64_at(data, at + 8)).unwrap()),
                size => (8, size as usize),
            };
            assert!(
                size >= header && size <= data.len() - at,
                "box {kind} at {at}: size {size}, {} bytes left",
                data.len() - at
            );
            found.push(Atom {
                kind,
                at,
                body: &data[at + header..at + size],
            });
            at += size;
        }
        found
    }

    fn kinds<'a>(atoms: &[Atom<'a>]) -> Vec<&'a str> {
        atoms.iter().map(|a| a.kind).collect()
    }

    /// The body of the one box of type `kind` in `data`.
    fn only<'a>(data: &'a [u8], kind: &str) -> &'a [u8] {
        let found: Vec<Atom> = boxes(data).into_iter().filter(|a| a.kind == kind).collect();
        assert_eq!(found.len(), 1, "one {kind}");
        found[0].body
    }

    /// A box found by its path of types from `data`, each level having one of its kind.
    fn path<'a>(data: &'a [u8], kinds: &[&str]) -> &'a [u8] {
        kinds.iter().fold(data, |data, kind| only(data, kind))
    }

    /// A full box's version, flags and the rest of its body.
    fn full(body: &[u8]) -> (u8, u32, &[u8]) {
        (body[0], u32_at(body, 0) & 0xFF_FFFF, &body[4..])
    }

    fn u16_at(data: &[u8], at: usize) -> u16 {
        u16::from_be_bytes(data[at..at + 2].try_into().unwrap())
    }

    fn u32_at(data: &[u8], at: usize) -> u32 {
        u32::from_be_bytes(data[at..at + 4].try_into().unwrap())
    }

    fn u64_at(data: &[u8], at: usize) -> u64 {
        u64::from_be_bytes(data[at..at + 8].try_into().unwrap())
    }

    /// An MPEG-4 descriptor read back: its tag, its body and what follows it.
    fn descriptor(data: &[u8]) -> (u8, &[u8], &[u8]) {
        let tag = data[0];
        let mut len = 0;
        let mut i = 1;
        loop {
            let byte = data[i];
            i += 1;
            len = len << 7 | usize::from(byte & 0x7F);
            if byte & 0x80 == 0 {
                break;
            }
            assert!(i < 5, "a size of at most 4 bytes");
        }
        assert!(
            i + len <= data.len(),
            "descriptor {tag} overruns its parent"
        );
        (tag, &data[i..i + len], &data[i + len..])
    }

    /// The AudioSpecificConfig of an `esds` body, checking every descriptor around it.
    fn esds_config(esds: &[u8]) -> Vec<u8> {
        let (version, flags, esds) = full(esds);
        assert_eq!((version, flags), (0, 0));
        let (tag, es, rest) = descriptor(esds);
        assert_eq!((tag, rest), (ES_DESCRIPTOR, &[][..]), "one ES_Descriptor");
        assert_eq!(&es[..3], [0, 0, 0], "ES_ID 0, no flags");
        let (tag, decoder_config, rest) = descriptor(&es[3..]);
        assert_eq!(tag, DECODER_CONFIG_DESCRIPTOR);
        assert_eq!(decoder_config[0], 0x40, "AAC");
        assert_eq!(decoder_config[1], 0x15, "audio stream");
        let (tag, sl, rest) = descriptor(rest);
        assert_eq!((tag, sl, rest), (SL_CONFIG_DESCRIPTOR, &[2][..], &[][..]));
        let (tag, specific, rest) = descriptor(&decoder_config[13..]);
        assert_eq!((tag, rest), (DECODER_SPECIFIC_INFO, &[][..]));
        specific.to_vec()
    }

    #[test]
    fn init_segment_layout() {
        let avc_config = vec![
            1, 0x64, 0, 0x1F, 0xFF, 0xE1, 0, 2, 0x67, 0x64, 1, 0, 1, 0x68,
        ];
        let hevc_config: Vec<u8> = (0..40).collect();
        let tracks = [
            SampleEntry::Avc {
                config: avc_config.clone(),
                width: 1280,
                height: 720,
            },
            SampleEntry::Aac {
                config: vec![0x11, 0x90],
                rate: 48_000,
                channels: 2,
            },
            SampleEntry::Hevc {
                config: hevc_config.clone(),
                width: 640,
                height: 360,
            },
        ];
        let mut out = Vec::new();
        init_segment(&mut out, &tracks);

        let top = boxes(&out);
        assert_eq!(kinds(&top), ["ftyp", "moov"]);
        assert_eq!(top[0].body, b"iso6\0\0\0\0iso6cmfcmp41");
        let moov = top[1].body;
        assert_eq!(
            kinds(&boxes(moov)),
            ["mvhd", "trak", "trak", "trak", "mvex"]
        );
        let (version, _, mvhd) = full(only(moov, "mvhd"));
        assert_eq!(version, 0);
        assert_eq!(mvhd.len(), 96);
        assert_eq!(u32_at(mvhd, 8), 1000, "timescale");
        assert_eq!(u32_at(mvhd, 12), 0, "duration");
        assert_eq!(u32_at(mvhd, 16), 0x0001_0000, "rate");
        assert_eq!(u16_at(mvhd, 20), 0x0100, "volume");
        assert_eq!(u32_at(mvhd, 32), 0x0001_0000, "matrix a");
        assert_eq!(u32_at(mvhd, 64), 0x4000_0000, "matrix w");
        assert_eq!(u32_at(mvhd, 92), 4, "next_track_ID");

        let traks: Vec<&[u8]> = boxes(moov)
            .iter()
            .filter(|a| a.kind == "trak")
            .map(|a| a.body)
            .collect();
        let expected = [
            ("vide", 90_000, "avc1", 1280, 720),
            ("soun", 48_000, "mp4a", 0, 0),
            ("vide", 90_000, "hvc1", 640, 360),
        ];
        for (i, (trak, (handler, timescale, entry_kind, width, height))) in
            traks.iter().zip(expected).enumerate()
        {
            let (version, flags, tkhd) = full(only(trak, "tkhd"));
            assert_eq!((version, flags), (0, 3));
            assert_eq!(tkhd.len(), 80);
            assert_eq!(u32_at(tkhd, 8), i as u32 + 1, "track_ID");
            assert_eq!(u32_at(tkhd, 16), 0, "duration");
            let volume = if handler == "soun" { 0x0100 } else { 0 };
            assert_eq!(u16_at(tkhd, 32), volume);
            assert_eq!(u32_at(tkhd, 36), 0x0001_0000, "matrix a");
            assert_eq!(u32_at(tkhd, 72), width << 16);
            assert_eq!(u32_at(tkhd, 76), height << 16);

            let mdia = only(trak, "mdia");
            assert_eq!(kinds(&boxes(mdia)), ["mdhd", "hdlr", "minf"]);
            let (_, _, mdhd) = full(only(mdia, "mdhd"));
            assert_eq!(u32_at(mdhd, 8), timescale);
            assert_eq!(u32_at(mdhd, 12), 0, "duration");
            assert_eq!(u16_at(mdhd, 16), 0x55C4, "und");
            assert_eq!(tracks[i].timescale(), timescale);
            let (_, _, hdlr) = full(only(mdia, "hdlr"));
            assert_eq!(&hdlr[4..8], handler.as_bytes());
            assert_eq!(hdlr.last(), Some(&0), "a terminated name");

            let minf = only(mdia, "minf");
            let header = if handler == "vide" { "vmhd" } else { "smhd" };
            assert_eq!(kinds(&boxes(minf)), [header, "dinf", "stbl"]);
            if handler == "vide" {
                assert_eq!(full(only(minf, "vmhd")).1, 1);
            }
            let (_, _, dref) = full(path(minf, &["dinf", "dref"]));
            assert_eq!(u32_at(dref, 0), 1);
            assert_eq!(kinds(&boxes(&dref[4..])), ["url "]);
            assert_eq!(boxes(&dref[4..])[0].body, [0, 0, 0, 1], "self-contained");

            let stbl = only(minf, "stbl");
            assert_eq!(
                kinds(&boxes(stbl)),
                ["stsd", "stts", "stsc", "stsz", "stco"]
            );
            for (kind, body) in [
                ("stts", &[0; 8][..]),
                ("stsc", &[0; 8]),
                ("stsz", &[0; 12]),
                ("stco", &[0; 8]),
            ] {
                assert_eq!(only(stbl, kind), body, "{kind} is empty");
            }
            let (_, _, stsd) = full(only(stbl, "stsd"));
            assert_eq!(u32_at(stsd, 0), 1, "entry_count");
            let entries = boxes(&stsd[4..]);
            assert_eq!(kinds(&entries), [entry_kind]);
            let entry = entries[0].body;
            assert_eq!(u16_at(entry, 6), 1, "data_reference_index");
            if handler == "vide" {
                assert_eq!(&entry[8..24], [0; 16]);
                assert_eq!(u32::from(u16_at(entry, 24)), width);
                assert_eq!(u32::from(u16_at(entry, 26)), height);
                assert_eq!(u32_at(entry, 28), 0x0048_0000);
                assert_eq!(u32_at(entry, 32), 0x0048_0000);
                assert_eq!(u16_at(entry, 40), 1, "frame_count");
                assert_eq!(u16_at(entry, 74), 0x18, "depth");
                assert_eq!(u16_at(entry, 76), 0xFFFF, "pre_defined");
                let children = boxes(&entry[78..]);
                let (config_kind, config) = if entry_kind == "avc1" {
                    ("avcC", &avc_config)
                } else {
                    ("hvcC", &hevc_config)
                };
                assert_eq!(kinds(&children), [config_kind, "pasp"]);
                assert_eq!(children[0].body, config);
                assert_eq!(children[1].body, [0, 0, 0, 1, 0, 0, 0, 1]);
            } else {
                assert_eq!(u16_at(entry, 16), 2, "channelcount");
                assert_eq!(u16_at(entry, 18), 16, "samplesize");
                assert_eq!(u32_at(entry, 24), 48_000 << 16, "samplerate");
                assert_eq!(kinds(&boxes(&entry[28..])), ["esds"]);
                assert_eq!(esds_config(only(&entry[28..], "esds")), [0x11, 0x90]);
            }
        }

        let trexes = boxes(only(moov, "mvex"));
        assert_eq!(kinds(&trexes), ["trex"; 3]);
        for (i, trex) in trexes.iter().enumerate() {
            let (version, flags, trex) = full(trex.body);
            assert_eq!((version, flags), (0, 0));
            let fields: Vec<u32> = (0..5).map(|k| u32_at(trex, 4 * k)).collect();
            assert_eq!(fields, [i as u32 + 1, 1, 0, 0, 0]);
        }
    }

    /// Values out of the fields' ranges are saturated or use the larger forms, without panics.
    #[test]
    fn edge_values() {
        // A sample rate above 16 bits saturates in the entry; the timescale keeps it.
        let mut out = Vec::new();
        let config: Vec<u8> = (0..200).map(|i| i as u8).collect();
        let entry = SampleEntry::Aac {
            config: config.clone(),
            rate: 96_000,
            channels: 6,
        };
        init_segment(&mut out, std::slice::from_ref(&entry));
        let moov = only(&out, "moov");
        let stbl = path(moov, &["trak", "mdia", "minf", "stbl"]);
        let mp4a = only(&full(only(stbl, "stsd")).2[4..], "mp4a");
        assert_eq!(u32_at(mp4a, 24), 0xFFFF_0000);
        assert_eq!(entry.timescale(), 96_000);
        // A 200-byte config takes a two-byte descriptor size.
        let esds = only(&mp4a[28..], "esds");
        assert_eq!(esds_config(esds), config);
        let at = esds.len() - 3 - 200 - 3; // the SLConfigDescriptor follows
        assert_eq!(&esds[at..at + 3], [0x05, 0x81, 0x48]);

        // No tracks at all.
        let mut out = Vec::new();
        init_segment(&mut out, &[]);
        let moov = only(&out, "moov");
        assert_eq!(kinds(&boxes(moov)), ["mvhd", "mvex"]);
        assert_eq!(u32_at(full(only(moov, "mvhd")).2, 92), 1);

        // The mdat header switches to a 64-bit size when 32 bits cannot hold it.
        let limit = u64::from(u32::MAX) - 8;
        assert_eq!(mdat_header_len(limit), 8);
        assert_eq!(mdat_header_len(limit + 1), 16);
        let mut header = Vec::new();
        write_mdat_header(&mut header, 100);
        assert_eq!(header, [0, 0, 0, 108, b'm', b'd', b'a', b't']);
        header.clear();
        write_mdat_header(&mut header, limit + 1);
        assert_eq!(&header[..8], [0, 0, 0, 1, b'm', b'd', b'a', b't']);
        assert_eq!(u64_at(&header, 8), limit + 1 + 16);
        header.clear();
        write_mdat_header(&mut header, u64::MAX);
        assert_eq!(u64_at(&header, 8), u64::MAX);
    }

    #[test]
    fn fragment_layout() {
        let video_samples = [
            Sample {
                duration: 3000,
                size: 5,
                sync: true,
                composition_offset: 6000,
            },
            Sample {
                duration: 3000,
                size: 3,
                sync: false,
                composition_offset: -3000,
            },
            Sample {
                duration: 3001,
                size: 4,
                sync: false,
                composition_offset: 0,
            },
        ];
        let video_data: Vec<u8> = (1..=12).collect();
        let audio_samples = [
            Sample {
                duration: 1024,
                size: 2,
                sync: true,
                composition_offset: 0,
            },
            Sample {
                duration: 1024,
                size: 3,
                sync: true,
                composition_offset: 0,
            },
        ];
        let audio_data = [101, 102, 103, 104, 105];
        let runs = [
            Run {
                track: 1,
                base_decode_time: 324_000_000_000,
                samples: &video_samples,
                data: &video_data,
            },
            Run {
                track: 3,
                base_decode_time: 5,
                samples: &[],
                data: &[200, 201],
            },
            Run {
                track: 2,
                base_decode_time: 96_000,
                samples: &audio_samples,
                data: &audio_data,
            },
        ];
        // Something before the fragment: data offsets count from the moof, not the buffer.
        let mut out = b"previous".to_vec();
        fragment(&mut out, 7, &runs);
        let top = boxes(&out[8..]);
        assert_eq!(kinds(&top), ["moof", "mdat"]);
        let moof_start = 8 + top[0].at;
        let moof = top[0].body;
        let mdat = top[1].body;
        assert_eq!(
            mdat,
            [&video_data[..], &audio_data].concat(),
            "no empty run"
        );

        assert_eq!(kinds(&boxes(moof)), ["mfhd", "traf", "traf"]);
        assert_eq!(full(only(moof, "mfhd")), (0, 0, &7u32.to_be_bytes()[..]));
        let trafs: Vec<&[u8]> = boxes(moof)
            .iter()
            .filter(|a| a.kind == "traf")
            .map(|a| a.body)
            .collect();
        let expected: [(u32, u64, &[Sample], &[u8]); 2] = [
            (1, 324_000_000_000, &video_samples, &video_data),
            (2, 96_000, &audio_samples, &audio_data),
        ];
        for (traf, (track, decode_time, samples, data)) in trafs.iter().zip(expected) {
            assert_eq!(kinds(&boxes(traf)), ["tfhd", "tfdt", "trun"]);
            assert_eq!(
                full(only(traf, "tfhd")),
                (0, 0x02_0000, &track.to_be_bytes()[..])
            );
            assert_eq!(
                full(only(traf, "tfdt")),
                (1, 0, &decode_time.to_be_bytes()[..])
            );
            let (version, flags, trun) = full(only(traf, "trun"));
            assert_eq!((version, flags), (1, 0xF01));
            assert_eq!(u32_at(trun, 0) as usize, samples.len());
            assert_eq!(trun.len(), 8 + 16 * samples.len());
            let offset = u32_at(trun, 4) as usize;
            assert_eq!(&out[moof_start + offset..][..data.len()], data);
            for (i, sample) in samples.iter().enumerate() {
                let entry = &trun[8 + 16 * i..][..16];
                let flags = if sample.sync {
                    0x0200_0000
                } else {
                    0x0101_0000
                };
                assert_eq!(u32_at(entry, 0), sample.duration);
                assert_eq!(u32_at(entry, 4), sample.size);
                assert_eq!(u32_at(entry, 8), flags);
                assert_eq!(u32_at(entry, 12) as i32, sample.composition_offset);
            }
        }
        // The signed offset as it is written.
        let trun = full(path(trafs[0], &["trun"])).2;
        assert_eq!(&trun[8 + 16 + 12..][..4], [0xFF, 0xFF, 0xF4, 0x48]);

        // Nothing but empty runs: an mfhd and an empty mdat.
        let mut out = Vec::new();
        fragment(&mut out, 8, &runs[1..2]);
        let top = boxes(&out);
        assert_eq!(kinds(&top), ["moof", "mdat"]);
        assert_eq!(kinds(&boxes(top[0].body)), ["mfhd"]);
        assert!(top[1].body.is_empty());
    }

    /// One encoded buffer, times in nanoseconds.
    #[derive(Debug)]
    struct Frame {
        pts: u64,
        dts: u64,
        duration: u64,
        sync: bool,
        data: Vec<u8>,
    }

    /// Runs an encoding pipeline ending in `appsink name=sink` and takes all it gives.
    fn encode(description: &str) -> (gst::Caps, Vec<Frame>) {
        gst::init().unwrap();
        let pipeline = gst::parse::launch(description)
            .unwrap_or_else(|e| panic!("{description}: {e}"))
            .downcast::<gst::Pipeline>()
            .unwrap();
        let sink = pipeline
            .by_name("sink")
            .unwrap()
            .downcast::<gst_app::AppSink>()
            .unwrap();
        pipeline.set_state(gst::State::Playing).unwrap();
        let mut caps = None;
        let mut frames = Vec::new();
        while let Some(sample) = sink.try_pull_sample(gst::ClockTime::from_seconds(60)) {
            caps.get_or_insert_with(|| sample.caps().unwrap().to_owned());
            let buffer = sample.buffer().unwrap();
            let pts = buffer.pts().unwrap().nseconds();
            frames.push(Frame {
                pts,
                dts: buffer.dts().map_or(pts, |t| t.nseconds()),
                duration: buffer.duration().unwrap().nseconds(),
                sync: !buffer.flags().contains(gst::BufferFlags::DELTA_UNIT),
                data: buffer.map_readable().unwrap().to_vec(),
            });
        }
        assert!(
            sink.is_eos(),
            "{description}: ended before its end of stream"
        );
        pipeline.set_state(gst::State::Null).unwrap();
        (caps.unwrap(), frames)
    }

    fn codec_data(caps: &gst::Caps) -> Vec<u8> {
        let buffer = caps
            .structure(0)
            .unwrap()
            .get::<gst::Buffer>("codec_data")
            .unwrap();
        buffer.map_readable().unwrap().to_vec()
    }

    fn caps_int(caps: &gst::Caps, field: &str) -> i32 {
        caps.structure(0).unwrap().get::<i32>(field).unwrap()
    }

    /// Nanoseconds in `timescale` ticks, to the nearest.
    fn ticks(ns: u64, timescale: u32) -> u64 {
        ((u128::from(ns) * u128::from(timescale) + 500_000_000) / 1_000_000_000) as u64
    }

    /// A track to mux: each sample's decode time, the sample, its bytes.
    struct Track {
        entry: SampleEntry,
        decode_times: Vec<u64>,
        samples: Vec<Sample>,
        data: Vec<Vec<u8>>,
        /// Presentation times in the track's timescale, in decode order.
        presentation_times: Vec<u64>,
    }

    impl Track {
        fn new(entry: SampleEntry, frames: &[Frame]) -> Track {
            let scale = entry.timescale();
            let decode_times: Vec<u64> = frames.iter().map(|f| ticks(f.dts, scale)).collect();
            let presentation_times: Vec<u64> = frames.iter().map(|f| ticks(f.pts, scale)).collect();
            let samples = frames
                .iter()
                .enumerate()
                .map(|(i, frame)| {
                    let duration = match decode_times.get(i + 1) {
                        Some(next) => next - decode_times[i],
                        None => ticks(frame.duration, scale),
                    };
                    Sample {
                        duration: duration as u32,
                        size: frame.data.len() as u32,
                        sync: frame.sync,
                        composition_offset: (presentation_times[i] as i64 - decode_times[i] as i64)
                            as i32,
                    }
                })
                .collect();
            Track {
                entry,
                decode_times,
                samples,
                data: frames.iter().map(|f| f.data.clone()).collect(),
                presentation_times,
            }
        }

        /// Sample `i`'s decode time in seconds.
        fn seconds(&self, i: usize) -> f64 {
            self.decode_times[i] as f64 / f64::from(self.entry.timescale())
        }
    }

    /// Muxes the tracks (see `mux`) into the file `name` in `dir`.
    fn mux_into(
        dir: &std::path::Path,
        name: &str,
        tracks: &[Track],
        per_fragment: usize,
    ) -> std::path::PathBuf {
        let file = dir.join(name);
        std::fs::write(&file, mux(tracks, per_fragment)).unwrap();
        file
    }

    /// Muxes the tracks: the init segment, then a fragment per `per_fragment` samples of the
    /// first track, with the other tracks' samples up to the time the next fragment starts.
    fn mux(tracks: &[Track], per_fragment: usize) -> Vec<u8> {
        let entries: Vec<SampleEntry> = tracks.iter().map(|t| t.entry.clone()).collect();
        let mut out = Vec::new();
        init_segment(&mut out, &entries);
        let mut next = vec![0; tracks.len()];
        let mut sequence = 1;
        while next[0] < tracks[0].samples.len() {
            let end = (next[0] + per_fragment).min(tracks[0].samples.len());
            let end_seconds = if end < tracks[0].samples.len() {
                tracks[0].seconds(end)
            } else {
                f64::INFINITY
            };
            let ranges: Vec<std::ops::Range<usize>> = tracks
                .iter()
                .zip(&next)
                .enumerate()
                .map(|(k, (track, &start))| {
                    let mut stop = start;
                    while stop < track.samples.len()
                        && (if k == 0 {
                            stop < end
                        } else {
                            track.seconds(stop) < end_seconds
                        })
                    {
                        stop += 1;
                    }
                    start..stop
                })
                .collect();
            let data: Vec<Vec<u8>> = tracks
                .iter()
                .zip(&ranges)
                .map(|(track, range)| track.data[range.clone()].concat())
                .collect();
            let runs: Vec<Run> = tracks
                .iter()
                .zip(&ranges)
                .zip(&data)
                .enumerate()
                .map(|(k, ((track, range), data))| Run {
                    track: k as u32 + 1,
                    base_decode_time: track.decode_times.get(range.start).copied().unwrap_or(0),
                    samples: &track.samples[range.clone()],
                    data,
                })
                .collect();
            fragment(&mut out, sequence, &runs);
            sequence += 1;
            for (n, range) in next.iter_mut().zip(&ranges) {
                *n = range.end;
            }
        }
        out
    }

    fn run(program: &str, args: &[&str]) -> std::process::Output {
        let output = std::process::Command::new(program)
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("{program}: {e}"));
        assert!(output.status.success(), "{program} {args:?}: {output:?}");
        assert_eq!(
            String::from_utf8_lossy(&output.stderr),
            "",
            "{program} {args:?} reported errors"
        );
        output
    }

    fn ffprobe_json(args: &[&str]) -> serde_json::Value {
        let args: Vec<&str> = ["-v", "error", "-of", "json"]
            .into_iter()
            .chain(args.iter().copied())
            .collect();
        serde_json::from_slice(&run("ffprobe", &args).stdout).unwrap()
    }

    /// ffprobe decodes every frame of every stream: (codec, frames, width, height) by stream.
    fn ffprobe_streams(file: &str) -> Vec<(String, usize, i64, i64)> {
        let json = ffprobe_json(&[
            "-count_frames",
            "-show_entries",
            "stream=codec_name,nb_read_frames,width,height",
            file,
        ]);
        json["streams"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                (
                    s["codec_name"].as_str().unwrap().to_string(),
                    s["nb_read_frames"].as_str().unwrap().parse().unwrap(),
                    s["width"].as_i64().unwrap_or(0),
                    s["height"].as_i64().unwrap_or(0),
                )
            })
            .collect()
    }

    /// The packets ffprobe reads from stream `index`, in file order: (pts, dts, keyframe).
    fn ffprobe_packets(file: &str, index: usize) -> Vec<(u64, u64, bool)> {
        let stream = index.to_string();
        let json = ffprobe_json(&[
            "-select_streams",
            &stream,
            "-show_entries",
            "packet=pts,dts,flags",
            file,
        ]);
        json["packets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                (
                    p["pts"].as_u64().unwrap(),
                    p["dts"].as_u64().unwrap(),
                    p["flags"].as_str().unwrap().contains('K'),
                )
            })
            .collect()
    }

    /// Checks that ffprobe reads back each track's samples: the decode times, presentation
    /// times and keyframes written.
    fn check_packets(file: &str, tracks: &[Track]) {
        for (index, track) in tracks.iter().enumerate() {
            let packets = ffprobe_packets(file, index);
            let dts: Vec<u64> = packets.iter().map(|p| p.1).collect();
            assert_eq!(dts, track.decode_times, "decode times of stream {index}");
            let keyframes: Vec<bool> = packets.iter().map(|p| p.2).collect();
            let syncs: Vec<bool> = track.samples.iter().map(|s| s.sync).collect();
            assert_eq!(keyframes, syncs, "keyframes of stream {index}");
            let mut pts: Vec<u64> = packets.iter().map(|p| p.0).collect();
            pts.sort_unstable();
            assert!(
                pts.windows(2).all(|w| w[0] < w[1]),
                "presentation times of stream {index} are distinct"
            );
            let mut expected = track.presentation_times.clone();
            expected.sort_unstable();
            assert_eq!(pts, expected, "presentation times of stream {index}");
        }
    }

    /// What GStreamer made of a file.
    #[derive(Debug, PartialEq, Eq)]
    struct Decoded {
        /// Pictures decoded.
        video: usize,
        /// Audio buffers decoded.
        audio: usize,
        /// Whether each video sample qtdemux gave was a keyframe (not `DELTA_UNIT`), in order.
        keyframes: Vec<bool>,
    }

    /// GStreamer demuxes `file` with qtdemux and decodes its video (and audio).
    fn gst_decode(file: &str, video_decode: &str, audio: bool) -> Decoded {
        gst::init().unwrap();
        let audio_branch = if audio {
            " d.audio_0 ! queue ! aacparse ! avdec_aac ! appsink name=audio sync=false"
        } else {
            ""
        };
        let description = format!(
            "filesrc location={file} ! qtdemux name=d d.video_0 ! queue name=demuxed ! \
             {video_decode} ! appsink name=video sync=false{audio_branch}"
        );
        let pipeline = gst::parse::launch(&description)
            .unwrap_or_else(|e| panic!("{description}: {e}"))
            .downcast::<gst::Pipeline>()
            .unwrap();
        let counts = [Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0))];
        for (name, count) in ["video", "audio"].into_iter().zip(&counts) {
            let Some(sink) = pipeline.by_name(name) else {
                continue;
            };
            let count = count.clone();
            sink.downcast::<gst_app::AppSink>().unwrap().set_callbacks(
                gst_app::AppSinkCallbacks::builder()
                    .new_sample(move |sink| {
                        sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                        count.fetch_add(1, Ordering::SeqCst);
                        Ok(gst::FlowSuccess::Ok)
                    })
                    .build(),
            );
        }
        let keyframes = Arc::new(Mutex::new(Vec::new()));
        let seen = keyframes.clone();
        pipeline
            .by_name("demuxed")
            .unwrap()
            .static_pad("sink")
            .unwrap()
            .add_probe(gst::PadProbeType::BUFFER, move |_, info| {
                if let Some(buffer) = info.buffer() {
                    let keyframe = !buffer.flags().contains(gst::BufferFlags::DELTA_UNIT);
                    seen.lock().unwrap().push(keyframe);
                }
                gst::PadProbeReturn::Ok
            });
        let bus = pipeline.bus().unwrap();
        pipeline.set_state(gst::State::Playing).unwrap();
        let message = bus.timed_pop_filtered(
            gst::ClockTime::from_seconds(60),
            &[gst::MessageType::Eos, gst::MessageType::Error],
        );
        pipeline.set_state(gst::State::Null).unwrap();
        match message.as_ref().map(|m| m.view()) {
            Some(gst::MessageView::Eos(_)) => {}
            other => panic!("{description}: {other:?}"),
        }
        let keyframes = keyframes.lock().unwrap().clone();
        Decoded {
            video: counts[0].load(Ordering::SeqCst),
            audio: counts[1].load(Ordering::SeqCst),
            keyframes,
        }
    }

    fn element_exists(name: &str) -> bool {
        gst::init().unwrap();
        gst::ElementFactory::find(name).is_some()
    }

    /// H.264 with B-frames and AAC, muxed in fragments of 6 frames, read back by ffprobe and
    /// decoded by GStreamer.
    #[test]
    fn ffprobe_and_gstreamer_read_h264_and_aac() {
        let (video_caps, video_frames) = encode(
            "videotestsrc num-buffers=90 ! \
             video/x-raw,format=I420,width=320,height=240,framerate=30/1 ! \
             x264enc bframes=2 key-int-max=30 ! h264parse ! \
             video/x-h264,stream-format=avc,alignment=au ! appsink name=sink sync=false",
        );
        let (audio_caps, mut audio_frames) = encode(
            "audiotestsrc num-buffers=70 samplesperbuffer=2048 ! \
             audio/x-raw,rate=48000,channels=2 ! avenc_aac ! aacparse ! \
             audio/mpeg,mpegversion=4,stream-format=raw ! appsink name=sink sync=false",
        );
        assert_eq!(video_frames.len(), 90);
        assert!(
            video_frames.iter().any(|f| f.pts != f.dts),
            "B-frames: presentation and decode times differ"
        );
        assert!(
            audio_frames.len() > 100,
            "{} audio frames",
            audio_frames.len()
        );
        // The encoders' timelines apart (x264enc starts at 1000 hours, audio at 0), as they are
        // in one pipeline: audio starts with the first picture.
        let start = video_frames[0].pts;
        for frame in &mut audio_frames {
            frame.pts += start;
            frame.dts += start;
        }
        let video = Track::new(
            SampleEntry::Avc {
                config: codec_data(&video_caps),
                width: caps_int(&video_caps, "width") as u16,
                height: caps_int(&video_caps, "height") as u16,
            },
            &video_frames,
        );
        let audio = Track::new(
            SampleEntry::Aac {
                config: codec_data(&audio_caps),
                rate: caps_int(&audio_caps, "rate") as u32,
                channels: caps_int(&audio_caps, "channels") as u16,
            },
            &audio_frames,
        );
        assert!(
            video.samples.iter().any(|s| s.composition_offset > 0),
            "composition offsets"
        );
        let tracks = [video, audio];
        let dir = tempfile::tempdir().unwrap();
        let file = mux_into(dir.path(), "h264.mp4", &tracks, 6);
        let file = file.to_str().unwrap();

        assert_eq!(
            ffprobe_streams(file),
            [
                ("h264".to_string(), 90, 320, 240),
                ("aac".to_string(), audio_frames.len(), 0, 0)
            ]
        );
        check_packets(file, &tracks);
        assert_eq!(
            gst_decode(file, "h264parse ! avdec_h264", true),
            Decoded {
                video: 90,
                audio: audio_frames.len(),
                keyframes: tracks[0].samples.iter().map(|s| s.sync).collect(),
            }
        );
    }

    /// H.265 (hvc1) with B-frames alone, read back by ffprobe and decoded by GStreamer.
    #[test]
    fn ffprobe_and_gstreamer_read_h265() {
        if !element_exists("x265enc") {
            println!("x265enc is not installed: skipping the H.265 check");
            return;
        }
        let (caps, frames) = encode(
            "videotestsrc num-buffers=40 ! \
             video/x-raw,format=I420,width=320,height=240,framerate=30/1 ! \
             x265enc key-int-max=20 ! h265parse ! \
             video/x-h265,stream-format=hvc1,alignment=au ! appsink name=sink sync=false",
        );
        assert_eq!(frames.len(), 40);
        let track = Track::new(
            SampleEntry::Hevc {
                config: codec_data(&caps),
                width: caps_int(&caps, "width") as u16,
                height: caps_int(&caps, "height") as u16,
            },
            &frames,
        );
        assert!(
            track.samples.iter().any(|s| s.composition_offset > 0),
            "B-frames: composition offsets"
        );
        assert_eq!(track.samples.iter().filter(|s| s.sync).count(), 2);
        let tracks = [track];
        let dir = tempfile::tempdir().unwrap();
        let file = mux_into(dir.path(), "h265.mp4", &tracks, 5);
        let file = file.to_str().unwrap();

        assert_eq!(ffprobe_streams(file), [("hevc".to_string(), 40, 320, 240)]);
        check_packets(file, &tracks);
        assert_eq!(
            gst_decode(file, "h265parse ! avdec_h265", false),
            Decoded {
                video: 40,
                audio: 0,
                keyframes: tracks[0].samples.iter().map(|s| s.sync).collect(),
            }
        );
    }
}
