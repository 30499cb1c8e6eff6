//! Every request observed: a request id (the caller's `X-Request-Id`, or a new one) on the
//! answer and on every log line of the request, one access log line with route, status and
//! latency, and the HTTP metrics; every error answered in the uniform body, a 405 with the
//! methods its path allows.
use std::sync::Arc;
use std::time::Instant;

use poem::http::{HeaderValue, StatusCode, header};
use poem::{Endpoint, IntoResponse, Request, Response};
use tracing::Instrument;
use uuid::Uuid;

use super::RouteTable;
use crate::error::uniform_error_response;
use crate::metrics::Metrics;
use crate::telemetry::{RequestId, with_request_id};

/// The header that carries a request's id, both ways.
pub const REQUEST_ID_HEADER: &str = "x-request-id";
/// The route label of a path the spec does not document (bounded cardinality).
const UNDOCUMENTED: &str = "other";

/// The caller's id when it is 1..=128 visible ASCII characters, else a new UUID.
fn request_id(req: &Request) -> RequestId {
    req.header(REQUEST_ID_HEADER)
        .filter(|id| !id.is_empty() && id.len() <= 128 && id.bytes().all(|b| b.is_ascii_graphic()))
        .map_or_else(
            || RequestId::from(Uuid::new_v4().to_string()),
            RequestId::from,
        )
}

pub async fn observe<E: Endpoint>(
    next: Arc<E>,
    req: Request,
    routes: Arc<RouteTable>,
    metrics: Metrics,
) -> poem::Result<Response> {
    let started = Instant::now();
    let id = request_id(&req);
    let documented = routes.find(req.uri().path());
    let route = documented.map_or(UNDOCUMENTED, |route| route.template.as_str());
    let method = req.method().clone();
    let span = tracing::info_span!("request", request_id = %id, method = %method, route);
    let work = async {
        // Boxed: the inner endpoints' future is large, and each layer around it (the span, the
        // request id's scope, poem's own) would otherwise copy it whenever it is moved.
        let mut response = match Box::pin(next.call(req)).await {
            Ok(response) => response.into_response(),
            Err(err) => uniform_error_response(err),
        };
        if response.status() == StatusCode::METHOD_NOT_ALLOWED
            && let Some(documented) = documented
        {
            let allow =
                HeaderValue::from_str(&documented.allow).expect("method names are header-safe");
            response.headers_mut().insert(header::ALLOW, allow);
        }
        let status = response.status().as_u16();
        let elapsed = started.elapsed();
        metrics.http_request(route, method.as_str(), status, elapsed);
        tracing::info!(
            target: "giftcodes::access",
            status,
            latency_ms = elapsed.as_secs_f64() * 1000.0,
            "answered"
        );
        if let Ok(value) = HeaderValue::from_str(&id) {
            response.headers_mut().insert(REQUEST_ID_HEADER, value);
        }
        response
    };
    Ok(with_request_id(id.clone(), work.instrument(span)).await)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_usable_caller_id_is_kept_and_others_are_replaced() {
        let with = |value: &str| Request::builder().header(REQUEST_ID_HEADER, value).finish();
        assert_eq!(&*request_id(&with("abc-123")), "abc-123");
        let too_long = "x".repeat(129);
        for unusable in ["", "has space", too_long.as_str()] {
            let replaced = request_id(&with(unusable));
            assert!(Uuid::parse_str(&replaced).is_ok(), "{unusable:?}");
        }
        assert!(Uuid::parse_str(&request_id(&Request::default())).is_ok());
    }
}
