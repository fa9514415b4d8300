//! `tapline run`: load, start, then react to signals, config changes and the
//! end of every source.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use tokio::signal::unix::{signal, SignalKind};

use crate::config::{self, Config, ConfigPaths, Diagnostic};
use crate::registry::ComponentConfig;
use crate::topology::RunningTopology;

/// The process's exit codes.
pub mod exit {
    pub const OK: i32 = 0;
    /// Something failed while running: a component, or the drain deadline passed.
    pub const FAILURE: i32 = 1;
    /// A config error, or a machine that cannot run the config (sysexits'
    /// EX_CONFIG, as Vector uses).
    pub const CONFIG: i32 = 78;
}

pub struct RunOptions {
    /// Empty: run the embedded quickstart pipeline.
    pub paths: ConfigPaths,
    pub watch_config: bool,
    pub graceful_shutdown_limit: Duration,
}

/// Load the config the options name, or the embedded default.
pub fn load(paths: &ConfigPaths) -> Result<Config, Vec<Diagnostic>> {
    if paths.files.is_empty() && paths.dirs.is_empty() {
        config::load_from_texts(&[("<embedded quickstart.toml>".to_string(), config::QUICKSTART.to_string())], &|name| {
            std::env::var(name).ok()
        })
    } else {
        config::load(paths)
    }
}

pub fn report(diagnostics: &[Diagnostic]) {
    for d in diagnostics {
        // Formatted first, then written at once: a reader of stdout and stderr
        // apart (a container runtime) must not get half a line between two of stdout's.
        let whole = d.to_string();
        eprintln!("{whole}");
    }
}

/// Checks that need the machine: the data directory and the admin address.
pub fn check_environment(config: &Config) -> Vec<Diagnostic> {
    let mut problems = Vec::new();
    if let Some(dir) = &config.global.data_dir {
        let probe = dir.join(".tapline-write-check");
        if let Err(e) = std::fs::create_dir_all(dir).and_then(|_| std::fs::write(&probe, b"")).and_then(|_| std::fs::remove_file(&probe)) {
            problems.push(Diagnostic::error(format!("data_dir {} is not a writable directory: {e}", dir.display())));
        }
    }
    if config.global.api.enabled && config.global.api.explicit {
        if let Err(e) = std::net::TcpListener::bind(&config.global.api.address) {
            problems.push(Diagnostic::error(format!("api.address {} cannot be bound: {e}", config.global.api.address)));
        }
    }
    for component in config.components.values() {
        if let ComponentConfig::Source(source) = &component.config {
            if let Err(e) = source.check_environment() {
                problems.push(Diagnostic::error(format!("source `{}`: {e}", component.id)));
            }
        }
    }
    problems
}

/// Run until a signal or until every source has ended. Returns the exit code.
pub async fn run(options: RunOptions) -> i32 {
    let config = match load(&options.paths) {
        Ok(config) => config,
        Err(errors) => {
            report(&errors);
            return exit::CONFIG;
        }
    };
    report(&config.warnings);
    raise_open_files_limit();
    if let Some(dir) = &config.global.data_dir {
        if let Err(e) = std::fs::create_dir_all(dir) {
            eprintln!("error: cannot create data_dir {}: {e}", dir.display());
            return exit::CONFIG;
        }
    }
    if config.global.api.enabled {
        match crate::admin::start(&config.global.api.address).await {
            Ok(address) => tracing::info!(%address, "admin API listening (/health, /metrics)"),
            // The default address may be taken (another tapline, a Vector): run without the API.
            Err(e) if !config.global.api.explicit => tracing::warn!("{e}; running without the admin API"),
            Err(e) => {
                eprintln!("error: {e}");
                return exit::CONFIG;
            }
        }
    }
    let mut topology = match RunningTopology::start(&config) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: {e}");
            return exit::CONFIG;
        }
    };
    let threads = tokio::runtime::Handle::current().metrics().num_workers();
    tracing::info!(components = config.components.len(), threads, "tapline started");

    let (Ok(mut sigterm), Ok(mut sigint), Ok(mut sighup)) =
        (signal(SignalKind::terminate()), signal(SignalKind::interrupt()), signal(SignalKind::hangup()))
    else {
        eprintln!("error: cannot install signal handlers");
        return exit::FAILURE;
    };
    let mut seen = fingerprint(&config.files);
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    let mut watch_tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = sigterm.recv() => break,
            _ = sigint.recv() => break,
            _ = sighup.recv() => {
                tracing::info!("SIGHUP: reloading the config and reopening output files");
                crate::component::ask_to_reopen_files();
                reload(&options.paths, &mut topology).await;
                seen = fingerprint(&config_files(&options.paths));
            }
            _ = watch_tick.tick(), if options.watch_config => {
                let now = fingerprint(&config_files(&options.paths));
                if now != seen {
                    seen = now;
                    tracing::info!("config files changed: reloading");
                    reload(&options.paths, &mut topology).await;
                }
            }
            _ = tick.tick() => {
                if topology.sources_finished() {
                    tracing::info!("every source has ended; draining");
                    break;
                }
            }
        }
    }
    let failures = topology.failures();
    tracing::info!(deadline_secs = options.graceful_shutdown_limit.as_secs(), "shutting down: draining events in flight");
    let drained = tokio::select! {
        drained = topology.stop(options.graceful_shutdown_limit) => drained,
        _ = sigint.recv() => false,
        _ = sigterm.recv() => false,
    };
    for line in crate::telemetry::summary_lines() {
        tracing::info!("totals: {line}");
    }
    let failed = failures.load(std::sync::atomic::Ordering::Relaxed);
    if failed > 0 {
        tracing::error!(failed, "stopped; some components failed (see their errors above)");
        exit::FAILURE
    } else if drained {
        tracing::info!("stopped; every event in flight was handed on");
        exit::OK
    } else {
        tracing::error!("stopped before everything drained");
        exit::FAILURE
    }
}

async fn reload(paths: &ConfigPaths, topology: &mut RunningTopology) {
    if paths.files.is_empty() && paths.dirs.is_empty() {
        tracing::warn!("running the embedded config: nothing to reload");
        return;
    }
    match config::load(paths) {
        Ok(new) => {
            report(&new.warnings);
            if let Err(e) = topology.reload(&new).await {
                tracing::error!(error = %e, "reload failed; the running pipeline is unchanged");
            }
        }
        Err(errors) => {
            let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
            tracing::error!(errors = %text.join("\n"), "new config is invalid; the running pipeline is unchanged");
        }
    }
}

fn config_files(paths: &ConfigPaths) -> Vec<PathBuf> {
    paths.resolve().unwrap_or_default()
}

/// What tells a config change: each file's name, size and modification time.
fn fingerprint(files: &[PathBuf]) -> Vec<(PathBuf, u64, Option<SystemTime>)> {
    files
        .iter()
        .map(|f| {
            let meta = std::fs::metadata(f).ok();
            (f.clone(), meta.as_ref().map_or(0, |m| m.len()), meta.and_then(|m| m.modified().ok()))
        })
        .collect()
}

/// Raise the soft limit of open files to the hard one: each receiver caps its
/// connections (`limits.max_connections`), and those caps, not the process's
/// limit (often 1024), must be what a flood of connections meets, or the next
/// accept fails everywhere, `/health` included.
fn raise_open_files_limit() {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit and setrlimit only read or write the struct passed.
    let raised = unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit) == 0
        }
    };
    match raised {
        true if limit.rlim_cur < 4096 => tracing::warn!(
            open_files = limit.rlim_cur,
            "the open-files limit is low: receivers may run out of descriptors before their connection caps"
        ),
        true => tracing::debug!(open_files = limit.rlim_cur, "open-files limit"),
        false => tracing::warn!(error = %std::io::Error::last_os_error(), "cannot read or raise the open-files limit"),
    }
}
