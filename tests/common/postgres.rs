//! A throwaway PostgreSQL server for tests: the Debian package's binaries
//! (`/usr/lib/postgresql/*/bin`, installed by scripts/install-postgres.sh, which `make test` runs),
//! a fresh cluster in a temporary directory, listening on 127.0.0.1 on a free port and on a unix
//! socket in that directory, with durability switched off. Stopped (fast shutdown) on drop; a
//! watchdog process stops it too if the test process dies without dropping it.
//!
//! PostgreSQL refuses to run as root: as root (CI), initdb and the server run as the `postgres` OS
//! user that the Debian package creates, on a directory it owns.
//!
//! The `postgres` client is synchronous (it runs a runtime of its own): call `start` and
//! `fresh_database` outside an async runtime, or through `spawn_blocking`.

use std::io::Write;
use std::net::TcpListener;
use std::os::unix::fs::chown;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// Generous: initdb plus start take well under a second on a loaded 2-core machine.
const START_DEADLINE: Duration = Duration::from_secs(120);
/// The port found free may be taken before the server binds it: try again this often.
const PORT_ATTEMPTS: usize = 3;

pub struct Postgres {
    port: u16,
    server: Child,
    /// The watchdog reads this pipe: EOF without a line (the kernel closes it when this process
    /// is gone) ends the server.
    watchdog: Child,
    watchdog_pipe: Option<ChildStdin>,
    databases: AtomicU32,
    dir: tempfile::TempDir,
}

impl Postgres {
    /// Creates a cluster and starts its server; returns once it accepts connections.
    pub fn start() -> Result<Postgres> {
        Postgres::start_with(&[])
    }

    /// A server that also speaks TLS, with the PEM certificate `cert` and its key `key`.
    pub fn start_with_tls(cert: &Path, key: &Path) -> Result<Postgres> {
        Postgres::start_with(&[cert, key])
    }

    /// `tls`: none, or the certificate and the key.
    fn start_with(tls: &[&Path]) -> Result<Postgres> {
        let bin = bin_dir()?;
        let dir = tempfile::Builder::new().prefix("livefront-pg-").tempdir()?;
        let user = RunAs::current()?;
        user.own(dir.path())?;
        let data = dir.path().join("data");
        let status = user
            .command(&bin.join("initdb"), dir.path())
            .arg("-D")
            .arg(&data)
            .args([
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C",
                "--username=postgres",
            ])
            .args(["--no-sync", "--no-instructions"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .output()
            .context("running initdb")?;
        if !status.status.success() {
            bail!("initdb failed: {}", String::from_utf8_lossy(&status.stderr));
        }
        // The server reads its key only when it is the server user's and no one else's.
        let mut settings = Vec::new();
        if let [cert, key] = tls {
            for (from, name, setting) in [
                (cert, "server.crt", "ssl_cert_file"),
                (key, "server.key", "ssl_key_file"),
            ] {
                let to = dir.path().join(name);
                std::fs::copy(from, &to)?;
                std::fs::set_permissions(&to, std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
                user.own(&to)?;
                settings.push(format!("{setting}={}", to.display()));
            }
            settings.push("ssl=on".to_string());
        }
        let mut last_error = None;
        for _ in 0..PORT_ATTEMPTS {
            let port = free_port()?;
            match spawn_server(&bin, &user, dir.path(), &data, port, &settings) {
                Ok(mut server) => {
                    let (watchdog, pipe) = match spawn_watchdog(server.id(), dir.path()) {
                        Ok(w) => w,
                        Err(e) => {
                            fast_shutdown(server.id());
                            let _ = server.wait();
                            return Err(e);
                        }
                    };
                    return Ok(Postgres {
                        port,
                        server,
                        watchdog,
                        watchdog_pipe: Some(pipe),
                        databases: AtomicU32::new(0),
                        dir,
                    });
                }
                Err(e) => last_error = Some(e),
            }
        }
        Err(last_error.expect("at least one attempt"))
    }

    /// The URL of the cluster's `postgres` database (superuser `postgres`, no password).
    pub fn url(&self) -> String {
        self.database_url("postgres")
    }

    /// Creates a database with a name unique to this server and returns its URL.
    pub fn fresh_database(&self) -> Result<String> {
        let n = self.databases.fetch_add(1, Ordering::SeqCst) + 1;
        let name = format!("livefront_test_{n}");
        let mut client = postgres::Client::connect(&self.url(), postgres::NoTls)?;
        client.batch_execute(&format!("CREATE DATABASE {name}"))?;
        Ok(self.database_url(&name))
    }

    /// The postmaster's process id.
    pub fn pid(&self) -> u32 {
        self.server.id()
    }

    /// Whether process `pid` runs (a zombie, dead but not yet reaped, does not).
    pub fn running(pid: u32) -> bool {
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            // "pid (comm) state ...": comm may hold spaces and parentheses, the state follows the last ')'.
            Ok(stat) => stat
                .rsplit_once(')')
                .is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z')),
            Err(_) => false,
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The directory of the server's unix socket (and its data directory, `data/`).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    fn database_url(&self, name: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{name}", self.port)
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        // A line tells the watchdog to leave: the server and its directory are ours to end.
        if let Some(mut pipe) = self.watchdog_pipe.take() {
            let _ = pipe.write_all(b"done\n");
        }
        let _ = self.watchdog.wait();
        fast_shutdown(self.server.id());
        let _ = self.server.wait();
    }
}

/// The newest PostgreSQL under /usr/lib/postgresql (Debian's layout).
fn bin_dir() -> Result<PathBuf> {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("postgres").exists().then_some((version, bin))
        })
        .collect();
    versions.sort();
    match versions.pop() {
        Some((_, bin)) => Ok(bin),
        None => bail!(
            "no PostgreSQL server under /usr/lib/postgresql/*/bin: install Debian's postgresql \
             package (scripts/install-postgres.sh; make test runs it)"
        ),
    }
}

/// Who runs initdb and the server: ourselves, or the `postgres` user when we are root.
enum RunAs {
    Me,
    Postgres { uid: u32, gid: u32 },
}

impl RunAs {
    fn current() -> Result<RunAs> {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return Ok(RunAs::Me);
        }
        let out = Command::new("id").args(["-u", "postgres"]).output()?;
        let uid = String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .context(
                "running as root and there is no `postgres` user (Debian's postgresql package \
             creates it: scripts/install-postgres.sh)",
            )?;
        let out = Command::new("id").args(["-g", "postgres"]).output()?;
        let gid = String::from_utf8_lossy(&out.stdout).trim().parse()?;
        Ok(RunAs::Postgres { uid, gid })
    }

    fn own(&self, dir: &Path) -> Result<()> {
        if let RunAs::Postgres { uid, gid } = self {
            chown(dir, Some(*uid), Some(*gid)).context("giving the data dir to postgres")?;
        }
        Ok(())
    }

    /// `program`, run as this user; setpriv execs it, so the child's pid is the program's.
    fn command(&self, program: &Path, dir: &Path) -> Command {
        let mut c = match self {
            RunAs::Me => Command::new(program),
            RunAs::Postgres { uid, gid } => {
                let mut c = Command::new("setpriv");
                c.arg(format!("--reuid={uid}"))
                    .arg(format!("--regid={gid}"))
                    .arg("--init-groups")
                    .arg("--")
                    .arg(program);
                c
            }
        };
        // Somewhere the postgres user may enter (not the checkout, which may be root's).
        c.current_dir(dir);
        c
    }
}

fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Starts the server and waits until it answers a query (or exits, or the deadline passes).
fn spawn_server(
    bin: &Path,
    user: &RunAs,
    dir: &Path,
    data: &Path,
    port: u16,
    settings: &[String],
) -> Result<Child> {
    let log = dir.join(format!("server-{port}.log"));
    let log_file = std::fs::File::create(&log)?;
    user.own(&log)?;
    let mut server = user
        .command(&bin.join("postgres"), dir)
        .arg("-D")
        .arg(data)
        .args(["-c", "listen_addresses=127.0.0.1"])
        .args(["-c", &format!("port={port}")])
        .args(["-c", &format!("unix_socket_directories={}", dir.display())])
        .args(["-c", "fsync=off", "-c", "full_page_writes=off"])
        .args(["-c", "synchronous_commit=off"])
        .args(settings.iter().flat_map(|s| ["-c", s.as_str()]))
        .stdin(Stdio::null())
        .stdout(log_file.try_clone()?)
        .stderr(log_file)
        .spawn()
        .context("starting postgres")?;
    // Through the unix socket in our directory: an answer there is from our server, never from
    // another one that took the port first (ours then fails to bind its TCP socket and exits).
    let url = format!(
        "host={} port={port} user=postgres dbname=postgres connect_timeout=5",
        dir.display()
    );
    let start = Instant::now();
    loop {
        if let Some(status) = server.try_wait()? {
            bail!(
                "postgres exited ({status}) before it answered:\n{}",
                read(&log)
            );
        }
        if let Ok(mut client) = postgres::Client::connect(&url, postgres::NoTls)
            && client.simple_query("SELECT 1").is_ok()
        {
            return Ok(server);
        }
        if start.elapsed() > START_DEADLINE {
            fast_shutdown(server.id());
            let _ = server.wait();
            bail!(
                "postgres did not answer within {START_DEADLINE:?}:\n{}",
                read(&log)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A shell that waits on its stdin. A line (our Drop) sends it away; EOF without one (this
/// process ended without dropping the server: killed, aborted, or the server left in a static)
/// makes it ask the server to shut down and remove the directory once the server is gone (the
/// server removes postmaster.pid last).
fn spawn_watchdog(server_pid: u32, dir: &Path) -> Result<(Child, ChildStdin)> {
    let script = r#"
        read -r _ && exit 0
        kill -INT "$1" 2>/dev/null
        while kill -0 "$1" 2>/dev/null && [ -e "$2/data/postmaster.pid" ]; do sleep 0.1; done
        rm -rf "$2"
    "#;
    let mut watchdog = Command::new("sh")
        .arg("-c")
        .arg(script)
        .arg("livefront-pg-watchdog")
        .arg(server_pid.to_string())
        .arg(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("starting the postgres watchdog")?;
    let pipe = watchdog.stdin.take().expect("piped stdin");
    Ok((watchdog, pipe))
}

/// SIGINT: PostgreSQL's fast shutdown (ends sessions, checkpoints, exits with its backends).
fn fast_shutdown(pid: u32) {
    // SAFETY: kill has no memory-safety preconditions; a stale pid at worst gets ESRCH.
    unsafe {
        libc::kill(pid as libc::pid_t, libc::SIGINT);
    }
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// Runs `sql` (statements, no results) on the database at `url`; blocking.
pub fn execute(url: &str, sql: &str) -> Result<()> {
    let mut client = postgres::Client::connect(url, postgres::NoTls)?;
    client.batch_execute(sql)?;
    Ok(())
}

/// The first column of the rows of `sql` at `url`, as text; blocking.
pub fn texts(url: &str, sql: &str) -> Result<Vec<String>> {
    let mut client = postgres::Client::connect(url, postgres::NoTls)?;
    Ok(client
        .query(sql, &[])?
        .iter()
        .map(|row| row.get::<_, String>(0))
        .collect())
}
