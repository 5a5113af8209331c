//! Replays the kept fuzz corpus through the same entry point the fuzzer
//! uses, so every build on stable re-checks the inputs that once mattered.

use std::path::Path;

#[test]
fn replay_esp_decapsulate_corpus() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/esp_decapsulate");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).expect("corpus directory") {
        let data = std::fs::read(entry.expect("entry").path()).expect("corpus file");
        esprit_esp::fuzz::esp_decapsulate(&data);
        // Every prefix too: truncation is where parsers break.
        for cut in 0..data.len() {
            esprit_esp::fuzz::esp_decapsulate(&data[..cut]);
        }
        n += 1;
    }
    assert!(n >= 5, "corpus at {} has only {n} inputs", dir.display());
}
