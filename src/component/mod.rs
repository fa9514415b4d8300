//! The component contract: everything a source, transform or sink sees of
//! the rest of tapline, in one place. A component gets its config struct
//! (serde), a context (its input or outputs, its counters, the shutdown
//! signal), and returns a `Task`; it never sees `config`, `topology` or
//! another component. The topology, above, builds the channels named here
//! (`buffer`, `output`) and wires them.
//!
//! Promises a component can rely on: a full output makes `send` wait (so
//! backpressure reaches the source); every event carries the finalizers of the
//! sources that asked for acknowledgements, and a sink settles each one.

pub mod buffer;
mod error;
pub mod inline;
pub mod output;
mod shutdown;
mod sink;
mod source;
mod transform;

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};

pub use buffer::{BufferConfig, BufferReceiver, WhenFull};
pub use error::{with_causes, Context, Error, Result};
pub use output::OutputDef;
pub use shutdown::ShutdownSignal;
pub use sink::{Reporter, SinkConfig, SinkContext};
pub use source::{attach_finalizers, attach_withdrawable, SourceConfig, SourceContext, SourceOutputs};
pub(crate) use transform::deliver;
pub use transform::{Transform, TransformConfig, TransformOutput};

/// A running component: ends with `Ok` when its input is drained or it was told to stop.
pub type Task = Pin<Box<dyn Future<Output = Result<()>> + Send>>;

/// The three families of components.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ComponentKind {
    Source,
    Transform,
    Sink,
}

impl ComponentKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ComponentKind::Source => "source",
            ComponentKind::Transform => "transform",
            ComponentKind::Sink => "sink",
        }
    }

    /// The config table that holds components of this kind.
    pub fn table(self) -> &'static str {
        match self {
            ComponentKind::Source => "sources",
            ComponentKind::Transform => "transforms",
            ComponentKind::Sink => "sinks",
        }
    }
}

/// SIGHUP also asks components that write files to reopen them (as logrotate
/// expects); each compares the count with the one it last acted on.
static REOPEN_REQUESTS: AtomicU64 = AtomicU64::new(0);

/// Ask every component that writes files to reopen them.
pub fn ask_to_reopen_files() {
    REOPEN_REQUESTS.fetch_add(1, Ordering::Relaxed);
}

/// How many times files were asked to be reopened.
pub fn reopen_requests() -> u64 {
    REOPEN_REQUESTS.load(Ordering::Relaxed)
}
