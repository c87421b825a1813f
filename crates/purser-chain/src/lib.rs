//! Chain access: the configured rails (EVM chains with their RPC endpoints, assets and signers),
//! EIP-3009 verification and settlement through alloy, signer nonces, receipts; and the local
//! devnet of anvil chains used in development and tests. Knows no HTTP, GraphQL or SQL.

pub mod config;
pub mod devnet;
pub mod eip3009;
pub mod rails;
pub mod rpc;
