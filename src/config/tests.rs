//! Each kind of config error, with the place it must point at.

use super::*;

fn env(name: &str) -> Option<String> {
    (name == "OUT_DIR").then(|| "/tmp/out".to_string())
}

fn load_one(text: &str) -> Result<Config, Vec<Diagnostic>> {
    load_from_texts(&[("p.toml".to_string(), text.to_string())], &env)
}

/// The first error, as `line:column: message` plus its help.
fn first_error(text: &str) -> (String, String) {
    let errors = load_one(text).expect_err("config should be invalid");
    let d = &errors[0];
    let pos = d.pos.as_ref().expect("error should have a position");
    assert_eq!(&*pos.file, "p.toml");
    (format!("{}:{}: {}", pos.line, pos.column, d.message), d.help.clone().unwrap_or_default())
}

const GOOD: &str = r#"
[sources.kong]
type = "demo"

[sinks.out]
type = "blackhole"
inputs = ["kong"]
"#;

#[test]
fn good_config_loads() {
    let config = load_one(GOOD).unwrap();
    assert_eq!(config.components.len(), 2);
    assert!(config.warnings.is_empty());
}

#[test]
fn invalid_toml() {
    let (e, _) = first_error("[sources.kong]\ntype = \"demo\nx = 1\n");
    assert!(e.starts_with("2:13: invalid TOML"), "{e}");
}

#[test]
fn unknown_field_suggests() {
    let (e, help) = first_error("[sources.kong]\ntype = \"demo\"\nrat = 5\n[sinks.o]\ntype = \"blackhole\"\ninputs = [\"kong\"]\n");
    assert!(e.starts_with("3:1: unknown field `rat`"), "{e}");
    assert!(e.contains("in source `kong` (type `demo`)"), "{e}");
    assert_eq!(help, "did you mean `rate`?");
}

#[test]
fn unknown_nested_field() {
    let (e, help) =
        first_error("[sources.kong]\ntype = \"demo\"\n[sinks.o]\ntype = \"console\"\ninputs = [\"kong\"]\nencoding.codek = \"json\"\n");
    assert!(e.starts_with("6:10: unknown field `codek`"), "{e}");
    assert_eq!(help, "did you mean `codec`?");
}

#[test]
fn unknown_variant() {
    let (e, help) =
        first_error("[sources.kong]\ntype = \"demo\"\n[sinks.o]\ntype = \"console\"\ninputs = [\"kong\"]\nencoding.codec = \"jsn\"\n");
    assert!(e.starts_with("6:18: unknown variant `jsn`"), "{e}");
    assert_eq!(help, "did you mean `json`?");
}

#[test]
fn unknown_type_suggests() {
    let (e, help) = first_error("[sources.kong]\ntype = \"dmeo\"\n");
    assert_eq!(e, "2:8: unknown source type `dmeo`");
    assert_eq!(help, "did you mean `demo`?");
}

#[test]
fn missing_type() {
    let (e, _) = first_error("[sources.kong]\nrate = 1\n");
    assert_eq!(e, "1:10: source `kong` has no `type`");
}

#[test]
fn wrong_value_type() {
    let (e, _) = first_error("[sources.kong]\ntype = \"demo\"\nrate = \"fast\"\n");
    assert!(e.starts_with("3:8: invalid type: string \"fast\", expected f64"), "{e}");
}

#[test]
fn missing_input_suggests() {
    let (e, help) = first_error("[sources.kong]\ntype = \"demo\"\n[sinks.o]\ntype = \"blackhole\"\ninputs = [\"knog\"]\n");
    assert_eq!(e, "5:11: unknown input of `o`: `knog`");
    assert_eq!(help, "did you mean `kong`?");
}

#[test]
fn missing_named_output_suggests() {
    let text = "[sources.kong]\ntype = \"demo\"\n[transforms.r]\ntype = \"route\"\ninputs = [\"kong\"]\nroute.errors = '.status >= 500'\n\
                [sinks.o]\ntype = \"blackhole\"\ninputs = [\"r.error\", \"r._unmatched\"]\n";
    let (e, help) = first_error(text);
    assert_eq!(e, "9:11: unknown output of `r` `error`");
    assert_eq!(help, "did you mean `errors`?");
}

#[test]
fn no_default_output() {
    let text = "[sources.kong]\ntype = \"demo\"\n[transforms.r]\ntype = \"route\"\ninputs = [\"kong\"]\nroute.errors = 'true'\n\
                [sinks.o]\ntype = \"blackhole\"\ninputs = [\"r\"]\n";
    let (e, help) = first_error(text);
    assert_eq!(e, "9:11: `r` has no default output; read one of its named outputs");
    assert_eq!(help, "`r.errors`, `r._unmatched`");
}

#[test]
fn glob_matching_nothing() {
    let (e, _) = first_error("[sources.kong]\ntype = \"demo\"\n[sinks.o]\ntype = \"blackhole\"\ninputs = [\"nginx_*\"]\n");
    assert_eq!(e, "5:11: input pattern `nginx_*` of `o` matches no component");
}

#[test]
fn cycle() {
    let text = "[sources.kong]\ntype = \"demo\"\n[transforms.a]\ntype = \"remap\"\ninputs = [\"kong\", \"b\"]\nsource = '.'\n\
                [transforms.b]\ntype = \"remap\"\ninputs = [\"a\"]\nsource = '.'\n[sinks.o]\ntype = \"blackhole\"\ninputs = [\"b\"]\n";
    let (e, _) = first_error(text);
    assert!(e.starts_with("3:13: cycle: a -> b -> a") || e.starts_with("7:13: cycle: b -> a -> b"), "{e}");
}

#[test]
fn kind_mismatch() {
    let text = "[sources.self]\ntype = \"internal_metrics\"\n[transforms.shape]\ntype = \"remap\"\ninputs = [\"self\"]\nsource = '.'\n\
                [sinks.o]\ntype = \"blackhole\"\ninputs = [\"shape\"]\n";
    let (e, _) = first_error(text);
    assert_eq!(e, "5:11: transform `shape` (type `remap`) takes logs, but its input `self` gives metrics");
}

#[test]
fn duplicate_id() {
    let (e, _) = first_error("[sources.kong]\ntype = \"demo\"\n[sinks.kong]\ntype = \"blackhole\"\ninputs = [\"kong\"]\n");
    assert!(e.starts_with("3:8: component id `kong` is already used by the source at p.toml:1:10"), "{e}");
}

#[test]
fn unknown_top_level() {
    let (e, help) = first_error("[source.kong]\ntype = \"demo\"\n");
    assert_eq!(e, "1:2: unknown top-level option `source`");
    assert_eq!(help, "did you mean `sources`?");
}

#[test]
fn bad_vrl() {
    let text = "[sources.kong]\ntype = \"demo\"\n[transforms.t]\ntype = \"remap\"\ninputs = [\"kong\"]\nsource = '.x = upcase(.y'\n\
                [sinks.o]\ntype = \"blackhole\"\ninputs = [\"t\"]\n";
    let (e, _) = first_error(text);
    assert!(e.starts_with("3:13: transform `t` (type `remap`): invalid VRL program"), "{e}");
}

#[test]
fn missing_env_var() {
    let (e, help) = first_error("[sources.kong]\ntype = \"demo\"\nrate = ${RATE}\n");
    assert_eq!(e, "3:8: environment variable `RATE` is not set");
    assert!(help.contains("${RATE:-value}"), "{help}");
}

#[test]
fn env_interpolation_and_default() {
    let text = "[sources.kong]\ntype = \"demo\"\nrate = ${RATE:-7}\n[sinks.o]\ntype = \"file\"\ninputs = [\"kong\"]\npath = \"${OUT_DIR}/x.log\"\nencoding.codec = \"json\"\n";
    let config = load_one(text).unwrap();
    assert!(format!("{:?}", config.components["kong"].config).contains("rate: 7.0"));
    assert!(format!("{:?}", config.components["o"].config).contains("/tmp/out/x.log"));
}

#[test]
fn no_inputs() {
    let (e, _) = first_error("[sources.kong]\ntype = \"demo\"\n[sinks.o]\ntype = \"blackhole\"\n");
    assert_eq!(e, "3:8: sink `o` has no `inputs`");
}

#[test]
fn unread_output_warns() {
    let text = "[sources.kong]\ntype = \"demo\"\n[sources.other]\ntype = \"demo\"\n[sinks.o]\ntype = \"blackhole\"\ninputs = [\"kong\"]\n";
    let config = load_one(text).unwrap();
    assert_eq!(config.warnings.len(), 1);
    assert_eq!(
        config.warnings[0].to_string(),
        "p.toml:3:10: warning: nothing reads output `other` of source `other`: its events will be discarded (and counted)"
    );
}

#[test]
fn files_merge_and_conflict() {
    let a = ("a.toml".to_string(), "data_dir = \"/tmp/a\"\n[sources.kong]\ntype = \"demo\"\n".to_string());
    let b = ("b.toml".to_string(), "[sinks.o]\ntype = \"blackhole\"\ninputs = [\"kong\"]\n".to_string());
    let config = load_from_texts(&[a.clone(), b], &env).unwrap();
    assert_eq!(config.components.len(), 2);
    let c = ("c.toml".to_string(), "data_dir = \"/tmp/c\"\n[sinks.o]\ntype = \"blackhole\"\ninputs = [\"kong\"]\n".to_string());
    let errors = load_from_texts(&[a, c], &env).unwrap_err();
    assert_eq!(errors[0].to_string(), "c.toml:1:1: error: `data_dir` is set differently in two places (first at a.toml:1:1)");
}

#[test]
fn glob_inputs_resolve() {
    let text = "[sources.kong_a]\ntype = \"demo\"\n[sources.kong_b]\ntype = \"demo\"\n[sources.other]\ntype = \"demo\"\n\
                [sinks.o]\ntype = \"blackhole\"\ninputs = [\"kong_*\", \"other\"]\n";
    let config = load_one(text).unwrap();
    let upstream: Vec<String> = config.components["o"].upstream().map(|o| o.to_string()).collect();
    assert_eq!(upstream, ["kong_a", "kong_b", "other"]);
}

#[test]
fn typed_condition() {
    let text = "[sources.kong]\ntype = \"demo\"\n[transforms.f]\ntype = \"filter\"\ninputs = [\"kong\"]\ncondition.type = \"vrl\"\ncondition.source = 'true'\n\
                [sinks.o]\ntype = \"blackhole\"\ninputs = [\"f\"]\n";
    load_one(text).unwrap();
}

/// Given no paths, an installed tapline reads its directory's *.toml files;
/// an empty or missing directory leaves none (the embedded quickstart), and
/// paths given always win.
#[test]
fn without_paths_the_installed_directory_is_read_if_it_holds_toml() {
    let dir = tempfile::tempdir().unwrap();
    let none = ConfigPaths::default();
    assert!(none.clone().or_installed(dir.path()).dirs.is_empty(), "an empty directory is not a config");
    assert!(none.clone().or_installed(&dir.path().join("missing")).dirs.is_empty());
    std::fs::write(dir.path().join("pipeline.toml"), GOOD).unwrap();
    assert_eq!(none.clone().or_installed(dir.path()).dirs, vec![dir.path().to_path_buf()]);
    let given = ConfigPaths { files: vec!["my.toml".into()], dirs: Vec::new() };
    let kept = given.or_installed(dir.path());
    assert_eq!((kept.files, kept.dirs), (vec![PathBuf::from("my.toml")], Vec::new()));
}
