//! Criterion benchmarks of Omniman's hot paths; see `benches/` and `docs/benchmarks.md`.
