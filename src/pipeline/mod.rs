//! Pipelines: GStreamer only. Builds a live stream's pipeline from a spec, isolates its branches,
//! keeps its timestamps in order and measures its ingest health; knows nothing of webhooks,
//! notifications, shop, live or HTTP.
pub mod branch;
pub mod build;
pub mod health;
pub mod poster;
pub mod spec;
pub mod target;
pub mod timeline;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("gstreamer element {factory} is missing (install the Debian package {apt_package})")]
    MissingElement {
        factory: &'static str,
        apt_package: &'static str,
    },
    #[error("pipeline {0}")]
    Gst(String),
}

impl From<gstreamer::glib::Error> for Error {
    fn from(e: gstreamer::glib::Error) -> Self {
        Error::Gst(e.to_string())
    }
}

impl From<gstreamer::glib::BoolError> for Error {
    fn from(e: gstreamer::glib::BoolError) -> Self {
        Error::Gst(e.to_string())
    }
}

impl From<gstreamer::StateChangeError> for Error {
    fn from(e: gstreamer::StateChangeError) -> Self {
        Error::Gst(e.to_string())
    }
}

/// Every GStreamer element livefront uses, with the Debian package that ships it (`doctor` and
/// startup check these).
pub const REQUIRED_ELEMENTS: &[(&str, &str)] = &[
    ("appsrc", "gstreamer1.0-plugins-base"),
    ("tee", "libgstreamer1.0-0"),
    ("queue", "libgstreamer1.0-0"),
    ("filesrc", "libgstreamer1.0-0"),
    ("filesink", "libgstreamer1.0-0"),
    ("h264parse", "gstreamer1.0-plugins-bad"),
    ("h265parse", "gstreamer1.0-plugins-bad"),
    ("av1parse", "gstreamer1.0-plugins-bad"),
    ("aacparse", "gstreamer1.0-plugins-good"),
    ("tsdemux", "gstreamer1.0-plugins-bad"),
    ("mpegtsmux", "gstreamer1.0-plugins-bad"),
    ("mp4mux", "gstreamer1.0-plugins-good"),
    ("qtdemux", "gstreamer1.0-plugins-good"),
    ("capsfilter", "libgstreamer1.0-0"),
    ("valve", "libgstreamer1.0-0"),
    ("identity", "libgstreamer1.0-0"),
    ("appsink", "gstreamer1.0-plugins-base"),
    ("avdec_h264", "gstreamer1.0-libav"),
    ("avdec_h265", "gstreamer1.0-libav"),
    ("av1dec", "gstreamer1.0-plugins-bad"),
    ("videorate", "gstreamer1.0-plugins-base"),
    ("videoconvertscale", "gstreamer1.0-plugins-base"),
    ("x264enc", "gstreamer1.0-plugins-ugly"),
    ("jpegenc", "gstreamer1.0-plugins-good"),
    ("rtph264pay", "gstreamer1.0-plugins-good"),
    ("rtph265pay", "gstreamer1.0-plugins-good"),
    ("rtpmp4gpay", "gstreamer1.0-plugins-good"),
    ("isofmp4mux", "built in (gst-plugin-fmp4)"),
    ("flvmux", "gstreamer1.0-plugins-good"),
    ("rtmp2sink", "gstreamer1.0-plugins-bad"),
    ("srtsink", "gstreamer1.0-plugins-bad"),
];

/// Registers the GStreamer plugins built into livefront (the CMAF muxers of gst-plugin-fmp4),
/// once per process; GStreamer must be initialised.
pub fn register_plugins() -> Result<(), Error> {
    static REGISTERED: std::sync::OnceLock<Result<(), String>> = std::sync::OnceLock::new();
    REGISTERED
        .get_or_init(|| gstfmp4::plugin_register_static().map_err(|e| e.to_string()))
        .clone()
        .map_err(Error::Gst)
}

/// Initialises GStreamer and checks that every element livefront needs exists.
pub fn init() -> Result<(), Error> {
    gstreamer::init()?;
    register_plugins()?;
    for (factory, apt_package) in REQUIRED_ELEMENTS {
        if gstreamer::ElementFactory::find(factory).is_none() {
            return Err(Error::MissingElement {
                factory,
                apt_package,
            });
        }
    }
    Ok(())
}
