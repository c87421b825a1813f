//! The facilitator over real storage (SQLite, PostgreSQL) and a real anvil chain.

mod bazaar;
mod faults;
mod settle;
mod support;
