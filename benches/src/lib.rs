//! Criterion benchmarks of Omniman's hot paths (see `benches/` and `docs/benchmarks.md`), and
//! the libraries behind the HTTP load tool `omniman-loadgen` (see [`load`]) and the event
//! stream benchmark `omniman-eventbench` (see [`events`]); both in `docs/performance.md`.

pub mod events;
pub mod load;
pub mod tool;
