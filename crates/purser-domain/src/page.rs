//! Keyset pagination over time-ordered ids, the storage half of Relay-style connections.

use uuid::Uuid;

use crate::error::{Error, ErrorCode};

/// The largest page any listing returns.
pub const MAX_PAGE_SIZE: u32 = 100;
/// The page size when the caller does not say.
pub const DEFAULT_PAGE_SIZE: u32 = 20;

/// Which slice of a listing ordered by id to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRequest {
    /// Only items after this id in the listing's order: ids strictly greater than it (strictly
    /// less in a newest-first listing).
    pub after: Option<Uuid>,
    /// Only items before this id in the listing's order: ids strictly less than it (strictly
    /// greater in a newest-first listing).
    pub before: Option<Uuid>,
    /// At most this many items (1..=[`MAX_PAGE_SIZE`]).
    pub limit: u32,
    /// Take the items nearest `before` (Relay's `last`) rather than nearest `after` (`first`).
    pub from_end: bool,
}

impl PageRequest {
    /// The first `limit` items.
    pub fn first(limit: u32) -> Result<Self, Error> {
        Self::relay(Some(limit), None, None, None)
    }

    /// Builds a request from Relay's `first`/`after`/`last`/`before`.
    pub fn relay(
        first: Option<u32>,
        after: Option<Uuid>,
        last: Option<u32>,
        before: Option<Uuid>,
    ) -> Result<Self, Error> {
        let (limit, from_end) = match (first, last) {
            (Some(_), Some(_)) => {
                return Err(Error::new(
                    ErrorCode::InvalidInput,
                    "pass either `first` or `last`, not both",
                ));
            }
            (Some(n), None) => (n, false),
            (None, Some(n)) => (n, true),
            (None, None) => (DEFAULT_PAGE_SIZE, false),
        };
        if limit == 0 || limit > MAX_PAGE_SIZE {
            return Err(Error::new(
                ErrorCode::InvalidInput,
                format!("page size must be between 1 and {MAX_PAGE_SIZE}"),
            ));
        }
        Ok(Self {
            after,
            before,
            limit,
            from_end,
        })
    }

    /// How many rows a store fetches: one more than the page, to learn whether more exist.
    pub fn fetch_limit(&self) -> i64 {
        i64::from(self.limit) + 1
    }

    /// Turns `fetch_limit` rows, in the order the store read them (the listing's order, or its
    /// reverse when `from_end`), into a page in the listing's order.
    pub fn finish<T>(&self, mut rows: Vec<T>) -> Page<T> {
        let has_more = rows.len() > self.limit as usize;
        rows.truncate(self.limit as usize);
        if self.from_end {
            rows.reverse();
        }
        Page {
            items: rows,
            has_more,
        }
    }
}

/// One page of a listing, in the listing's order: ascending ids unless the listing says
/// newest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// More items exist beyond this page in the direction of travel.
    pub has_more: bool,
}

impl<T> Page<T> {
    pub fn map<U>(self, f: impl FnMut(T) -> U) -> Page<U> {
        Page {
            items: self.items.into_iter().map(f).collect(),
            has_more: self.has_more,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_are_enforced() {
        assert!(PageRequest::relay(Some(0), None, None, None).is_err());
        assert!(PageRequest::relay(Some(101), None, None, None).is_err());
        assert!(PageRequest::relay(Some(1), None, Some(1), None).is_err());
        assert_eq!(
            PageRequest::relay(None, None, None, None).unwrap().limit,
            DEFAULT_PAGE_SIZE
        );
    }

    #[test]
    fn finish_trims_the_probe_row_and_restores_order() {
        let forward = PageRequest::first(2).unwrap();
        assert_eq!(
            forward.finish(vec![1, 2, 3]),
            Page {
                items: vec![1, 2],
                has_more: true
            }
        );
        let backward = PageRequest::relay(None, None, Some(2), None).unwrap();
        assert_eq!(
            backward.finish(vec![9, 8]),
            Page {
                items: vec![8, 9],
                has_more: false
            }
        );
    }
}
