//! HTTPS: with `http.tls_cert` and `http.tls_key` the HTTP listener speaks TLS, offering HTTP/2
//! and HTTP/1.1 (ALPN). curl (nghttp2) fetches the low-latency playlists and the API over HTTP/2;
//! a plain-HTTP request on the TLS port is turned away without harming the server.
mod common;

use std::path::Path;

use anyhow::{Context, Result, ensure};
use common::*;
use livefront::app::App;
use livefront::config::Config;

/// `curl` over `version` (`--http2`, `--http1.1`): (HTTP version, status, body).
async fn curl(version: &str, cert: &Path, url: &str, token: &str) -> Result<(String, u16, String)> {
    let out = run(
        "curl",
        &[
            "-sS",
            version,
            "--cacert",
            cert.to_str().unwrap(),
            "-H",
            &format!("Authorization: Bearer {token}"),
            "-w",
            "\n%{http_version} %{http_code}",
            url,
        ],
        DEADLINE,
    )
    .await?;
    ensure!(
        out.status.success(),
        "curl {url}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout)?;
    let (body, last) = text.rsplit_once('\n').context("curl's -w line")?;
    let (version, code) = last.split_once(' ').context("version and code")?;
    Ok((version.to_string(), code.parse()?, body.to_string()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn playlists_and_the_api_are_served_over_http2_with_tls() -> Result<()> {
    let certs = tempfile::tempdir()?;
    let (cert, key) = self_signed_certificate(certs.path()).await?;
    let (c, k) = (cert.clone(), key.clone());
    let mut server = Server::start_with(move |config| {
        config.http.tls_cert = Some(c);
        config.http.tls_key = Some(k);
    })
    .await?;
    let (api, token) = (server.api.clone(), server.demo_token.clone());
    ensure!(api.base.starts_with("https://"), "{}", api.base);
    let stream = server.demo_stream.clone();
    let id = stream["id"].as_str().unwrap().to_string();
    ensure!(
        stream["playback"]["hls"]
            .as_str()
            .is_some_and(|u| u.starts_with("https://localhost:")),
        "returned URLs are https: {stream}"
    );
    let publisher = Publish::small(8.0).spawn(&server.publish_url(&stream))?;
    source_segments(&api, &token, &id, 1).await?;

    let url = |path: &str| format!("{}{path}", api.base);
    let (version, status, master) = curl(
        "--http2",
        &cert,
        &url(&format!("/hls/{id}/master.m3u8")),
        &token,
    )
    .await?;
    ensure!(
        version == "2" && status == 200,
        "{version} {status}: {master}"
    );
    let parsed = m3u8_rs::parse_master_playlist_res(master.as_bytes())
        .map_err(|e| anyhow::anyhow!("{e:?}: {master}"))?;
    let media = parsed.variants[0].uri.clone();
    ensure!(media.starts_with("ll/"), "{media}");
    let (version, status, playlist) = curl(
        "--http2",
        &cert,
        &url(&format!("/hls/{id}/{media}")),
        &token,
    )
    .await?;
    ensure!(
        version == "2" && status == 200,
        "{version} {status}: {playlist}"
    );
    ensure!(playlist.contains("#EXT-X-PART:"), "{playlist}");
    m3u8_rs::parse_media_playlist_res(playlist.as_bytes())
        .map_err(|e| anyhow::anyhow!("{e:?}: {playlist}"))?;
    let (version, status, body) = curl(
        "--http2",
        &cert,
        &url(&format!("/api/v1/streams/{id}")),
        &token,
    )
    .await?;
    ensure!(
        version == "2" && status == 200,
        "{version} {status}: {body}"
    );
    // HTTP/1.1 over TLS still works (older clients, OBS's own HTTP).
    let (version, status, _) = curl(
        "--http1.1",
        &cert,
        &url(&format!("/hls/{id}/master.m3u8")),
        &token,
    )
    .await?;
    ensure!(version == "1.1" && status == 200, "{version} {status}");

    // Plain HTTP on the TLS port gets no answer; the server goes on.
    let plain = api.base.replacen("https://", "http://", 1);
    let out = run(
        "curl",
        &["-sS", "--max-time", "5", &format!("{plain}/healthz")],
        DEADLINE,
    )
    .await?;
    ensure!(!out.status.success(), "plain HTTP on the TLS port: {out:?}");
    let (version, status, _) = curl("--http2", &cert, &url("/healthz"), &token).await?;
    ensure!(version == "2" && status == 200);

    finish(publisher, DEADLINE).await?;
    server.stop().await;
    Ok(())
}

/// A certificate without its key, or files that are not there, stop the start with a message
/// that names them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_tls_configuration_is_refused_at_start() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let (cert, _) = self_signed_certificate(dir.path()).await?;
    let mut config: Config = test_config(dir.path());
    config.http.tls_cert = Some(cert.clone());
    let e = config.validate().expect_err("a certificate without a key");
    ensure!(e.to_string().contains("http.tls_key"), "{e}");

    config.http.tls_key = Some(dir.path().join("missing.pem"));
    let e = App::start(config.clone())
        .await
        .err()
        .context("a missing key file")?;
    ensure!(e.to_string().contains("missing.pem"), "{e}");

    config.http.tls_key = Some(cert.clone());
    let e = App::start(config)
        .await
        .err()
        .context("a certificate given as the key")?;
    ensure!(e.to_string().contains("no PEM private key"), "{e}");
    Ok(())
}
