//! Interop with the official x402 SDK (written next).
