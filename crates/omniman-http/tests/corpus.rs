//! Replays the fuzz corpus (`fuzz/corpus/<target>/`) through the fuzz targets' own entry points
//! (`omniman_http::fuzzing`) on stable: every input that once found a crash, and the seeds, stay
//! regression tests of `cargo test` without a nightly toolchain or libFuzzer.

use std::path::{Path, PathBuf};

fn replay(target: &str, run: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus").join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("a directory entry").path())
        // The committed inputs only (fuzz/.gitignore): not what a local fuzzing run added.
        .filter(|path| {
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            path.is_file() && (name.starts_with("seed-") || name.starts_with("found-"))
        })
        .collect();
    files.sort();
    assert!(!files.is_empty(), "{} holds no inputs", dir.display());
    for file in files {
        let bytes = std::fs::read(&file).expect("a corpus file");
        let outcome = std::panic::catch_unwind(|| run(&bytes));
        assert!(outcome.is_ok(), "{} breaks an invariant", file.display());
    }
}

#[test]
fn op_batch_corpus() {
    replay("op_batch", omniman_http::fuzzing::op_batch);
}

#[test]
fn channel_config_corpus() {
    replay("channel_config", omniman_http::fuzzing::channel_config);
}

#[test]
fn request_body_corpus() {
    replay("request_body", omniman_http::fuzzing::request_body);
}
