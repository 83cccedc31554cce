//! ApiVersions: what we implement, straight from the dispatch table.

use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{ApiVersionsRequest, ApiVersionsResponse};

use super::{Broker, APIS};
use crate::protocol::codes::{self, ErrorCode};

pub fn response(error_code: ErrorCode) -> ApiVersionsResponse {
    let mut r = ApiVersionsResponse::default();
    r.error_code = error_code;
    r.api_keys = APIS
        .iter()
        .map(|a| {
            let mut v = ApiVersion::default();
            v.api_key = a.key as i16;
            v.min_version = a.min;
            v.max_version = a.max;
            v
        })
        .collect();
    // Default-valued tagged fields (features, epoch) stay at their defaults,
    // so the encoder leaves them out as Kafka does: librdkafka 2.0.2 rejects
    // responses that carry them.
    r
}

pub async fn handle(_: &Broker, _req: ApiVersionsRequest, _version: i16) -> ApiVersionsResponse {
    response(codes::NONE)
}
