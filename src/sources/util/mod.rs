//! What the sources share: the HTTP receiver that turns requests into
//! batches with backpressure and acknowledgements, file tailing with
//! checkpoints, the TCP/UDP/Unix socket receiver, and the Kong entry and
//! syslog message decoders.

pub mod http;
pub mod kong;
pub mod socket;
pub mod syslog;
pub mod tail;
