//! Catalog search over `resources.search_vector`, a generated `tsvector` weighted A to D (name,
//! tags, description, schema fields) under a partial GIN index of the visible catalog.

use purser_domain::registry::CatalogFilter;
use purser_store_sql::Sql;
use purser_store_sql::registry::{
    RESOURCE_FROM, RegistryDialect, push_catalog_filter, resource_columns,
};

use crate::PgDialect;

impl RegistryDialect for PgDialect {
    fn catalog_search(
        words: &[String],
        filter: &CatalogFilter,
        offset: u64,
        limit: u32,
    ) -> Sql<Self> {
        // Any word may match; ts_rank_cd ranks resources matching more (and weightier) words
        // first, with the name weighing most. The words are letters and digits only, so they
        // are safe tsquery operands.
        let mut sql = Sql::new(format!(
            "SELECT {}, ts_rank_cd(r.search_vector, q.query) AS rank{RESOURCE_FROM} \
             CROSS JOIN to_tsquery('english', ",
            resource_columns::<Self>()
        ));
        sql.push_arg(words.join(" | ")).push(") AS q(query)");
        push_catalog_filter(&mut sql, filter);
        sql.push(" AND r.search_vector @@ q.query ORDER BY rank DESC, r.id LIMIT ")
            .push_arg(i64::from(limit) + 1)
            .push(" OFFSET ")
            .push_arg(i64::try_from(offset).unwrap_or(i64::MAX));
        sql
    }
}
