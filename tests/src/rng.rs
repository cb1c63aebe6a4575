//! xorshift64*: enough randomness to pick kill moments, reproducible from
//! the printed seed (`CALLVAULT_TEST_SEED`).

pub struct Rng(u64);

impl Rng {
    /// Seeded from `CALLVAULT_TEST_SEED`, or from the clock; the seed is
    /// printed so a failure can be replayed.
    pub fn from_env(test: &str) -> Self {
        let seed = std::env::var("CALLVAULT_TEST_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(1, |d| d.as_nanos() as u64)
            });
        eprintln!("{test}: CALLVAULT_TEST_SEED={seed}");
        Self(seed.max(1))
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number in `range`.
    pub fn between(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next_u64() % (hi - lo).max(1)
    }
}
