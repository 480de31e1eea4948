//! Replays every stored input of every target (`regressions/<target>/*`),
//! then a batch of seeded pseudo-random inputs, so the fuzz targets run in
//! the ordinary test suite and a minimised crash, once stored, is a test
//! forever.

use std::path::Path;

type Target = fn(&[u8]);

const TARGETS: [(&str, Target); 8] = [
    ("breaker_ops", circuit_fuzz::breaker_ops),
    ("config_build", circuit_fuzz::config_build),
    ("ffi_calls", circuit_fuzz::ffi_calls),
    ("sync_notice", circuit_fuzz::sync_notice),
    ("sync_record", circuit_fuzz::sync_record),
    ("http_retry_after", circuit_fuzz::http_retry_after),
    ("shm_header", circuit_fuzz::shm_header),
    ("snapshot_restore", circuit_fuzz::snapshot_restore),
];

#[test]
fn stored_inputs_replay() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("regressions");
    let mut replayed = 0;
    for (name, target) in TARGETS {
        let Ok(dir) = std::fs::read_dir(root.join(name)) else {
            continue;
        };
        for entry in dir.flatten().filter(|e| e.file_name() != ".keep") {
            let data = std::fs::read(entry.path()).expect("readable input");
            target(&data);
            replayed += 1;
        }
    }
    println!("replayed {replayed} stored inputs");
}

#[test]
fn seeded_random_inputs() {
    let mut x = 0x2545_F491_4F6C_DD1Du64;
    for (_, target) in TARGETS {
        for len in (0..4096).step_by(61) {
            let data: Vec<u8> = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect();
            target(&data);
        }
    }
}

#[test]
fn the_stored_valid_notice_parses() {
    // Keeps the sync_notice target's accepting path exercised: if the notice
    // format changes, update regressions/sync_notice/valid_open.json.
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("regressions/sync_notice/valid_open.json");
    let data = std::fs::read(path).expect("stored notice");
    let ns = circuit_sync::Namespace::new("fuzz").unwrap();
    let notice = circuit_sync::notice::parse(&data, &ns).expect("a valid notice");
    assert_eq!(notice.enc, "partner");
    assert_eq!(
        notice.open_remaining,
        std::time::Duration::from_millis(5000)
    );
}
