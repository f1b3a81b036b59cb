//! What of a WHIP offer livefront answers, and what it adds to its answer.
//!
//! webrtcbin answers every codec an offer lists, in the offer's order, and the publisher then
//! sends the first: a browser lists VP8 first, which would mean a transcode for every stream.
//! So the offer is trimmed before webrtcbin sees it: H.264 (packetization mode 1, which the
//! depayloader needs) first, then VP8 and VP9 for video, Opus for audio, each with its
//! retransmission (RTX) format; everything else is dropped.
use std::net::IpAddr;

/// Offers are small (a browser's is ~5 KiB); anything much larger is not an offer.
pub const MAX_OFFER_BYTES: usize = 32 * 1024;

/// Why an offer is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OfferError {
    #[error("the offer has no audio or video section")]
    NoMedia,
    #[error("more than one {0} section (one video and one audio track at most)")]
    TooManySections(&'static str),
    #[error("no {kind} codec this server takes ({wanted})")]
    NoCodec {
        kind: &'static str,
        wanted: &'static str,
    },
    #[error("a media section this server cannot use: {0}")]
    Unsupported(String),
}

/// Codecs taken, best first (by encoding name, upper case).
const VIDEO: &[&str] = &["H264", "VP8", "VP9"];
const AUDIO: &[&str] = &["OPUS"];

/// One format of an `m=` line.
struct Format {
    pt: String,
    encoding: String,
    fmtp: String,
}

/// The offer with only what livefront takes, in its order of preference.
pub fn trim_offer(offer: &str) -> Result<String, OfferError> {
    let mut sections = split_sections(offer);
    let session = sections.remove(0);
    if sections.is_empty() {
        return Err(OfferError::NoMedia);
    }
    let (mut video, mut audio) = (0, 0);
    let mut out = session.join("\r\n");
    for section in sections {
        let m = section[0].clone();
        let kind = m.trim_start_matches("m=").split(' ').next().unwrap_or("");
        let (wanted, count, name): (&[&str], _, _) = match kind {
            "video" => (VIDEO, &mut video, "video"),
            "audio" => (AUDIO, &mut audio, "audio"),
            other => return Err(OfferError::Unsupported(other.chars().take(32).collect())),
        };
        *count += 1;
        if *count > 1 {
            return Err(OfferError::TooManySections(name));
        }
        let formats = formats(&section);
        let mut kept: Vec<&Format> = Vec::new();
        for codec in wanted {
            kept.extend(formats.iter().filter(|f| {
                f.encoding == *codec
                    && (*codec != "H264" || f.fmtp.contains("packetization-mode=1"))
            }));
        }
        if kept.is_empty() {
            return Err(OfferError::NoCodec {
                kind: name,
                wanted: if name == "video" {
                    "H.264 with packetization-mode=1, VP8 or VP9"
                } else {
                    "Opus"
                },
            });
        }
        // Retransmissions of what is kept, in the same order.
        let apt = |f: &Format| {
            f.fmtp
                .split(';')
                .find_map(|p| p.trim().strip_prefix("apt="))
                .and_then(|apt| kept.iter().position(|k| k.pt == apt))
        };
        let mut rtx: Vec<(usize, &Format)> = formats
            .iter()
            .filter(|f| f.encoding == "RTX")
            .filter_map(|f| Some((apt(f)?, f)))
            .collect();
        rtx.sort_by_key(|(i, _)| *i);
        let rtx: Vec<&Format> = rtx.into_iter().map(|(_, f)| f).collect();
        let pts: Vec<&str> = kept.iter().chain(&rtx).map(|f| f.pt.as_str()).collect();
        let mut words = m.split(' ');
        let head: Vec<&str> = words.by_ref().take(3).collect();
        out.push_str("\r\n");
        out.push_str(&head.join(" "));
        for pt in &pts {
            out.push(' ');
            out.push_str(pt);
        }
        for line in &section[1..] {
            if let Some(pt) = format_of(line)
                && !pts.contains(&pt)
            {
                continue;
            }
            out.push_str("\r\n");
            out.push_str(line);
        }
    }
    out.push_str("\r\n");
    Ok(out)
}

/// Whether `offer` has a media section of `kind` (`video`, `audio`). Port 0 does not take a
/// section away: a max-bundle offer gives it to every section but the first (`bundle-only`).
pub fn has_section(offer: &str, kind: &str) -> bool {
    offer
        .lines()
        .any(|line| line.split(' ').next() == Some(&format!("m={kind}")))
}

/// For a server behind 1:1 NAT: every host candidate of the answer again with `public` as its
/// address (same port), so a publisher outside reaches it.
pub fn add_public_candidates(answer: &str, public: IpAddr) -> String {
    let mut out = String::with_capacity(answer.len() * 2);
    for line in answer.lines() {
        out.push_str(line);
        out.push_str("\r\n");
        let Some(candidate) = line.strip_prefix("a=candidate:") else {
            continue;
        };
        // foundation component transport priority address port "typ" type ...
        let mut fields: Vec<&str> = candidate.split(' ').collect();
        if fields.len() < 8 || fields[6] != "typ" || fields[7] != "host" {
            continue;
        }
        let public = public.to_string();
        let foundation = format!("{}9", fields[0]);
        fields[0] = &foundation;
        fields[4] = &public;
        out.push_str("a=candidate:");
        out.push_str(&fields.join(" "));
        out.push_str("\r\n");
    }
    out
}

/// The session part, then one list of lines per `m=` section.
fn split_sections(sdp: &str) -> Vec<Vec<String>> {
    let mut sections = vec![Vec::new()];
    for line in sdp.lines().map(str::trim_end).filter(|l| !l.is_empty()) {
        if line.starts_with("m=") {
            sections.push(Vec::new());
        }
        sections
            .last_mut()
            .expect("never empty")
            .push(line.to_owned());
    }
    sections
}

fn formats(section: &[String]) -> Vec<Format> {
    let m = &section[0];
    m.split(' ')
        .skip(3)
        .map(|pt| {
            let attr = |name: &str| {
                let prefix = format!("a={name}:{pt} ");
                section
                    .iter()
                    .find_map(|l| l.strip_prefix(&prefix).map(str::to_owned))
                    .unwrap_or_default()
            };
            let encoding = attr("rtpmap")
                .split('/')
                .next()
                .unwrap_or("")
                .to_ascii_uppercase();
            Format {
                pt: pt.to_owned(),
                encoding,
                fmtp: attr("fmtp"),
            }
        })
        .collect()
}

/// The payload type a format attribute (`rtpmap`, `fmtp`, `rtcp-fb`) is about.
fn format_of(line: &str) -> Option<&str> {
    let rest = ["a=rtpmap:", "a=fmtp:", "a=rtcp-fb:"]
        .iter()
        .find_map(|p| line.strip_prefix(p))?;
    let pt = rest.split(' ').next()?;
    (pt != "*").then_some(pt)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shape of a browser's offer: VP8 first, H.264 in two packetization modes, RTX, RED.
    const OFFER: &str = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0 1\r\n\
m=audio 9 UDP/TLS/RTP/SAVPF 111 63\r\na=mid:0\r\na=sendonly\r\na=rtpmap:111 opus/48000/2\r\n\
a=fmtp:111 minptime=10;useinbandfec=1\r\na=rtcp-fb:111 transport-cc\r\na=rtpmap:63 red/48000/2\r\n\
m=video 9 UDP/TLS/RTP/SAVPF 96 97 102 103 104 45\r\na=mid:1\r\na=sendonly\r\n\
a=rtpmap:96 VP8/90000\r\na=rtcp-fb:96 nack pli\r\na=rtpmap:97 rtx/90000\r\na=fmtp:97 apt=96\r\n\
a=rtpmap:102 H264/90000\r\na=fmtp:102 level-asymmetry-allowed=1;packetization-mode=0;profile-level-id=42001f\r\n\
a=rtpmap:103 H264/90000\r\na=fmtp:103 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f\r\n\
a=rtcp-fb:103 nack pli\r\na=rtpmap:104 rtx/90000\r\na=fmtp:104 apt=103\r\na=rtpmap:45 AV1/90000\r\n";

    #[test]
    fn h264_mode_1_comes_first_and_the_rest_is_dropped() {
        let trimmed = trim_offer(OFFER).unwrap();
        assert!(
            trimmed.contains("m=video 9 UDP/TLS/RTP/SAVPF 103 96 104 97\r\n"),
            "{trimmed}"
        );
        assert!(
            trimmed.contains("m=audio 9 UDP/TLS/RTP/SAVPF 111\r\n"),
            "{trimmed}"
        );
        for gone in ["a=rtpmap:102", "a=fmtp:102", "a=rtpmap:45", "a=rtpmap:63"] {
            assert!(!trimmed.contains(gone), "{gone} kept: {trimmed}");
        }
        for kept in [
            "a=rtcp-fb:103 nack pli",
            "a=fmtp:104 apt=103",
            "a=group:BUNDLE 0 1",
            "a=mid:1",
        ] {
            assert!(trimmed.contains(kept), "{kept} lost: {trimmed}");
        }
    }

    #[test]
    fn offers_without_a_usable_codec_or_with_odd_sections_are_refused() {
        let av1_only = OFFER.replace("96 97 102 103 104 45", "45");
        assert!(matches!(
            trim_offer(&av1_only),
            Err(OfferError::NoCodec { kind: "video", .. })
        ));
        assert_eq!(trim_offer("v=0\r\ns=-\r\n"), Err(OfferError::NoMedia));
        assert!(has_section(OFFER, "video") && has_section(OFFER, "audio"));
        let bundled =
            "v=0\r\ns=-\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\nm=video 0 UDP/TLS/RTP/SAVPF 96\r\n";
        assert!(has_section(bundled, "audio") && has_section(bundled, "video"));
        let audio_only = "v=0\r\ns=-\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n";
        assert!(has_section(audio_only, "audio") && !has_section(audio_only, "video"));
        let two_videos =
            format!("{OFFER}m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=rtpmap:96 VP8/90000\r\n");
        assert_eq!(
            trim_offer(&two_videos),
            Err(OfferError::TooManySections("video"))
        );
        let data = format!("{OFFER}m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\n");
        assert!(matches!(trim_offer(&data), Err(OfferError::Unsupported(_))));
        assert!(trim_offer("").is_err());
    }

    #[test]
    fn a_public_address_repeats_each_host_candidate() {
        let answer = "v=0\r\na=candidate:1 1 UDP 2015363327 10.0.0.5 50000 typ host\r\n\
a=candidate:2 1 UDP 1677721855 203.0.113.9 50000 typ srflx raddr 10.0.0.5 rport 50000\r\n";
        let out = add_public_candidates(answer, "198.51.100.7".parse().unwrap());
        assert!(
            out.contains("a=candidate:19 1 UDP 2015363327 198.51.100.7 50000 typ host\r\n"),
            "{out}"
        );
        assert_eq!(out.matches("a=candidate:").count(), 3, "{out}");
    }
}
