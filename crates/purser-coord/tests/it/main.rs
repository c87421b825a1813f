//! Integration tests of purser-coord: one behaviour suite, run over every backend, plus what
//! only Redis can show (connection loss, namespacing on the server).
//!
//! The Redis tests use the server at `REDIS_URL` (default `redis://127.0.0.1:6379`), each with
//! a key prefix of its own so they run in parallel; they fail, never skip, when it is not
//! there.

mod redis_only;
mod suite;
mod support;

mod memory {
    crate::suite!(crate::support::MemoryFactory);
}

mod redis {
    crate::suite!(crate::support::RedisFactory);
}
