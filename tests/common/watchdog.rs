//! A watchdog for a process a test starts: a shell that waits on a pipe from the test process.
//! Dropping the [`Watchdog`] sends it away; if the test process ends without dropping it (killed
//! by hand, aborted, a timeout), the kernel closes the pipe and the shell kills the process.
//! Tests stop their processes themselves; this is for when they cannot.
use std::io::Write;
use std::process::{Child, ChildStdin, Command, Stdio};

use anyhow::{Context, Result};

pub struct Watchdog {
    shell: Child,
    pipe: Option<ChildStdin>,
}

impl Watchdog {
    /// Watches `pid` (named `what` in the process list).
    pub fn kill_on_exit(pid: u32, what: &str) -> Result<Watchdog> {
        let script = r#"read -r _ && exit 0; kill -9 "$1" 2>/dev/null"#;
        let mut shell = Command::new("sh")
            .arg("-c")
            .arg(script)
            .arg(format!("livefront-{what}-watchdog"))
            .arg(pid.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("starting the {what} watchdog"))?;
        let pipe = shell.stdin.take();
        Ok(Watchdog { shell, pipe })
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        if let Some(mut pipe) = self.pipe.take() {
            let _ = pipe.write_all(b"done\n");
        }
        let _ = self.shell.wait();
    }
}
