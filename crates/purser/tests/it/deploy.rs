//! The deployment files stay true to the code: every `PURSER__*` variable they set is a real
//! configuration key with a valid value, and the image runs a real subcommand.

use std::path::{Path, PathBuf};

use clap::Parser;
use purser::cli::Cli;
use purser::config::Config;

fn repository_file(path: &str) -> String {
    let path: PathBuf = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(path);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// `PURSER__*` variables and their values from YAML lines such as `KEY: "value"` or
/// `- { name: KEY, value: "value" }`; a variable filled from a secret gets a sample value.
fn purser_variables(yaml: &str) -> Vec<(String, String)> {
    let sample_secret = |name: &str| match name {
        n if n.ends_with("DATABASE_URL") => "postgres://purser:secret@db:5432/purser".to_owned(),
        n if n.ends_with("REDIS_URL") => "redis://cache:6379".to_owned(),
        n => panic!("no sample value for secret {n}"),
    };
    let mut variables = Vec::new();
    let lines: Vec<&str> = yaml.lines().collect();
    for (i, line) in lines.iter().enumerate() {
        let Some(start) = line.find("PURSER__") else {
            continue;
        };
        let rest = &line[start..];
        let name: String = rest
            .chars()
            .take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_')
            .collect();
        let value = if let Some(v) = rest.split("value:").nth(1) {
            v.trim()
                .trim_end_matches('}')
                .trim()
                .trim_matches('"')
                .to_owned()
        } else if let Some((_, v)) = rest.split_once(':').filter(|(_, v)| !v.trim().is_empty()) {
            v.trim().trim_matches('"').to_owned()
        } else if lines
            .get(i + 1)
            .is_some_and(|next| next.contains("valueFrom"))
        {
            sample_secret(&name)
        } else {
            panic!("cannot read the value of {name} in: {line}");
        };
        variables.push((name, value));
    }
    variables
}

fn assert_loads(file: &str) {
    assert_variables_load(file, purser_variables(&repository_file(file)));
}

#[allow(clippy::result_large_err)] // figment::Jail's error type
fn assert_variables_load(file: &str, variables: Vec<(String, String)>) {
    assert!(
        variables.len() >= 2,
        "{file}: found too few variables: {variables:?}"
    );
    figment::Jail::expect_with(|jail| {
        jail.clear_env();
        for (name, value) in &variables {
            jail.set_env(name, value);
        }
        Config::load(None).map_err(|e| format!("{file}: {e}"))?;
        Ok(())
    });
}

#[test]
fn compose_file_configures_real_keys() {
    assert_loads("docker-compose.yml");
}

#[test]
fn kubernetes_manifest_configures_real_keys() {
    assert_loads("deploy/kubernetes/purser.yaml");
}

#[test]
fn dockerfile_builds_and_runs_the_binary() {
    let dockerfile = repository_file("Dockerfile");
    assert!(dockerfile.contains("cargo build --release --locked -p purser"));
    let variables = dockerfile
        .lines()
        .filter_map(|line| {
            line.trim()
                .trim_start_matches("ENV")
                .trim()
                .trim_end_matches('\\')
                .trim()
                .split_once('=')
        })
        .filter(|(name, _)| name.starts_with("PURSER__"))
        .map(|(name, value)| (name.to_owned(), value.to_owned()))
        .collect();
    assert_variables_load("Dockerfile", variables);
    let cmd = dockerfile
        .lines()
        .find(|l| l.starts_with("CMD"))
        .expect("a CMD");
    let args: Vec<String> = serde_json::from_str(cmd.trim_start_matches("CMD").trim()).unwrap();
    let mut argv = vec!["purser".to_owned()];
    argv.extend(args);
    Cli::try_parse_from(&argv).unwrap_or_else(|e| panic!("{argv:?}: {e}"));
}
