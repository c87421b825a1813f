//! Relay connections over the domain's keyset pages. Cursors are opaque to clients: the
//! URL-safe base64 of the item's id.

use async_graphql::OutputType;
use async_graphql::connection::{Connection, CursorType, Edge};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use purser_domain::ErrorCode;
use purser_domain::page::{Page, PageRequest};
use uuid::Uuid;

use crate::error::{GqlError, GqlResult};

/// An opaque position in a listing ordered by id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdCursor(pub Uuid);

/// A cursor this API did not issue.
#[derive(Debug)]
pub struct InvalidCursor;

impl std::fmt::Display for InvalidCursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the cursor is not one this API issued")
    }
}

impl CursorType for IdCursor {
    type Error = InvalidCursor;

    fn decode_cursor(s: &str) -> Result<Self, Self::Error> {
        URL_SAFE_NO_PAD
            .decode(s)
            .ok()
            .and_then(|bytes| Uuid::from_slice(&bytes).ok())
            .map(IdCursor)
            .ok_or(InvalidCursor)
    }

    fn encode_cursor(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.0.as_bytes())
    }
}

/// Relay arguments, as every connection field takes them.
#[derive(Debug, Default, Clone)]
pub struct RelayArgs {
    pub first: Option<i32>,
    pub after: Option<String>,
    pub last: Option<i32>,
    pub before: Option<String>,
}

impl RelayArgs {
    pub fn page_request(&self) -> GqlResult<PageRequest> {
        let size = |n: Option<i32>, name: &str| -> GqlResult<Option<u32>> {
            n.map(|n| {
                u32::try_from(n).map_err(|_| {
                    GqlError::new(
                        ErrorCode::InvalidInput,
                        format!("`{name}` must not be negative"),
                    )
                })
            })
            .transpose()
        };
        let cursor = |c: &Option<String>| -> GqlResult<Option<Uuid>> {
            c.as_deref()
                .map(|c| {
                    IdCursor::decode_cursor(c)
                        .map(|c| c.0)
                        .map_err(|e| GqlError::new(ErrorCode::InvalidInput, e.to_string()))
                })
                .transpose()
        };
        Ok(PageRequest::relay(
            size(self.first, "first")?,
            cursor(&self.after)?,
            size(self.last, "last")?,
            cursor(&self.before)?,
        )?)
    }
}

/// Builds the connection for `page`, read for `request`.
pub fn connection<T: OutputType>(
    request: &PageRequest,
    page: Page<T>,
    id_of: impl Fn(&T) -> Uuid,
) -> Connection<IdCursor, T> {
    let (has_previous_page, has_next_page) = if request.from_end {
        (page.has_more, request.before.is_some())
    } else {
        (request.after.is_some(), page.has_more)
    };
    let mut connection = Connection::new(has_previous_page, has_next_page);
    connection.edges.extend(
        page.items
            .into_iter()
            .map(|item| Edge::new(IdCursor(id_of(&item)), item)),
    );
    connection
}
