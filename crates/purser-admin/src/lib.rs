//! The admin GraphQL API (`POST /graphql`, GraphiQL on `GET /graphql`): tenants and API keys
//! now, every service's objects as they arrive. Only this crate knows async-graphql; it reaches
//! data through the domain's repository traits and the services (registry, metering), and
//! knows no SQL.

mod bounds;
mod context;
mod error;
mod escrow;
mod grants;
mod handler;
mod metering;
mod mutation;
mod pagination;
mod payments;
mod query;
mod registry;
mod routing;
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

/// Limits on what one GraphQL request may ask for, one for every dimension of a request.
///
/// The size limits are checked before async-graphql parses or validates a document (module
/// `bounds`), so that the work done on any request is linear in a small bounded size: its
/// text first (bytes, tokens, bracket nesting), then the parsed document (operations,
/// fragments, fields and aliases once fragments are expanded, directives, input values), then
/// the variables. `max_depth` and `max_complexity` are async-graphql's own, checked during
/// validation.
#[derive(Debug, Clone, Copy)]
pub struct GraphqlLimits {
    /// Deepest nesting of selections. The standard introspection query needs 13 (14 with
    /// graphql-js 17's nine levels of `ofType`).
    pub max_depth: usize,
    /// Largest total cost; a connection field costs its page size times its selection.
    pub max_complexity: usize,
    /// Longest document, in bytes.
    pub max_document_bytes: usize,
    /// Most tokens in a document (names, punctuators, numbers, strings; not whitespace,
    /// commas or comments).
    pub max_tokens: usize,
    /// Deepest nesting of `{`, `[` and `(` in the document's text, outside strings and
    /// comments. This is what keeps the recursive parser's stack small; at most
    /// [`Self::MAX_NESTING`].
    pub max_nesting: usize,
    /// Deepest nesting of list and object values written in the document (arguments,
    /// directive arguments, default values).
    pub max_input_depth: usize,
    /// Most fields once every fragment spread is replaced by its fragment, over all
    /// operations (and over each fragment on its own).
    pub max_fields: usize,
    /// Most aliased fields once fragments are expanded, counted as `max_fields` is.
    pub max_aliases: usize,
    /// Most operations in one document.
    pub max_operations: usize,
    /// Most fragment definitions in one document.
    pub max_fragments: usize,
    /// Most directives written in one document.
    pub max_directives: usize,
    /// Deepest nesting of the `variables` (and `extensions`) JSON; the object itself is 1.
    pub max_variables_depth: usize,
    /// Most JSON values (objects, arrays and scalars alike) in `variables` and `extensions`.
    pub max_variables_nodes: usize,
}

impl GraphqlLimits {
    /// The most `max_nesting`, `max_input_depth` and `max_variables_depth` may allow: the
    /// parser recurses once per level of brackets, and a worker's stack is 2 MiB. A few
    /// hundred levels overflowed it (which aborts the process); 64 is what async-graphql's
    /// parser allows selections.
    pub const MAX_NESTING: usize = 64;
}

impl Default for GraphqlLimits {
    fn default() -> Self {
        Self {
            max_depth: 16,
            max_complexity: 2_000,
            max_document_bytes: 64 * 1024,
            max_tokens: 10_000,
            max_nesting: 32,
            max_input_depth: 16,
            max_fields: 2_000,
            max_aliases: 200,
            max_operations: 20,
            max_fragments: 100,
            max_directives: 50,
            max_variables_depth: 32,
            max_variables_nodes: 10_000,
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
    pub limits: GraphqlLimits,
}

/// The services GraphQL resolvers read and change.
pub struct AdminServices {
    pub store: Arc<dyn Store>,
    pub registry: Arc<Registry>,
    pub metering: Arc<Metering>,
    pub authenticator: Arc<Authenticator>,
    pub invalidator: Arc<Invalidator>,
    /// The settlement router: live quotes, and the order of `paymentRequired`'s offers.
    pub settlement_router: purser_router::Router,
    /// Carries out merchants' commands on escrowed payments; `None` where no facilitator runs
    /// (the escrow fields then answer `unavailable`).
    pub escrow: Option<Arc<dyn purser_domain::escrow::EscrowDesk>>,
}

impl AdminState {
    pub fn new(services: AdminServices, limits: GraphqlLimits, graphiql: bool) -> Self {
        let AdminServices {
            store,
            registry,
            metering,
            authenticator,
            invalidator,
            settlement_router,
            escrow,
        } = services;
        let mut schema = schema_builder(limits)
            .data(settlement_router)
            .data(store)
            .data(registry)
            .data(metering)
            .data(invalidator);
        if let Some(escrow) = escrow {
            schema = schema.data(escrow);
        }
        Self {
            schema: schema.finish(),
            authenticator,
            graphiql,
            limits,
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
