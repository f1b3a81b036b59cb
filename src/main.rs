//! The `livefront` command: serve, creator add, doctor.
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use livefront::app::App;
use livefront::config::Config;
use livefront::http::streams::playback_url;
use livefront::pipeline;

#[derive(Parser)]
#[command(
    name = "livefront",
    version,
    about = "Self-hosted live-shopping broadcast server"
)]
struct Cli {
    /// Config file (default: config/livefront.toml when present, else built-in defaults).
    #[arg(long, global = true, env = "LIVEFRONT_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server.
    Serve,
    /// Manage creators.
    Creator {
        #[command(subcommand)]
        command: CreatorCommand,
    },
    /// Check GStreamer elements and tools; name the Debian package of anything missing.
    Doctor,
}

#[derive(Subcommand)]
enum CreatorCommand {
    /// Create a creator and print its API token.
    Add { handle: String },
}

/// Tools the tests and operators use beside the server.
const TOOLS: &[(&str, &str)] = &[
    ("ffmpeg", "ffmpeg"),
    ("ffprobe", "ffmpeg"),
    ("gst-launch-1.0", "gstreamer1.0-tools"),
    ("srt-live-transmit", "srt-tools"),
];

fn main() -> ExitCode {
    livefront::telemetry::init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Doctor => doctor(),
        command => tokio::runtime::Runtime::new()
            .context("starting the runtime")
            .and_then(|rt| {
                rt.block_on(async {
                    let config = Config::load(cli.config.as_deref())?;
                    match command {
                        Command::Serve => serve(config).await,
                        Command::Creator {
                            command: CreatorCommand::Add { handle },
                        } => creator_add(config, &handle).await,
                        Command::Doctor => unreachable!("handled above"),
                    }
                })
            }),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("livefront: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(config: Config) -> anyhow::Result<ExitCode> {
    let app = App::start(config).await?;
    print_banner(&app).await?;
    wait_for_signal().await;
    app.stop().await;
    Ok(ExitCode::SUCCESS)
}

async fn print_banner(app: &App) -> anyhow::Result<()> {
    println!();
    println!("livefront is running");
    println!(
        "  HTTP API      {}  (health: {}/healthz)",
        app.public_url, app.public_url
    );
    println!(
        "  RTMP ingest   {}   (OBS: Settings > Stream > Custom, Server = this, Stream Key = a stream's key)",
        app.rtmp_url
    );
    if let Some(rtmps) = &app.rtmps_url {
        println!("  RTMPS ingest  {rtmps}   (RTMP over TLS: the same Server form, the same keys)");
    }
    println!(
        "  SRT ingest    {}   (UDP; publish URL = this + ?streamid=publish:KEY)",
        app.srt_url
    );
    println!(
        "  WHIP ingest   {}/whip/{{stream id}}   (OBS 30+: Service WHIP, Bearer Token = the stream key)",
        app.public_url
    );
    println!(
        "  RTSP out      {}/live/{{stream id}}   (VLC, NVRs; practice streams need the ?token= of playback.rtsp)",
        app.rtsp_url
    );
    if let Some(first) = &app.first_start {
        let s = &first.demo_stream;
        println!();
        println!("First start: created creator `demo` and a practice stream.");
        if let Some(admin) = &first.admin_token {
            println!("  admin token        {admin}   (shown once; stored hashed)");
        }
        println!(
            "  demo API token     {}   (shown once; stored hashed)",
            first.demo_token
        );
        println!("  stream id          {}", s.id);
        println!("  OBS Server         {}", app.rtmp_url);
        println!("  OBS Stream Key     {}", s.stream_key.expose());
        println!(
            "  ffmpeg / phone URL {}/{}",
            app.rtmp_url,
            s.stream_key.expose()
        );
        println!(
            "  SRT URL            {}?streamid=publish:{}",
            app.srt_url,
            s.stream_key.expose()
        );
        println!("  watch (practice)   {}", playback_url(&app.state, s, true));
        println!(
            "  go public          curl -X PUT -H 'Authorization: Bearer {}' -H 'Content-Type: application/json' -d '{{\"mode\":\"public\"}}' {}/api/v1/streams/{}/mode",
            first.demo_token, app.public_url, s.id
        );
    }
    println!();
    Ok(())
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        let _ = tokio::signal::ctrl_c().await;
        return;
    };
    tokio::select! {
        _ = term.recv() => {},
        _ = int.recv() => {},
    }
}

async fn creator_add(config: Config, handle: &str) -> anyhow::Result<ExitCode> {
    std::fs::create_dir_all(&config.data_dir)?;
    let store = livefront::app::open_store(&config).await?;
    let (creator, token) = store.create_creator(handle).await?;
    println!("creator {} ({})", creator.handle, creator.id);
    println!("token   {token}");
    Ok(ExitCode::SUCCESS)
}

fn doctor() -> anyhow::Result<ExitCode> {
    let mut ok = true;
    match gstreamer::init() {
        Ok(()) => {
            println!("ok       GStreamer {}", gstreamer::version_string());
            if let Err(e) = pipeline::register_plugins() {
                println!("MISSING  built-in CMAF muxer: {e}");
                ok = false;
            }
        }
        Err(e) => {
            println!("MISSING  GStreamer runtime ({e}): apt-get install libgstreamer1.0-0");
            return Ok(ExitCode::FAILURE);
        }
    }
    for (factory, package) in pipeline::REQUIRED_ELEMENTS {
        if gstreamer::ElementFactory::find(factory).is_some() {
            println!("ok       element {factory}");
        } else {
            ok = false;
            println!("MISSING  element {factory}: apt-get install {package}");
        }
    }
    for (tool, package) in TOOLS {
        let found = std::env::var_os("PATH")
            .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(tool).is_file()));
        if found {
            println!("ok       tool {tool}");
        } else {
            ok = false;
            println!("MISSING  tool {tool}: apt-get install {package}");
        }
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
