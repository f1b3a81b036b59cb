//! A real S3-compatible server for tests (moto's server mode, installed by
//! scripts/install-s3-test-server.sh): on a loopback port, with the test bucket, killed with the
//! test.
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use livefront::config::Config;
use rusty_s3::{Bucket, Credentials, S3Action, UrlStyle};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use super::DEADLINE;
use super::watchdog::Watchdog;

pub const BUCKET: &str = "livefront-test";
pub const SIGNED: Duration = Duration::from_secs(600);

/// The moto server the install script put in place.
pub fn moto_server() -> PathBuf {
    if let Some(p) = std::env::var_os("LIVEFRONT_MOTO_SERVER") {
        return p.into();
    }
    let home = std::env::var_os("HOME").unwrap_or_default();
    Path::new(&home).join(".cache/livefront/moto-5.2.5/bin/moto_server")
}

/// A real S3-compatible server on a loopback port, killed when dropped.
pub struct S3Server {
    child: Option<Child>,
    /// Kills it if the test process ends without doing so.
    watchdog: Option<Watchdog>,
    pub port: u16,
    /// Where it logs the requests it gets (moto's recorder), when it does.
    requests: Option<PathBuf>,
}

impl S3Server {
    /// On a free port (`0`) or a given one (a restart), with the test bucket created.
    pub async fn start(port: u16) -> Result<S3Server> {
        S3Server::spawn(port, None).await
    }

    /// [`S3Server::start`], logging every request it gets to `log` (read by [`S3Server::puts`]).
    pub async fn start_logging(port: u16, log: &Path) -> Result<S3Server> {
        S3Server::spawn(port, Some(log.to_path_buf())).await
    }

    pub async fn spawn(port: u16, requests: Option<PathBuf>) -> Result<S3Server> {
        let path = moto_server();
        if !path.exists() {
            bail!(
                "{} is missing: run scripts/install-s3-test-server.sh (make test does)",
                path.display()
            );
        }
        let mut command = Command::new(&path);
        if let Some(log) = &requests {
            command
                .env("MOTO_ENABLE_RECORDING", "true")
                .env("MOTO_RECORDER_FILEPATH", log);
        }
        let mut child = command
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}", path.display()))?;
        let watchdog = Watchdog::kill_on_exit(child.id().context("pid")?, "moto")?;
        let mut lines = BufReader::new(child.stderr.take().context("stderr")?).lines();
        let bound = async {
            while let Some(line) = lines.next_line().await? {
                if let Some(rest) = line.split("Running on http://127.0.0.1:").nth(1) {
                    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
                    return Ok(digits.parse::<u16>()?);
                }
            }
            bail!("moto_server exited before it listened")
        };
        let port = tokio::time::timeout(DEADLINE, bound)
            .await
            .context("moto_server did not start")??;
        // Keep reading its log so that it never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        let server = S3Server {
            child: Some(child),
            watchdog: Some(watchdog),
            port,
            requests,
        };
        let bucket = server.bucket();
        let url = bucket.create_bucket(&creds()).sign(SIGNED);
        let put = reqwest::Client::new()
            .put(url)
            .header(reqwest::header::CONTENT_LENGTH, "0");
        let response = put.send().await?;
        let status = response.status();
        let text = response.text().await?;
        anyhow::ensure!(status.is_success(), "creating the bucket: {status} {text}");
        Ok(server)
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn bucket(&self) -> Bucket {
        Bucket::new(
            self.endpoint().parse().unwrap(),
            UrlStyle::Path,
            BUCKET,
            "us-east-1",
        )
        .unwrap()
    }

    pub fn configure(&self, config: &mut Config) {
        config.storage.url = Some(format!(
            "s3://{BUCKET}?endpoint={}&region=us-east-1",
            self.endpoint()
        ));
        config.storage.access_key = Some("test-access".into());
        config.storage.secret_key = Some("test-secret".into());
    }

    /// Keys and sizes under `prefix`, through the S3 API.
    pub async fn list(&self, prefix: &str) -> Result<Vec<(String, u64)>> {
        let bucket = self.bucket();
        let creds = creds();
        let mut action = bucket.list_objects_v2(Some(&creds));
        action.with_prefix(prefix);
        let text = reqwest::get(action.sign(SIGNED)).await?.text().await?;
        let page = rusty_s3::actions::ListObjectsV2::parse_response(&text)?;
        Ok(page
            .contents
            .into_iter()
            .map(|c| (c.key, c.size.unwrap_or(0)))
            .collect())
    }

    /// How many `PUT`s each key got so far (from the request log).
    pub fn puts(&self) -> Result<HashMap<String, usize>> {
        let log = self.requests.as_ref().context("not logging requests")?;
        let mut puts = HashMap::new();
        let text = std::fs::read_to_string(log).unwrap_or_default();
        for line in text.lines() {
            let request: serde_json::Value = serde_json::from_str(line)?;
            if request["method"] != "PUT" {
                continue;
            }
            let url = request["url"].as_str().context("url")?;
            let path = url.split('?').next().unwrap_or_default();
            if let Some((_, key)) = path.split_once(&format!("/{BUCKET}/")) {
                *puts.entry(key.to_string()).or_default() += 1;
            }
        }
        Ok(puts)
    }

    /// The object's bytes, if there is one.
    pub async fn get(&self, key: &str) -> Result<Option<bytes::Bytes>> {
        let url = self.bucket().get_object(Some(&creds()), key).sign(SIGNED);
        let response = reqwest::get(url).await?;
        if response.status() == 404 {
            return Ok(None);
        }
        anyhow::ensure!(
            response.status().is_success(),
            "{key}: {}",
            response.status()
        );
        Ok(Some(response.bytes().await?))
    }

    /// Puts `body` as the object `key`.
    pub async fn put(&self, key: &str, body: bytes::Bytes) -> Result<()> {
        let url = self.bucket().put_object(Some(&creds()), key).sign(SIGNED);
        let response = reqwest::Client::new().put(url).body(body).send().await?;
        anyhow::ensure!(
            response.status().is_success(),
            "{key}: {}",
            response.status()
        );
        Ok(())
    }

    /// Deletes the object `key`.
    pub async fn delete(&self, key: &str) -> Result<()> {
        let url = self
            .bucket()
            .delete_object(Some(&creds()), key)
            .sign(SIGNED);
        let response = reqwest::Client::new().delete(url).send().await?;
        anyhow::ensure!(
            response.status().is_success(),
            "{key}: {}",
            response.status()
        );
        Ok(())
    }

    pub async fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill().await;
        }
        self.watchdog = None;
    }
}

pub fn creds() -> Credentials {
    Credentials::new("test-access", "test-secret")
}
