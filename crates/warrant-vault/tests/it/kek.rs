//! KEKs from files and values.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::{Arc, Barrier};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use warrant_vault::{Kek, Vault, VaultError};

use crate::{assert_code, assert_no_key};

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn write(path: &Path, content: &[u8], mode: u32) {
    fs::write(path, content).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

#[test]
fn created_0600_and_reloaded() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kek");
    let created = Kek::load_or_create(&path).unwrap();
    assert_eq!(mode(&path), 0o600);
    // Only the key file is left: the temporary file it was staged in is gone.
    let names: Vec<_> = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["kek"]);
    // The file is the value `WARRANT_KEK` takes.
    let content = fs::read_to_string(&path).unwrap();
    assert!(
        content.ends_with('\n') && content.len() == 45,
        "{content:?}"
    );
    assert_eq!(Kek::from_env_value(&content).unwrap().id(), created.id());

    let reloaded = Kek::load_or_create(&path).unwrap();
    assert_eq!(reloaded.id(), created.id());
    assert_eq!(created.id().len(), 8);
    let sealed = Vault::new(created).seal("r:1", b"seed").unwrap();
    assert_eq!(
        Vault::new(reloaded)
            .open("r:1", &sealed)
            .unwrap()
            .as_slice(),
        b"seed"
    );
}

#[test]
fn raw_32_bytes_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kek");
    write(&path, &[9; 32], 0o600);
    let from_file = Kek::load_or_create(&path).unwrap();
    assert_eq!(
        from_file.id(),
        Kek::from_env_value(&STANDARD.encode([9; 32])).unwrap().id()
    );
    write(&path, &[9; 32], 0o400);
    assert_eq!(Kek::load_or_create(&path).unwrap().id(), from_file.id());
}

#[test]
fn refuses_a_file_others_can_read() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kek");
    Kek::load_or_create(&path).unwrap();
    for m in [0o644, 0o640, 0o604, 0o660, 0o666] {
        fs::set_permissions(&path, fs::Permissions::from_mode(m)).unwrap();
        let err = assert_code(Kek::load_or_create(&path), "vault.key_file");
        let msg = err.to_string();
        assert!(
            msg.contains(&format!("chmod 600 {}", path.display())),
            "{msg}"
        );
        assert!(msg.contains(&format!("{m:04o}")), "{msg}");
        assert!(matches!(err, VaultError::KeyFile { path: p, .. } if p == path));
    }
}

#[test]
fn refuses_what_is_not_a_32_byte_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kek");
    let secretish = [0x42; 40];
    for content in [
        &[][..],
        &[1; 31],
        &[1; 33],
        &[1; 64],
        &secretish,
        STANDARD.encode([1; 16]).as_bytes(),
        STANDARD.encode([1; 31]).as_bytes(),
        STANDARD.encode([1; 33]).as_bytes(),
        format!("{}!", STANDARD.encode([1; 32])).as_bytes(),
        &[b'A'; 10_000],
    ] {
        write(&path, content, 0o600);
        let err = assert_code(Kek::load_or_create(&path), "vault.key_file");
        let msg = format!("{err} {err:?}");
        assert!(msg.contains("32"), "{msg}");
        assert!(
            !msg.contains(&hex::encode(secretish)) && !msg.contains("QkJCQkJC"),
            "{msg}"
        );
    }
    // A directory is not a key file either.
    let err = assert_code(Kek::load_or_create(dir.path()), "vault.key_file");
    assert!(err.to_string().contains("not a regular file"), "{err}");
}

#[test]
fn missing_directory_is_an_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let err = assert_code(
        Kek::load_or_create(&dir.path().join("no/such/kek")),
        "vault.key_file",
    );
    assert!(err.to_string().contains("cannot create"), "{err}");
}

#[test]
fn concurrent_first_starts_agree_on_one_key() {
    for _ in 0..10 {
        let dir = tempfile::tempdir().unwrap();
        let path = Arc::new(dir.path().join("kek"));
        let barrier = Arc::new(Barrier::new(8));
        let ids: Vec<String> = (0..8)
            .map(|_| {
                let (path, barrier) = (Arc::clone(&path), Arc::clone(&barrier));
                std::thread::spawn(move || {
                    barrier.wait();
                    Kek::load_or_create(&path).unwrap().id().to_owned()
                })
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|t| t.join().unwrap())
            .collect();
        assert!(ids.iter().all(|id| *id == ids[0]), "{ids:?}");
        assert_eq!(Kek::load_or_create(&path).unwrap().id(), ids[0]);
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}

#[test]
fn env_values() {
    let key = [0x17; 32];
    let b64 = STANDARD.encode(key);
    let id = Kek::from_env_value(&b64).unwrap().id().to_owned();
    assert_eq!(Kek::from_env_value(&format!("  {b64}\n")).unwrap().id(), id);
    assert_ne!(
        Kek::from_env_value(&STANDARD.encode([0x18; 32]))
            .unwrap()
            .id(),
        id
    );
    for bad in [
        String::new(),
        "   ".into(),
        STANDARD.encode([0x17; 31]),
        STANDARD.encode([0x17; 33]),
        STANDARD.encode([0x17; 64]),
        b64.replace('F', "-"),
        b64.trim_end_matches('=').into(),
        hex::encode(key),
        format!("{b64} {b64}"),
    ] {
        let err = assert_code(Kek::from_env_value(&bad), "vault.key_value");
        let msg = format!("{err} {err:?}");
        assert!(bad.trim().is_empty() || !msg.contains(bad.trim()), "{msg}");
        assert_no_key(&msg, &key);
    }
}

#[test]
fn generated_keys_differ() {
    let a = Kek::generate().unwrap();
    let b = Kek::generate().unwrap();
    assert_ne!(a.id(), b.id());
    assert!(
        a.id()
            .bytes()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
    );
}
