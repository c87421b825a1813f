//! Every crate's internal dependencies (normal and build; tests may compose anything) must be
//! allowed by the "may use" column of ARCHITECTURE.md's "Who may know what" table, and every
//! crate must have a row there.

use std::collections::{BTreeMap, BTreeSet};

use crate::{read, root};

/// The table: crate → the internal crates it may use.
fn allowed() -> BTreeMap<String, BTreeSet<String>> {
    let architecture = read(&root().join("ARCHITECTURE.md"));
    let section = architecture
        .split("\n## Who may know what")
        .nth(1)
        .expect("ARCHITECTURE.md has a `## Who may know what` section");
    let section = section.split("\n## ").next().unwrap_or(section);
    let mut table = BTreeMap::new();
    for line in section.lines().filter(|l| l.starts_with("| `")) {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        // | crate | may use | knows | never knows |
        assert!(cells.len() >= 5, "a row of four cells: {line}");
        let name = cells[1].trim_matches('`').to_owned();
        let uses = cells[2]
            .split(',')
            .map(|c| c.trim().trim_matches('`').to_owned())
            .filter(|c| !c.is_empty() && c != "—")
            .collect();
        assert!(
            table.insert(name.clone(), uses).is_none(),
            "{name} has two rows"
        );
    }
    assert!(!table.is_empty(), "the table has rows");
    table
}

/// Every crate of the workspace: name → its internal normal and build dependencies.
fn crates() -> BTreeMap<String, BTreeSet<String>> {
    let mut crates = BTreeMap::new();
    let dir = root().join("crates");
    for entry in std::fs::read_dir(&dir).expect("crates/") {
        let manifest = entry.expect("an entry").path().join("Cargo.toml");
        if !manifest.is_file() {
            continue;
        }
        let parsed: toml::Value = toml::from_str(&read(&manifest)).expect("Cargo.toml parses");
        let name = parsed["package"]["name"]
            .as_str()
            .expect("a name")
            .to_owned();
        let mut internal = BTreeSet::new();
        for section in ["dependencies", "build-dependencies"] {
            if let Some(deps) = parsed.get(section).and_then(toml::Value::as_table) {
                internal.extend(
                    deps.keys()
                        .filter(|d| d.starts_with("purser") || *d == "xtask")
                        .cloned(),
                );
            }
        }
        crates.insert(name, internal);
    }
    crates
}

#[test]
fn every_internal_dependency_is_allowed_by_the_table() {
    let table = allowed();
    let crates = crates();
    let mut wrong = Vec::new();
    for (name, deps) in &crates {
        let Some(may) = table.get(name) else {
            wrong.push(format!("{name} has no row in ARCHITECTURE.md's table"));
            continue;
        };
        for dep in deps.difference(may) {
            wrong.push(format!(
                "{name} depends on {dep}, which the table does not allow"
            ));
        }
    }
    for name in table.keys().filter(|n| !crates.contains_key(*n)) {
        wrong.push(format!("the table names {name}, which is no crate"));
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn the_check_catches_a_dependency_the_table_forbids() {
    // The same comparison on a made-up crate, so the test above cannot pass vacuously.
    let table = allowed();
    let core = table.get("purser-core").expect("purser-core has a row");
    assert!(
        !core.contains("purser-domain"),
        "purser-core may use nothing of the domain"
    );
    let http = table.get("purser-http").expect("purser-http has a row");
    assert!(!http.contains("purser-store-postgres"));
}
