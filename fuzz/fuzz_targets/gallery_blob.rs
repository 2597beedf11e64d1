#![no_main]

use std::path::Path;

use metricann::fuzzing;
use metricann::store::MemoryStore;

thread_local! {
    // A store counts its faults in cells, so the galleries are per thread.
    static BASES: Vec<MemoryStore> = {
        let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        fuzzing::base_galleries(&repo).expect("the legacy gallery fixtures")
    };
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| BASES.with(|bases| fuzzing::gallery_blob(bases, data)));
