//! The Kong sources: Kong's http-log posts and file-log files. The entry
//! decoder they share with `socket` and `syslog` (Kong's tcp-log, udp-log and
//! syslog plugins) is `sources::util::kong`.

pub mod file_log;
pub mod http_log;

pub use crate::sources::util::kong::{decode, normalize, KongEntry};
