//! FindCoordinator: this node coordinates every group and every
//! transactional id.

use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{BrokerId, FindCoordinatorRequest, FindCoordinatorResponse};
use kafka_protocol::protocol::StrBytes;

use super::Broker;
use crate::protocol::codes::{self, ErrorCode};

const KEY_GROUP: i8 = 0;
const KEY_TRANSACTION: i8 = 1;

/// (error, message) for a key type, or none when this node coordinates it.
fn check(key_type: i8) -> Option<(ErrorCode, &'static str)> {
    match key_type {
        KEY_GROUP => None,
        KEY_TRANSACTION => None,
        _ => Some((codes::INVALID_REQUEST, "unknown coordinator key type")),
    }
}

pub async fn find_coordinator(
    b: &Broker,
    req: FindCoordinatorRequest,
    version: i16,
) -> FindCoordinatorResponse {
    let node = BrokerId(b.node_id());
    let host = StrBytes::from_string(b.advertised_host.clone());
    let mut resp = FindCoordinatorResponse::default();
    let problem = check(req.key_type);
    if version >= 4 {
        resp.coordinators = req
            .coordinator_keys
            .into_iter()
            .map(|key| {
                let mut c = Coordinator::default();
                c.key = key;
                match problem {
                    Some((code, msg)) => {
                        c.node_id = BrokerId(-1);
                        c.port = -1;
                        c.error_code = code;
                        c.error_message = Some(StrBytes::from_static_str(msg));
                    }
                    None => {
                        c.node_id = node;
                        c.host = host.clone();
                        c.port = b.advertised_port;
                    }
                }
                c
            })
            .collect();
        return resp;
    }
    match problem {
        Some((code, msg)) => {
            resp.error_code = code;
            if version >= 1 {
                resp.error_message = Some(StrBytes::from_static_str(msg));
            }
            resp.node_id = BrokerId(-1);
            resp.port = -1;
        }
        None => {
            resp.node_id = node;
            resp.host = host;
            resp.port = b.advertised_port;
        }
    }
    resp
}
