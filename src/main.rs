//! The command line. Everything it does lives in the library.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use tapline::app::{self, exit, RunOptions};
use tapline::component::ComponentKind;
use tapline::config::{ConfigPaths, Format, INSTALLED_CONFIG_DIR};
use tapline::registry;

// glibc's malloc spends most of a busy pipeline's time on events that are
// allocated on one thread and freed on another; mimalloc does not.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "tapline",
    version,
    about = "An observability pipeline for API gateways: Kong logs, eBPF traffic and APM spans in one trace"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Args, Clone)]
struct ConfigArgs {
    /// A config file (repeat to merge several). TOML, YAML or JSON by extension. Without any: /etc/tapline's config files if there are any, else the embedded quickstart.
    #[arg(short, long = "config", value_name = "FILE")]
    config: Vec<PathBuf>,
    /// A directory whose config files (*.toml, *.yaml, *.yml, *.json) are all read.
    #[arg(long = "config-dir", value_name = "DIR")]
    config_dir: Vec<PathBuf>,
}

impl ConfigArgs {
    /// The paths given, else /etc/tapline's config files, else none (the embedded quickstart).
    fn paths(&self) -> ConfigPaths {
        ConfigPaths { files: self.config.clone(), dirs: self.config_dir.clone() }.or_installed(Path::new(INSTALLED_CONFIG_DIR))
    }
}

#[derive(Subcommand)]
enum Command {
    /// Run the pipeline.
    Run {
        #[command(flatten)]
        config: ConfigArgs,
        /// Reload when a config file changes (as on SIGHUP).
        #[arg(short, long)]
        watch_config: bool,
        /// How long shutdown may take to drain events in flight.
        #[arg(long, default_value_t = 60)]
        graceful_shutdown_limit_secs: u64,
        /// Threads that run the pipeline (default: the cores available,
        /// cgroup CPU limits included). Vector's `--threads`.
        #[arg(short, long, env = "TAPLINE_THREADS", value_parser = clap::value_parser!(u16).range(1..))]
        threads: Option<u16>,
    },
    /// Check a config; exits non-zero on any error.
    Validate {
        #[command(flatten)]
        config: ConfigArgs,
        /// Only check the config itself, not the machine (data_dir, ports).
        #[arg(long)]
        no_environment: bool,
    },
    /// Print the topology as a graph.
    Graph {
        #[command(flatten)]
        config: ConfigArgs,
        #[arg(long, value_enum, default_value_t = GraphFormat::Dot)]
        format: GraphFormat,
    },
    /// Run the config's unit tests ([[tests]]).
    Test {
        #[command(flatten)]
        config: ConfigArgs,
    },
    /// Show a config file in another format (TOML, YAML, JSON); comments are not carried.
    Convert {
        /// The file to convert; its format is chosen by its extension.
        file: PathBuf,
        /// The format to write.
        #[arg(long, value_enum)]
        to: ConvertTo,
    },
    /// Run a VRL program on JSON events, one per line, as `remap` runs it; prints each event after it.
    Vrl {
        /// The program's text.
        #[arg(short = 'p', long, conflicts_with = "file", required_unless_present = "file")]
        program: Option<String>,
        /// A file holding the program.
        #[arg(short, long)]
        file: Option<PathBuf>,
        /// The events (a JSON object per line); standard input when left out.
        #[arg(short, long)]
        input: Option<PathBuf>,
    },
    /// List the component types.
    List,
}

#[derive(Clone, Copy, ValueEnum)]
enum ConvertTo {
    Toml,
    Yaml,
    Json,
}

#[derive(Clone, Copy, ValueEnum)]
enum GraphFormat {
    Dot,
    Mermaid,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("TAPLINE_LOG").unwrap_or_else(|_| "info".into()))
        .init();
    let code = match cli.command {
        Command::Run { config, watch_config, graceful_shutdown_limit_secs, threads } => {
            let mut builder = tokio::runtime::Builder::new_multi_thread();
            if let Some(threads) = threads {
                builder.worker_threads(threads.into());
            }
            let runtime = match builder.enable_all().build() {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("error: cannot start the runtime: {e}");
                    return ExitCode::FAILURE;
                }
            };
            runtime.block_on(app::run(RunOptions {
                paths: config.paths(),
                watch_config,
                graceful_shutdown_limit: Duration::from_secs(graceful_shutdown_limit_secs),
            }))
        }
        Command::Validate { config, no_environment } => validate(&config.paths(), no_environment),
        Command::Graph { config, format } => match app::load(&config.paths()) {
            Ok(cfg) => {
                print!(
                    "{}",
                    match format {
                        GraphFormat::Dot => tapline::graph_view::dot(&cfg),
                        GraphFormat::Mermaid => tapline::graph_view::mermaid(&cfg),
                    }
                );
                exit::OK
            }
            Err(errors) => {
                app::report(&errors);
                exit::CONFIG
            }
        },
        Command::Test { config } => unit_tests(&config.paths()),
        Command::Convert { file, to } => {
            let to = match to {
                ConvertTo::Toml => Format::Toml,
                ConvertTo::Yaml => Format::Yaml,
                ConvertTo::Json => Format::Json,
            };
            match tapline::config::convert(&file, to) {
                Ok(text) => {
                    print!("{text}");
                    exit::OK
                }
                Err(error) => {
                    app::report(&[error]);
                    exit::CONFIG
                }
            }
        }
        Command::Vrl { program, file, input } => run_vrl(program, file, input),
        Command::List => {
            for kind in [ComponentKind::Source, ComponentKind::Transform, ComponentKind::Sink] {
                println!("{}s:", kind.as_str());
                for t in registry::TYPES.iter().filter(|t| t.kind == kind) {
                    match t.missing_feature {
                        None => println!("  {:<23} {}", t.name, t.description),
                        Some(feature) => println!("  {:<23} (not in this build: needs the `{feature}` feature) {}", t.name, t.description),
                    }
                }
            }
            exit::OK
        }
    };
    ExitCode::from(code.clamp(0, 255) as u8)
}

fn validate(paths: &ConfigPaths, no_environment: bool) -> i32 {
    let config = match app::load(paths) {
        Ok(config) => config,
        Err(errors) => {
            app::report(&errors);
            eprintln!("invalid: {} error(s)", errors.len());
            return exit::CONFIG;
        }
    };
    app::report(&config.warnings);
    if !no_environment {
        let problems = app::check_environment(&config);
        if !problems.is_empty() {
            app::report(&problems);
            return exit::CONFIG;
        }
    }
    println!("valid: {} component(s), {} warning(s)", config.components.len(), config.warnings.len());
    exit::OK
}

/// `tapline vrl`: each input line through the program; a line that is not a
/// JSON object, or a run that fails, is reported on standard error and skipped.
fn run_vrl(program: Option<String>, file: Option<PathBuf>, input: Option<PathBuf>) -> i32 {
    let source = match (program, file) {
        (Some(text), _) => text,
        (None, Some(path)) => match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) => {
                eprintln!("error: cannot read {}: {e}", path.display());
                return exit::CONFIG;
            }
        },
        (None, None) => unreachable!("clap requires one"),
    };
    let mut program = match tapline::transforms::util::VrlProgram::compile(&source, false) {
        Ok(program) => program,
        Err(e) => {
            eprintln!("{e}");
            return exit::CONFIG;
        }
    };
    let reader: Box<dyn std::io::BufRead> = match &input {
        Some(path) => match std::fs::File::open(path) {
            Ok(f) => Box::new(std::io::BufReader::new(f)),
            Err(e) => {
                eprintln!("error: cannot read {}: {e}", path.display());
                return exit::CONFIG;
            }
        },
        None => Box::new(std::io::stdin().lock()),
    };
    let mut failed = 0;
    for (number, line) in std::io::BufRead::lines(reader).enumerate() {
        let Ok(line) = line else { break };
        if line.trim().is_empty() {
            continue;
        }
        let mut event = match serde_json::from_str::<tapline::event::Value>(&line) {
            Ok(event @ tapline::event::Value::Object(_)) => event,
            _ => {
                eprintln!("line {}: not a JSON object", number + 1);
                failed += 1;
                continue;
            }
        };
        match program.run(&mut event) {
            Ok(_) => println!("{}", serde_json::to_string(&event).unwrap_or_default()),
            Err(e) => {
                eprintln!("line {}: {e}", number + 1);
                failed += 1;
            }
        }
    }
    if failed > 0 {
        exit::FAILURE
    } else {
        exit::OK
    }
}

fn unit_tests(paths: &ConfigPaths) -> i32 {
    let config = match app::load(paths) {
        Ok(config) => config,
        Err(errors) => {
            app::report(&errors);
            return exit::CONFIG;
        }
    };
    if config.tests.is_empty() {
        eprintln!("error: the config has no [[tests]]");
        return exit::CONFIG;
    }
    let mut failed = 0;
    for test in &config.tests {
        match test.run(&config) {
            Ok(()) => println!("test {} ... passed", test.name),
            Err(failures) => {
                failed += 1;
                println!("test {} ... FAILED", test.name);
                for f in failures {
                    println!("  {f}");
                }
            }
        }
    }
    println!("{} passed, {} failed", config.tests.len() - failed, failed);
    if failed > 0 {
        exit::FAILURE
    } else {
        exit::OK
    }
}
