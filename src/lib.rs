//! tapline: an observability pipeline for API gateways.
//!
//! Layers, each importing only those below it (tests/layers.rs keeps them):
//!
//! 1. the CLI (`main.rs`, `app`), the admin API (`admin`) and `graph_view`;
//! 2. `config` (load, interpolate, check, diagnose) and `topology` (build,
//!    wire, run, reload, shut down);
//! 3. `registry`: the one-page list of component types;
//! 4. the components: `sources`, `transforms`, `sinks`, each with its family's
//!    `util`; a component never imports `config`, `topology`, the registry or
//!    another family;
//! 5. shared code that knows no component: `net` (HTTP server and client,
//!    TLS), the codecs `otlp` and `prometheus`, `codec`, `template`,
//!    `process`, `defaults`, `enrichment` (Vector's enrichment tables and
//!    the VRL functions that read them);
//! 6. the ground floor: the component contract (`component`), the event
//!    model (`event`) and `telemetry`.

pub mod admin;
pub mod app;
pub mod codec;
pub mod component;
pub mod config;
pub mod defaults;
pub mod enrichment;
pub mod event;
pub mod graph_view;
pub mod net;
#[cfg(feature = "otlp")]
pub mod otlp;
pub mod process;
pub mod prometheus;
pub mod registry;
pub mod sinks;
pub mod sources;
pub mod telemetry;
pub mod template;
pub mod topology;
pub mod transforms;
