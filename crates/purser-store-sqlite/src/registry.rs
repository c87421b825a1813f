//! Catalog search over `resources_fts`, an FTS5 table with the resources as its external
//! content (porter stemming), ranked with `bm25` and column weights given at query time.

use purser_domain::registry::CatalogFilter;
use purser_store_sql::Sql;
use purser_store_sql::registry::{RegistryDialect, push_catalog_filter, resource_columns};

use crate::SqliteDialect;

impl RegistryDialect for SqliteDialect {
    fn catalog_search(
        words: &[String],
        filter: &CatalogFilter,
        offset: u64,
        limit: u32,
    ) -> Sql<Self> {
        // Any word may match; bm25 (lower is better) ranks resources matching more, rarer and
        // weightier words first, with the name weighing most. Each word is letters and digits
        // only, quoted, so the user's text never reaches FTS5's query syntax.
        let terms: Vec<String> = words.iter().map(|w| format!("\"{w}\"")).collect();
        let mut sql = Sql::new(format!(
            "SELECT {} FROM resources_fts f JOIN resources r ON r.rowid = f.rowid \
             JOIN resource_versions v ON v.resource_id = r.id AND v.version = r.current_version",
            resource_columns::<Self>()
        ));
        push_catalog_filter(&mut sql, filter);
        sql.push(" AND resources_fts MATCH ")
            .push_arg(terms.join(" OR "))
            .push(" ORDER BY bm25(resources_fts, 10.0, 5.0, 2.0, 1.0), r.id LIMIT ")
            .push_arg(i64::from(limit) + 1)
            .push(" OFFSET ")
            .push_arg(i64::try_from(offset).unwrap_or(i64::MAX));
        sql
    }
}
