//! What the sources share: the HTTP receiver that turns requests into
//! batches with backpressure and acknowledgements, and file tailing with
//! checkpoints.

pub mod http;
pub mod tail;
