//! The committed `schema.graphql` is the schema the code serves. Regenerate it with
//! `cargo xtask schema` (or `PURSER_BLESS=1 cargo test -p purser-admin`).

use std::path::PathBuf;

mod api;
mod grants;
mod limits;
mod registry;
mod routing;

fn committed_schema_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../schema.graphql")
}

#[test]
fn committed_schema_matches_the_code() {
    let generated = purser_admin::sdl();
    let path = committed_schema_path();
    if std::env::var_os("PURSER_BLESS").is_some() {
        std::fs::write(&path, &generated).expect("write schema.graphql");
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "schema.graphql is stale: run `cargo xtask schema` and commit the result"
    );
}

#[test]
fn schema_has_no_field_that_reveals_a_secret_after_creation() {
    let sdl = purser_admin::sdl();
    let api_key = &sdl[sdl.find("type ApiKey {").expect("ApiKey type")..];
    let api_key = &api_key[..api_key.find("\n}").unwrap()];
    for forbidden in ["secret", "hash", "token"] {
        assert!(
            !api_key.to_lowercase().contains(forbidden),
            "ApiKey exposes `{forbidden}`"
        );
    }
    assert!(
        sdl.contains("type CreatedApiKey {"),
        "the secret is shown at creation only"
    );
}
