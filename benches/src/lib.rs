//! Criterion benchmarks of Omniman's hot paths (see `benches/` and `docs/benchmarks.md`), and
//! the library behind the HTTP load tool `omniman-loadgen` (see [`load`] and
//! `docs/performance.md`).

pub mod load;
