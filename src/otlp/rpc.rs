//! `google.rpc.Status` and `RetryInfo`: the error body of OTLP/HTTP and the
//! retry hint of OTLP/gRPC. Four small messages, declared here rather than
//! pulling in a crate of Google's common protos.

use std::time::Duration;

use serde::{Deserialize, Serialize};

#[derive(Clone, PartialEq, prost::Message, Serialize, Deserialize)]
#[serde(default)]
pub struct RpcStatus {
    /// A gRPC code (3 invalid argument, 14 unavailable …).
    #[prost(int32, tag = "1")]
    pub code: i32,
    #[prost(string, tag = "2")]
    pub message: String,
    #[prost(message, repeated, tag = "3")]
    #[serde(skip)]
    pub details: Vec<ProtoAny>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ProtoAny {
    #[prost(string, tag = "1")]
    pub type_url: String,
    #[prost(bytes = "vec", tag = "2")]
    pub value: Vec<u8>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct RetryInfo {
    #[prost(message, optional, tag = "1")]
    retry_delay: Option<ProtoDuration>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct ProtoDuration {
    #[prost(int64, tag = "1")]
    seconds: i64,
    #[prost(int32, tag = "2")]
    nanos: i32,
}

const RETRY_INFO: &str = "type.googleapis.com/google.rpc.RetryInfo";

/// The `grpc-status-details-bin` of a status that asks to retry after `delay`.
pub fn retry_details(code: tonic::Code, message: &str, delay: Duration) -> Vec<u8> {
    let info = RetryInfo { retry_delay: Some(ProtoDuration { seconds: delay.as_secs() as i64, nanos: delay.subsec_nanos() as i32 }) };
    let detail = ProtoAny { type_url: RETRY_INFO.into(), value: prost::Message::encode_to_vec(&info) };
    prost::Message::encode_to_vec(&RpcStatus { code: code as i32, message: message.into(), details: vec![detail] })
}

/// The delay a gRPC status asks for in its `RetryInfo`, if it has one.
pub fn retry_delay(status: &tonic::Status) -> Option<Duration> {
    let details: RpcStatus = prost::Message::decode(status.details()).ok()?;
    let info = details.details.iter().find(|d| d.type_url == RETRY_INFO)?;
    let delay = <RetryInfo as prost::Message>::decode(&info.value[..]).ok()?.retry_delay?;
    Some(Duration::new(delay.seconds.max(0) as u64, delay.nanos.max(0) as u32))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_info_round_trip() {
        let delay = Duration::from_millis(1500);
        let details = retry_details(tonic::Code::Unavailable, "busy", delay);
        let status = tonic::Status::with_details(tonic::Code::Unavailable, "busy", details.into());
        assert_eq!(retry_delay(&status), Some(delay));
        assert_eq!(retry_delay(&tonic::Status::unavailable("busy")), None);
    }
}
