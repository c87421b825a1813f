//! The admin GraphQL API (`POST /graphql`, GraphiQL on `GET /graphql`): tenants and API keys
//! now, every service's objects as they arrive. Only this crate knows async-graphql; it reaches
//! data through the domain's repository traits and the services (registry, metering), and
//! knows no SQL.

mod context;
mod error;
mod grants;
mod handler;
mod metering;
mod mutation;
mod pagination;
mod payments;
mod query;
mod registry;
mod types;

use std::sync::Arc;

use async_graphql::{EmptySubscription, Schema};
use purser_domain::auth::Authenticator;
use purser_domain::coord::Invalidator;
use purser_domain::repo::Store;
use purser_metering::Metering;
use purser_registry::Registry;

pub use handler::router;

pub type AdminSchema = Schema<query::QueryRoot, mutation::MutationRoot, EmptySubscription>;

/// Limits on what one GraphQL request may ask for.
#[derive(Debug, Clone, Copy)]
pub struct GraphqlLimits {
    /// Deepest nesting of selections. The standard introspection query needs 13.
    pub max_depth: usize,
    /// Largest total cost; a connection field costs its page size times its selection.
    pub max_complexity: usize,
}

impl Default for GraphqlLimits {
    fn default() -> Self {
        Self {
            max_depth: 16,
            max_complexity: 2_000,
        }
    }
}

/// What the admin router needs.
#[derive(Clone)]
pub struct AdminState {
    pub schema: AdminSchema,
    pub authenticator: Arc<Authenticator>,
    /// Serve GraphiQL on `GET /graphql`.
    pub graphiql: bool,
}

impl AdminState {
    pub fn new(
        store: Arc<dyn Store>,
        registry: Arc<Registry>,
        metering: Arc<Metering>,
        authenticator: Arc<Authenticator>,
        invalidator: Arc<Invalidator>,
        limits: GraphqlLimits,
        graphiql: bool,
    ) -> Self {
        Self {
            schema: schema_builder(limits)
                .data(store)
                .data(registry)
                .data(metering)
                .data(invalidator)
                .finish(),
            authenticator,
            graphiql,
        }
    }
}

fn schema_builder(
    limits: GraphqlLimits,
) -> async_graphql::SchemaBuilder<query::QueryRoot, mutation::MutationRoot, EmptySubscription> {
    Schema::build(
        query::QueryRoot::default(),
        mutation::MutationRoot::default(),
        EmptySubscription,
    )
    .limit_depth(limits.max_depth)
    .limit_complexity(limits.max_complexity)
    .limit_recursive_depth(32)
    .limit_directives(16)
}

/// The schema in SDL, as committed in `schema.graphql`.
pub fn sdl() -> String {
    schema_builder(GraphqlLimits::default()).finish().sdl()
}
