pub mod siwx;
