//! CORS of the media routes: players on any site may fetch playlists, segments, parts, posters
//! and downloads (`GET`/`HEAD`, with `Range` and `Authorization`), so every response says
//! `Access-Control-Allow-Origin: *`, and a preflight is answered here without reaching a handler.
//!
//! The rule is fixed (any origin, no credentials: media access rides on bearer tokens and signed
//! links, never cookies), so the headers are static values: media requests are the hot path (an
//! LL-HLS viewer makes about five a second), and a general CORS layer rebuilds its header map for
//! every one of them.
use std::convert::Infallible;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::Response;
use futures_util::FutureExt;
use futures_util::future::{Either, Map, Ready, ready};

fn any_origin() -> HeaderValue {
    HeaderValue::from_static("*")
}

/// Wraps the media routes with [`MediaCors`].
#[derive(Debug, Clone, Copy, Default)]
pub struct MediaCorsLayer;

impl<S> tower::Layer<S> for MediaCorsLayer {
    type Service = MediaCors<S>;

    fn layer(&self, inner: S) -> MediaCors<S> {
        MediaCors { inner }
    }
}

#[derive(Debug, Clone)]
pub struct MediaCors<S> {
    inner: S,
}

type Finished = Result<Response, Infallible>;

impl<S> tower::Service<Request> for MediaCors<S>
where
    S: tower::Service<Request, Response = Response, Error = Infallible>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Either<Ready<Finished>, Map<S::Future, fn(Finished) -> Finished>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        if is_preflight(&request) {
            return Either::Left(ready(Ok(preflight())));
        }
        Either::Right(self.inner.call(request).map(allow_any_origin as fn(_) -> _))
    }
}

/// An `OPTIONS` request that asks whether a method may be used (the Fetch standard's CORS
/// preflight); any other `OPTIONS` goes to the routes (which answer 405).
fn is_preflight(request: &Request) -> bool {
    request.method() == Method::OPTIONS
        && request
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
}

fn preflight() -> Response {
    let mut response = Response::new(Body::empty());
    *response.status_mut() = StatusCode::NO_CONTENT;
    let headers = response.headers_mut();
    headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, any_origin());
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("GET, HEAD, OPTIONS"),
    );
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("range, authorization"),
    );
    // Browsers cap this (Chromium at two hours); it spares a player one preflight per request.
    headers.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static("7200"),
    );
    response
}

fn allow_any_origin(finished: Finished) -> Finished {
    let Ok(mut response) = finished;
    let headers = response.headers_mut();
    headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, any_origin());
    headers.insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static("content-length, content-range"),
    );
    Ok(response)
}

#[cfg(test)]
mod tests {
    use axum::Router;
    use axum::routing::get;
    use tower::ServiceExt;

    use super::*;

    fn media() -> Router {
        Router::new()
            .route("/hls/x", get(|| async { "playlist" }))
            .route("/hls/gone", get(|| async { StatusCode::NOT_FOUND }))
            .layer(MediaCorsLayer)
    }

    async fn send(request: axum::http::Request<Body>) -> Response {
        media().oneshot(request).await.unwrap()
    }

    #[tokio::test]
    async fn every_media_response_allows_any_origin() {
        for path in ["/hls/x", "/hls/gone"] {
            let response = send(
                axum::http::Request::get(path)
                    .header(header::ORIGIN, "https://shop.example")
                    .body(Body::empty())
                    .unwrap(),
            )
            .await;
            let headers = response.headers();
            assert_eq!(headers[header::ACCESS_CONTROL_ALLOW_ORIGIN], "*", "{path}");
            assert_eq!(
                headers[header::ACCESS_CONTROL_EXPOSE_HEADERS],
                "content-length, content-range"
            );
            // No credentials, ever: media access is by token, never by cookie.
            assert!(!headers.contains_key(header::ACCESS_CONTROL_ALLOW_CREDENTIALS));
        }
    }

    #[tokio::test]
    async fn a_preflight_is_answered_without_the_handler() {
        let response = send(
            axum::http::Request::options("/hls/x")
                .header(header::ORIGIN, "https://shop.example")
                .header(header::ACCESS_CONTROL_REQUEST_METHOD, "GET")
                .header(header::ACCESS_CONTROL_REQUEST_HEADERS, "range")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
        assert_eq!(response.status(), StatusCode::NO_CONTENT);
        let headers = response.headers();
        assert_eq!(headers[header::ACCESS_CONTROL_ALLOW_ORIGIN], "*");
        assert_eq!(
            headers[header::ACCESS_CONTROL_ALLOW_METHODS],
            "GET, HEAD, OPTIONS"
        );
        assert_eq!(
            headers[header::ACCESS_CONTROL_ALLOW_HEADERS],
            "range, authorization"
        );
    }

    #[tokio::test]
    async fn a_plain_options_request_is_not_a_preflight() {
        let response = send(
            axum::http::Request::options("/hls/x")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
        assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    }
}
