//! Real simulcast receivers on loopback, started and stopped by the test that uses them: nginx
//! with the RTMP module (recording what it gets to FLV files), the same nginx's `stream` module
//! speaking TLS in front of it (RTMPS, with a certificate made for the test), and an SRT listener
//! (`srt-live-transmit` writing MPEG-TS to a file).
use std::path::{Path, PathBuf};
use std::process::Stdio;

use anyhow::{Context, Result, bail};
use tokio::process::{Child, Command};

use super::watchdog::Watchdog;
use super::{DEADLINE, wait_for};

const NGINX_MODULES: &str = "/usr/lib/nginx/modules";

/// A free TCP (or UDP) port on 127.0.0.1 (bound and let go: the receiver binds it next).
pub fn free_port(udp: bool) -> Result<u16> {
    Ok(if udp {
        std::net::UdpSocket::bind("127.0.0.1:0")?
            .local_addr()?
            .port()
    } else {
        std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port()
    })
}

/// nginx-rtmp on `rtmp_port` (application `live`, every publish recorded under `recordings()`)
/// and TLS on `rtmps_port` proxied to it.
pub struct Nginx {
    pub dir: PathBuf,
    pub rtmp_port: u16,
    pub rtmps_port: u16,
    child: Option<Child>,
}

impl Nginx {
    pub async fn start(dir: &Path) -> Result<Nginx> {
        for module in ["ngx_rtmp_module.so", "ngx_stream_module.so"] {
            if !Path::new(NGINX_MODULES).join(module).exists() {
                bail!(
                    "{NGINX_MODULES}/{module} is missing: apt-get install nginx libnginx-mod-rtmp libnginx-mod-stream"
                );
            }
        }
        std::fs::create_dir_all(dir.join("rec"))?;
        let (cert, key) = super::self_signed_certificate(dir).await?;
        let mut nginx = Nginx {
            dir: dir.to_path_buf(),
            rtmp_port: free_port(false)?,
            rtmps_port: free_port(false)?,
            child: None,
        };
        let conf = format!(
            "daemon off;\nmaster_process off;\npid {dir}/nginx.pid;\nerror_log {dir}/error.log info;\n\
             load_module {NGINX_MODULES}/ngx_rtmp_module.so;\nload_module {NGINX_MODULES}/ngx_stream_module.so;\n\
             events {{ worker_connections 64; }}\n\
             rtmp {{ server {{ listen 127.0.0.1:{rtmp}; chunk_size 4096;\n\
               application live {{ live on; record all; record_path {dir}/rec; record_unique on; }} }} }}\n\
             stream {{ server {{ listen 127.0.0.1:{rtmps} ssl; ssl_certificate {cert}; ssl_certificate_key {key};\n\
               proxy_pass 127.0.0.1:{rtmp}; }} }}\n",
            dir = dir.display(),
            rtmp = nginx.rtmp_port,
            rtmps = nginx.rtmps_port,
            cert = cert.display(),
            key = key.display(),
        );
        std::fs::write(dir.join("nginx.conf"), conf)?;
        nginx.restart().await?;
        Ok(nginx)
    }

    /// Starts nginx (again, on the same ports) and waits until it accepts connections.
    pub async fn restart(&mut self) -> Result<()> {
        let conf = self.dir.join("nginx.conf");
        let child = Command::new("nginx")
            .args(["-p", self.dir.to_str().unwrap(), "-e", "error.log", "-c"])
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .context(
                "nginx is required (apt-get install nginx libnginx-mod-rtmp libnginx-mod-stream)",
            )?;
        self.child = Some(child);
        let port = self.rtmp_port;
        wait_for("nginx listening", DEADLINE, || async move {
            tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .ok()
        })
        .await?;
        Ok(())
    }

    /// Kills nginx at once (SIGKILL: connections drop without a goodbye).
    pub async fn kill(&mut self) -> Result<()> {
        if let Some(mut child) = self.child.take() {
            child.start_kill()?;
            child.wait().await?;
        }
        Ok(())
    }

    /// The FLV files recorded for stream name `name` (one per publish).
    pub fn recordings(&self, name: &str) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(self.dir.join("rec"))
            .map(|d| {
                d.filter_map(Result::ok)
                    .map(|e| e.path())
                    .filter(|p| {
                        p.file_name()
                            .and_then(|n| n.to_str())
                            .is_some_and(|n| n.starts_with(name))
                    })
                    .collect()
            })
            .unwrap_or_default();
        files.sort();
        files
    }
}

/// An SRT listener writing what one caller sends to `file`.
pub struct SrtListener {
    pub port: u16,
    pub file: PathBuf,
    child: Option<Child>,
}

impl SrtListener {
    pub async fn start(file: &Path) -> Result<SrtListener> {
        let port = free_port(true)?;
        let out = std::fs::File::create(file)?;
        let child = Command::new("srt-live-transmit")
            .args([
                "-q",
                &format!("srt://127.0.0.1:{port}?mode=listener"),
                "file://con",
            ])
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .context("srt-live-transmit is required (apt-get install srt-tools)")?;
        Ok(SrtListener {
            port,
            file: file.to_path_buf(),
            child: Some(child),
        })
    }

    pub fn bytes(&self) -> u64 {
        std::fs::metadata(&self.file).map(|m| m.len()).unwrap_or(0)
    }

    pub async fn stop(&mut self) -> Result<()> {
        if let Some(mut child) = self.child.take() {
            child.start_kill()?;
            child.wait().await?;
        }
        Ok(())
    }
}

/// The nginx edge of `examples/nginx-edge/livefront-edge.conf` in front of `nodes` (their HTTP
/// addresses, `host:port`): the example as shipped, with its cache, listen port and upstream
/// rewritten for the test. Killed when dropped.
pub struct Edge {
    pub url: String,
    child: Child,
    /// Kills it if the test process ends without doing so.
    _watchdog: Watchdog,
}

impl Edge {
    pub async fn start(dir: &Path, nodes: &[&str]) -> Result<Edge> {
        let example = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/examples/nginx-edge/livefront-edge.conf"
        );
        let port = free_port(false)?;
        let upstream = "    server 127.0.0.1:8080 max_fails=1 fail_timeout=5s;\n";
        let text = std::fs::read_to_string(example)?;
        anyhow::ensure!(text.contains(upstream), "the example's upstream line moved");
        let servers: String = nodes
            .iter()
            .map(|n| format!("    server {n} max_fails=1 fail_timeout=5s;\n"))
            .collect();
        let edge = text
            .replace(upstream, &servers)
            .replace(
                "/var/cache/nginx/livefront",
                &dir.join("cache").display().to_string(),
            )
            .replace("listen 8081;", &format!("listen 127.0.0.1:{port};"));
        std::fs::write(dir.join("edge.conf"), edge)?;
        let d = dir.display();
        let conf = format!(
            "daemon off;\nmaster_process off;\npid {d}/nginx.pid;\nerror_log {d}/error.log;\n\
             events {{ worker_connections 256; }}\n\
             http {{ access_log off; client_body_temp_path {d}/body; proxy_temp_path {d}/proxy;\n\
               fastcgi_temp_path {d}/fastcgi; uwsgi_temp_path {d}/uwsgi; scgi_temp_path {d}/scgi;\n\
               include {d}/edge.conf; }}\n"
        );
        std::fs::write(dir.join("nginx.conf"), conf)?;
        let child = Command::new("nginx")
            .args(["-p", dir.to_str().context("dir")?, "-e", "error.log", "-c"])
            .arg(dir.join("nginx.conf"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .context("nginx is required (apt-get install nginx)")?;
        let _watchdog = Watchdog::kill_on_exit(child.id().context("pid")?, "nginx-edge")?;
        wait_for("the edge listening", DEADLINE, || async move {
            tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .ok()
        })
        .await?;
        Ok(Edge {
            url: format!("http://127.0.0.1:{port}"),
            child,
            _watchdog,
        })
    }

    pub async fn stop(&mut self) -> Result<()> {
        self.child.start_kill()?;
        self.child.wait().await?;
        Ok(())
    }
}
