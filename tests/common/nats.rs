//! A throwaway NATS server for tests: Debian's `nats-server` (scripts/install-nats.sh, which
//! `make test` runs) on 127.0.0.1 on a free port. Killed on drop; a watchdog process kills it too
//! if the test process dies without dropping it. `kill` and `restart` (same port) let a test take
//! the bus away from the nodes and give it back.
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use super::watchdog::Watchdog;

const START_DEADLINE: Duration = Duration::from_secs(60);
/// The port found free may be taken before the server binds it: try again this often.
const PORT_ATTEMPTS: usize = 3;

pub struct Nats {
    port: u16,
    /// The server's arguments beyond its address (TLS).
    args: Vec<String>,
    server: Option<Running>,
}

struct Running {
    server: Child,
    /// Kills the server if the test process ends without doing so.
    watchdog: Watchdog,
    /// Its log (a pipe nobody reads would end it at its first write once closed).
    log: tempfile::NamedTempFile,
}

impl Nats {
    /// Starts a server; returns once it accepts connections.
    pub fn start() -> Result<Nats> {
        Nats::start_with(Vec::new())
    }

    /// A server that speaks TLS only, with the PEM certificate `cert` and its key `key`.
    pub fn start_with_tls(cert: &Path, key: &Path) -> Result<Nats> {
        let (cert, key) = (cert.display().to_string(), key.display().to_string());
        Nats::start_with(vec![
            "--tls".into(),
            "--tlscert".into(),
            cert,
            "--tlskey".into(),
            key,
        ])
    }

    fn start_with(args: Vec<String>) -> Result<Nats> {
        let mut last_error = None;
        for _ in 0..PORT_ATTEMPTS {
            let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
            match Running::start(port, &args) {
                Ok(server) => {
                    return Ok(Nats {
                        port,
                        args,
                        server: Some(server),
                    });
                }
                Err(e) => last_error = Some(e),
            }
        }
        Err(last_error.expect("at least one attempt"))
    }

    /// `nats://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// `tls://127.0.0.1:PORT`.
    pub fn tls_url(&self) -> String {
        format!("tls://127.0.0.1:{}", self.port)
    }

    /// What the server logged so far.
    pub fn log(&self) -> String {
        self.server
            .as_ref()
            .and_then(|s| std::fs::read_to_string(s.log.path()).ok())
            .unwrap_or_default()
    }

    /// Kills the server (SIGKILL: no goodbye to its clients) and waits until it is gone.
    pub fn kill(&mut self) {
        if let Some(running) = self.server.take() {
            running.stop();
        }
    }

    /// Starts the server again on the same port.
    pub fn restart(&mut self) -> Result<()> {
        self.kill();
        self.server = Some(Running::start(self.port, &self.args)?);
        Ok(())
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        self.kill();
    }
}

impl Running {
    fn start(port: u16, args: &[String]) -> Result<Running> {
        let log = tempfile::Builder::new()
            .prefix("livefront-nats-")
            .suffix(".log")
            .tempfile()?;
        let mut server = Command::new("nats-server")
            .args(["-a", "127.0.0.1", "-p", &port.to_string()])
            .args(args)
            .stdin(Stdio::null())
            .stdout(log.reopen()?)
            .stderr(log.reopen()?)
            .spawn()
            .context(
                "starting nats-server (Debian's nats-server package: scripts/install-nats.sh; \
                 make test runs it)",
            )?;
        let start = Instant::now();
        loop {
            if let Some(status) = server.try_wait()? {
                let log = std::fs::read_to_string(log.path()).unwrap_or_default();
                bail!("nats-server exited ({status}) before it listened on {port}:\n{log}");
            }
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                break;
            }
            if start.elapsed() > START_DEADLINE {
                let _ = server.kill();
                let _ = server.wait();
                bail!("nats-server did not listen on {port} within {START_DEADLINE:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let watchdog = match Watchdog::kill_on_exit(server.id(), "nats") {
            Ok(w) => w,
            Err(e) => {
                let _ = server.kill();
                let _ = server.wait();
                return Err(e);
            }
        };
        Ok(Running {
            server,
            watchdog,
            log,
        })
    }

    fn stop(mut self) {
        drop(self.watchdog);
        let _ = self.server.kill();
        let _ = self.server.wait();
        drop(self.log);
    }
}
