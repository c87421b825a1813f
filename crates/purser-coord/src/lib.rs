//! Purser's coordination backends: implementations of
//! [`purser_domain::coord::Coordination`].
//!
//! - [`RedisCoordination`]: Redis, shared by every Purser instance. Commands go over one
//!   auto-reconnecting multiplexed connection; each subscription has a dedicated pub/sub
//!   connection that reconnects on its own and reports [`Notification::Gap`] when it does.
//! - [`MemoryCoordination`]: an in-process map for the embedded single-process default, with
//!   the same semantics and a bound on the number of keys it holds.
//!
//! Both namespace what they store: a value put under `key` lives at `<prefix>kv:<key>`, a rate
//! limit counted under `key` at `<prefix>rl:<key>` (so the two never collide), and a channel is
//! `<prefix><channel>`. Both reject the same inputs with [`ErrorCode::InvalidInput`]: an empty
//! or oversized key or channel, an oversized value, a zero or oversized TTL, a zero or
//! impossible rate (see [`limits`]). TTLs are rounded up to whole milliseconds.
//!
//! Rate limits are GCRA (the generic cell rate algorithm): `limit` attempts per `window`,
//! smoothed to one every `window / limit`, with a burst of up to `limit`. The arithmetic lives
//! once in Rust (used by the memory backend) and is mirrored by a Lua script that runs inside
//! Redis on Redis's clock, so every instance agrees.
//!
//! [`Notification::Gap`]: purser_domain::coord::Notification::Gap
//! [`ErrorCode::InvalidInput`]: purser_domain::ErrorCode::InvalidInput

mod gcra;
pub mod limits;
mod memory_backend;
mod redis_backend;

pub use memory_backend::{MemoryCoordination, MemoryCoordinationConfig};
pub use redis_backend::{RedisCoordination, RedisCoordinationConfig};

/// The namespace, inside a backend's prefix, of values stored with `put` and friends.
const VALUE_NAMESPACE: &str = "kv:";
/// The namespace, inside a backend's prefix, of rate-limit state.
const RATE_LIMIT_NAMESPACE: &str = "rl:";
