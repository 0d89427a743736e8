//! Replays the committed fuzz corpora (`fuzz/corpus/<target>/`) through the target bodies on
//! stable, so every input the fuzzers kept, and every regression seed, is checked by
//! `cargo test` without a nightly toolchain or libFuzzer.

use std::fs;
use std::path::{Path, PathBuf};

use anycast6_fuzz_targets::TARGETS;

fn corpus_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../corpus")
}

/// The files of one target's corpus, in a stable order so a failure names the same input
/// every run.
fn inputs(target: &str) -> Vec<PathBuf> {
    let dir = corpus_root().join(target);
    assert!(
        dir.is_dir(),
        "corpus directory {} is missing; run fuzz/seed.py",
        dir.display()
    );
    let mut files: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|path| path.is_file())
        .collect();
    files.sort();
    files
}

#[test]
fn every_target_has_a_non_empty_corpus() {
    for (name, _) in TARGETS {
        assert!(!inputs(name).is_empty(), "corpus of `{name}` is empty");
    }
}

#[test]
fn corpus_directories_match_the_targets() {
    let mut dirs: Vec<String> = fs::read_dir(corpus_root())
        .expect("fuzz/corpus exists")
        .map(|entry| entry.expect("directory entry"))
        .filter(|entry| entry.path().is_dir())
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .collect();
    dirs.sort();
    let mut names: Vec<String> = TARGETS.iter().map(|(name, _)| name.to_string()).collect();
    names.sort();
    assert_eq!(
        dirs, names,
        "a corpus without a target, or a target without a corpus"
    );
}

#[test]
fn replay_corpora() {
    let mut total = 0;
    for (name, target) in TARGETS {
        let files = inputs(name);
        for path in &files {
            let data = fs::read(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
            // Name the input before running it: a failed assertion inside the target then
            // points at the file to reproduce with `cargo fuzz run <target> <file>`.
            eprintln!("replay {name}: {}", path.display());
            target(&data);
        }
        println!("{name}: replayed {} inputs", files.len());
        total += files.len();
    }
    println!("total: replayed {total} inputs");
}
