//! Transforms: functions from a batch to batches on named outputs; those with
//! state and timers (`red`, `enrich`'s table reloads) also tick.

pub mod aggregate;
pub mod dedupe;
pub mod enrich;
pub mod filter;
pub mod log_to_metric;
pub mod red;
pub mod reduce;
pub mod remap;
pub mod route;
pub mod sample;
pub mod stitch;
pub mod throttle;
pub mod util;
