//! Transforms: functions from a batch to batches on named outputs; those with
//! state and timers (`red`, `enrich`'s table reloads) also tick.

pub mod enrich;
pub mod filter;
pub mod red;
pub mod remap;
pub mod route;
pub mod stitch;
pub mod util;
