//! Throwaway PostgreSQL databases: one per test, dropped when the test ends.

use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::{ConnectOptions, Connection};

/// A database created for one test. Dropping it drops the database.
pub struct TestDatabase {
    name: String,
    server: PgConnectOptions,
    url: String,
}

impl TestDatabase {
    /// Creates an empty database on the server at [`crate::database_url`].
    ///
    /// # Panics
    /// When the server cannot be reached: tests need it, and say so.
    pub async fn create() -> Self {
        let server_url = crate::database_url();
        let server: PgConnectOptions = server_url
            .parse()
            .unwrap_or_else(|e| panic!("DATABASE_URL `{server_url}` is not a PostgreSQL URL: {e}"));
        let mut admin = server.connect().await.unwrap_or_else(|e| {
            panic!(
                "PostgreSQL is not reachable at {server_url} ({e}). Start it, or point DATABASE_URL at \
                 a server; `cargo xtask test` starts a local one when it is installed."
            )
        });
        let name = crate::unique_name("purser_test");
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut admin)
            .await
            .expect("create test database");
        admin.close().await.ok();
        let url = database_url_for(&server_url, &name);
        Self { name, server, url }
    }

    /// The URL of this database.
    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn name(&self) -> &str {
        &self.name
    }
}

fn database_url_for(server_url: &str, database: &str) -> String {
    let (base, query) = match server_url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (server_url, None),
    };
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let base = match base[authority_start..].find('/') {
        Some(slash) => &base[..authority_start + slash],
        None => base,
    };
    match query {
        Some(q) => format!("{base}/{database}?{q}"),
        None => format!("{base}/{database}"),
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let name = std::mem::take(&mut self.name);
        let server = self.server.clone();
        // Drop from a thread of its own: this may run inside a runtime that is shutting down.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime to drop a test database");
            runtime.block_on(async move {
                let mut admin: PgConnection = server.connect().await.ok()?;
                sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                    "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                )))
                .execute(&mut admin)
                .await
                .ok()
            })
        });
        let _ = dropped.join();
    }
}

#[cfg(test)]
mod tests {
    use super::database_url_for;

    #[test]
    fn swaps_the_database_and_keeps_the_rest() {
        assert_eq!(
            database_url_for("postgres://u:p@h:5432/test?sslmode=disable", "x"),
            "postgres://u:p@h:5432/x?sslmode=disable"
        );
        assert_eq!(database_url_for("postgres://h", "x"), "postgres://h/x");
    }
}
