//! The fuzzer's seed corpus (`fuzz/corpus/filter`) runs through the parsers on every test run,
//! so CI exercises it without a nightly toolchain.

use std::fs;
use std::path::Path;

use warrant_scim::parse_filter;

use crate::props::exercise;

#[test]
fn every_corpus_file_goes_through_the_parsers() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/filter");
    let mut files = 0;
    let mut filters = 0;
    for entry in fs::read_dir(&dir).unwrap() {
        let bytes = fs::read(entry.unwrap().path()).unwrap();
        let input = String::from_utf8_lossy(&bytes);
        exercise(&input);
        files += 1;
        filters += usize::from(parse_filter(&input).is_ok());
    }
    assert!(files >= 12, "the seed corpus has {files} files");
    assert!(
        filters >= 8,
        "most seeds are valid filters ({filters} of {files})"
    );
}
