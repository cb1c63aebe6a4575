//! Helpers shared by callvault's end-to-end tests: a small deterministic
//! random source, seeded and printed so a failing round can be replayed.

pub mod rng;
