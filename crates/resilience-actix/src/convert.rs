//! The boundary between actix-web's `http` 0.2 types and the `http` 1.x types every decision
//! in `resilience-http` is made with: statuses by number, headers by name and value bytes.
//!
//! Nothing here decides anything; it only copies.

use std::net::SocketAddr;

use actix_web::body::BoxBody;
use actix_web::dev::ServiceRequest;
use actix_web::http::header::{
    HeaderMap as ActixHeaderMap, HeaderName as ActixHeaderName, HeaderValue as ActixHeaderValue,
};
use actix_web::http::{StatusCode as ActixStatusCode, Version as ActixVersion};
use actix_web::HttpResponse;
use bytes::Bytes;
use http::header::{HeaderName, HeaderValue};
use http::{request, response, HeaderMap, Method, Response, StatusCode, Uri, Version};
use resilience::Rejection;
use resilience_http::TimedOut;

/// The head of an actix request as `http` 1.x [`request::Parts`], what the stages read: method,
/// URI, version, headers, and the peer address as a [`SocketAddr`] extension (where
/// [`resilience_http::peer_addr`] finds the client IP).
pub(crate) fn request_parts(request: &ServiceRequest) -> request::Parts {
    let (mut parts, ()) = http::Request::new(()).into_parts();
    parts.method = Method::from_bytes(request.method().as_str().as_bytes()).unwrap_or_default();
    // Origin-form is what a server sees; an absolute URI keeps its scheme and authority.
    parts.uri = Uri::try_from(request.uri().to_string())
        .unwrap_or_else(|_| Uri::try_from(request.path()).unwrap_or_default());
    parts.version = version(request.version());
    parts.headers = headers_to_http(request.headers());
    if let Some(peer) = request.peer_addr() {
        parts.extensions.insert::<SocketAddr>(peer);
    }
    parts
}

fn version(version: ActixVersion) -> Version {
    match version {
        ActixVersion::HTTP_09 => Version::HTTP_09,
        ActixVersion::HTTP_10 => Version::HTTP_10,
        ActixVersion::HTTP_2 => Version::HTTP_2,
        ActixVersion::HTTP_3 => Version::HTTP_3,
        _ => Version::HTTP_11,
    }
}

fn headers_to_http(headers: &ActixHeaderMap) -> HeaderMap {
    let mut converted = HeaderMap::with_capacity(headers.len());
    for (name, value) in headers {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_str().as_bytes()),
            HeaderValue::from_bytes(value.as_bytes()),
        ) {
            converted.append(name, value);
        }
    }
    converted
}

/// Copies `headers` into an actix response's headers, each name replacing what was there (as
/// `resilience-http` does with `HeaderMap::insert` for the `RateLimit-*` headers).
pub(crate) fn set_headers(target: &mut ActixHeaderMap, headers: HeaderMap) {
    let mut last = None;
    for (name, value) in headers {
        // `None` is a further value of the previous name.
        let name = match name {
            Some(name) => {
                last = ActixHeaderName::from_bytes(name.as_str().as_bytes()).ok();
                if let Some(name) = &last {
                    target.remove(name);
                }
                last.clone()
            }
            None => last.clone(),
        };
        if let (Some(name), Ok(value)) = (name, ActixHeaderValue::from_bytes(value.as_bytes())) {
            target.append(name, value);
        }
    }
}

/// A response made by `resilience-http` (a refusal or a timeout: status, headers,
/// problem+json body) as an actix response, carrying its [`Rejection`] or [`TimedOut`] along
/// so that an outer middleware of this crate judges it as `resilience-http` would.
pub(crate) fn response_to_actix(made: Response<Bytes>) -> HttpResponse<BoxBody> {
    let (parts, body) = made.into_parts();
    let status = ActixStatusCode::from_u16(parts.status.as_u16())
        .unwrap_or(ActixStatusCode::INTERNAL_SERVER_ERROR);
    let mut response = HttpResponse::with_body(status, body).map_into_boxed_body();
    set_headers(response.headers_mut(), parts.headers);
    let mut extensions = response.extensions_mut();
    if let Some(rejection) = parts.extensions.get::<Rejection>() {
        extensions.insert(rejection.clone());
    }
    if let Some(timed_out) = parts.extensions.get::<TimedOut>() {
        extensions.insert(*timed_out);
    }
    drop(extensions);
    response
}

/// The head of an actix response as `http` 1.x [`response::Parts`], what the stages'
/// classifiers judge: status, headers, and the markers of a response made by an inner
/// middleware of this crate.
pub(crate) fn response_head<B>(response: &HttpResponse<B>) -> response::Parts {
    let (mut parts, ()) = Response::new(()).into_parts();
    parts.status = StatusCode::from_u16(response.status().as_u16())
        .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    parts.headers = headers_to_http(response.headers());
    let extensions = response.extensions();
    if let Some(rejection) = extensions.get::<Rejection>() {
        parts.extensions.insert(rejection.clone());
    }
    if let Some(timed_out) = extensions.get::<TimedOut>() {
        parts.extensions.insert(*timed_out);
    }
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_cross_both_ways() {
        let mut ours = HeaderMap::new();
        ours.insert("ratelimit-limit", HeaderValue::from_static("10"));
        ours.append("vary", HeaderValue::from_static("a"));
        ours.append("vary", HeaderValue::from_static("b"));
        let mut theirs = ActixHeaderMap::new();
        theirs.insert(
            ActixHeaderName::from_static("ratelimit-limit"),
            ActixHeaderValue::from_static("99"),
        );
        set_headers(&mut theirs, ours);
        let limit: Vec<_> = theirs.get_all("ratelimit-limit").collect();
        assert_eq!(limit, [&ActixHeaderValue::from_static("10")], "replaced");
        assert_eq!(theirs.get_all("vary").count(), 2);
        let back = headers_to_http(&theirs);
        assert_eq!(back.get_all("vary").iter().count(), 2);
        assert_eq!(back["ratelimit-limit"], "10");
    }
}
