//! Chain access: the configured rails (EVM chains with their RPC endpoints, assets and signers),
//! EIP-3009 verification and settlement through alloy, signer nonces, receipts: what production
//! settles with. Knows no HTTP, GraphQL or SQL, and no development chain (the anvil devnet is
//! `purser-devnet`).

/// The primitive types this crate's API speaks in (addresses, words, amounts), for its
/// callers to name without depending on alloy.
pub use alloy::primitives;

pub mod auth_capture;
pub mod config;
pub mod eip3009;
pub mod fees;
pub mod rails;
pub mod rpc;
