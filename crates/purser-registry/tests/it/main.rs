//! The registry against real HTTP servers and a real store.

mod prober;
