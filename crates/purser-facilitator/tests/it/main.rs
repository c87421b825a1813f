//! The facilitator over real storage (SQLite, PostgreSQL) and a real anvil chain.

mod faults;
mod settle;
mod support;
