//! Each behaviour suite is a set of `pub async fn` cases and a macro that instantiates the
//! listed ones per implementation. A case missing from its macro's list would silently never
//! run; a listed name without a case would not compile only where the macro is used. Both are
//! caught here.

use std::collections::BTreeSet;

use crate::{read, root};

/// The suites: their files (cases may be spread over several, one macro instantiating them)
/// and the parameters that mark a function as a case (its only one; helpers take references or
/// more).
const SUITES: &[(&[&str], &[&str])] = &[
    (
        &[
            "crates/purser-testkit/src/store_suite.rs",
            "crates/purser-testkit/src/registry_suite.rs",
            "crates/purser-testkit/src/grant_suite.rs",
            "crates/purser-testkit/src/credit_suite.rs",
            "crates/purser-testkit/src/metering_suite.rs",
        ],
        &["store: Arc<dyn Store>"],
    ),
    (
        &["crates/purser-coord/tests/it/suite.rs"],
        &["factory: &impl Factory", "factory: &F"],
    ),
];

/// The cases defined in `source`: each `pub async fn` (signature on one line or wrapped, with
/// or without generics) whose only parameter is one of `markers`.
fn cases(source: &str, markers: &[&str]) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for (index, _) in source.match_indices("pub async fn ") {
        let rest = &source[index + "pub async fn ".len()..];
        let Some(open) = rest.find('(') else { continue };
        let name = rest[..open].split('<').next().unwrap_or("").trim();
        let Some(close) = rest[open..].find(')') else {
            continue;
        };
        let params: Vec<&str> = rest[open + 1..open + close]
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .collect();
        if let [only] = params.as_slice()
            && markers.contains(
                &only
                    .split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" ")
                    .as_str(),
            )
        {
            found.insert(name.to_owned());
        }
    }
    found
}

/// The names listed in the macros of `source`: what follows `@tests $factory;` or
/// `@cases $factory;` up to the closing parenthesis.
fn listed(source: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for marker in ["@tests $factory;", "@cases $factory;"] {
        for (index, _) in source.match_indices(marker) {
            let rest = &source[index + marker.len()..];
            // The macro's own rule (`@tests $factory:path; $($name:ident)…`) has no list.
            let Some(end) = rest.find(')') else { continue };
            names.extend(
                rest[..end]
                    .split(',')
                    .map(str::trim)
                    .filter(|n| {
                        !n.is_empty() && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                    })
                    .map(str::to_owned),
            );
        }
    }
    names
}

#[test]
fn every_case_is_listed_in_its_suite_and_every_listed_case_exists() {
    let mut wrong = Vec::new();
    for (files, params) in SUITES {
        let sources: Vec<String> = files.iter().map(|f| read(&root().join(f))).collect();
        let defined: BTreeSet<String> = sources.iter().flat_map(|s| cases(s, params)).collect();
        let named: BTreeSet<String> = sources.iter().flat_map(|s| listed(s)).collect();
        assert!(
            !defined.is_empty() && !named.is_empty(),
            "{files:?} define and list cases"
        );
        for case in defined.difference(&named) {
            wrong.push(format!(
                "{case} ({files:?}) is in no suite macro: it never runs"
            ));
        }
        for name in named.difference(&defined) {
            wrong.push(format!(
                "{name} is listed but no case {name}({params:?}) exists"
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn the_parsers_find_cases_and_lists() {
    let source = "pub async fn listed_case(store: Arc<dyn Store>) {}\n\
                  pub async fn forgotten(\n    store: Arc<dyn Store>,\n) {}\n\
                  pub async fn generic<F: Factory>(factory: &F) {}\n\
                  pub async fn helper(store: &Arc<dyn Store>, n: u8) {}\n\
                  $crate::s!(@tests $factory;\n    listed_case,\n);";
    let defined = cases(source, &["store: Arc<dyn Store>", "factory: &F"]);
    assert_eq!(defined.len(), 3, "{defined:?}");
    let named = listed(source);
    assert_eq!(named.into_iter().collect::<Vec<_>>(), ["listed_case"]);
    assert!(defined.contains("forgotten"), "a case left out is seen");
}
