//! Wrong keys and damaged vault objects are detected (exit 3 / 4, clear message), and a
//! failed restore leaves the live database exactly as it was.

use std::path::PathBuf;
use tests::*;

const T: &str = "acme";

struct Setup {
    env: Env,
    key: Key,
    snap: String,
}

/// Vault with one tenant backed up; afterwards the live rows are changed so that any
/// partial restore would show up in the checksum.
fn setup(name: &str) -> Setup {
    let (env, key) = Env::with_tenants(name, &["integrity.sql"], &[T]);
    let snap = env.tv.backup_all();
    env.db.exec(
        "UPDATE docs SET title = 'edited after backup' WHERE tenant_id = 'acme' AND id % 10 = 0;
         INSERT INTO docs VALUES (100001, 'acme', 'new after backup', NULL, NULL);
         DELETE FROM docs WHERE tenant_id = 'acme' AND id % 7 = 0;",
    );
    // Baseline: the undamaged vault verifies clean (so the checks below can fail).
    let v = env.tv.json(&["verify"]);
    assert_eq!(v["ok"], true, "undamaged vault must verify ok: {v:#}");
    Setup { env, key, snap }
}

fn live(s: &Setup) -> (i64, String) {
    tenant_checksum(&mut s.env.db.client(), "public.docs", T)
}

fn whole(s: &Setup) -> (i64, String) {
    checksum(&mut s.env.db.client(), "public.docs", "true", None)
}

/// Restore must fail with one of `codes`, mention one of `words`, and change nothing.
#[track_caller]
fn restore_fails(s: &Setup, identity: &str, codes: &[i32], words: &[&str]) {
    let before = whole(s);
    let out = s
        .env
        .tv
        .run(&["restore", T, "--snapshot", &s.snap, "--identity", identity]);
    assert!(
        codes.contains(&out.code),
        "restore: expected exit in {codes:?}, got {}\nstdout:\n{}\nstderr:\n{}",
        out.code,
        out.stdout,
        out.stderr
    );
    let err = out.stderr.to_lowercase();
    assert!(
        err.contains("error"),
        "no `error:` line on stderr: {:?}",
        out.stderr
    );
    assert!(
        words.iter().any(|w| err.contains(w)),
        "stderr mentions none of {words:?}: {:?}",
        out.stderr
    );
    assert_eq!(
        whole(s),
        before,
        "live database changed by a failed restore"
    );
}

/// `verify` without and with the identity reports damage (exit 3, ok=false, problems).
#[track_caller]
fn verify_reports_damage(s: &Setup) {
    for args in [
        vec!["verify"],
        vec!["verify", "--tenant", T, "--identity", s.key.identity_str()],
    ] {
        let mut a = args.clone();
        a.push("--json");
        let out = s.env.tv.run(&a);
        assert_eq!(
            out.code,
            3,
            "`{}` on a damaged vault: exit {}\nstdout:\n{}\nstderr:\n{}",
            a.join(" "),
            out.code,
            out.stdout,
            out.stderr
        );
        if let Ok(v) = serde_json::from_str::<Value>(out.stdout.trim()) {
            assert_eq!(v["ok"], false, "verify --json ok must be false: {v:#}");
            let problems: usize = v["checked"]
                .as_array()
                .map(|c| {
                    c.iter()
                        .map(|x| x["problems"].as_array().map_or(0, Vec::len))
                        .sum()
                })
                .unwrap_or(0);
            assert!(problems > 0, "verify --json lists no problems: {v:#}");
        } else {
            panic!(
                "`{}` printed no JSON document on stdout:\n{}\nstderr:\n{}",
                a.join(" "),
                out.stdout,
                out.stderr
            );
        }
    }
}

#[track_caller]
fn packs(s: &Setup) -> Vec<PathBuf> {
    let p = store_files_under(&s.env.tv.vault, "packs");
    assert!(
        !p.is_empty(),
        "no pack files under {}/store/**/packs/: {:#?}",
        s.env.tv.vault.display(),
        walk(&s.env.tv.vault)
    );
    p
}

#[test]
fn wrong_identity_is_refused() {
    let s = setup("integrity_wrong_key");
    let other = s.env.keygen("other.txt");
    let before = live(&s);
    restore_fails(
        &s,
        other.identity_str(),
        &[3],
        &["key", "identity", "decrypt", "recipient"],
    );
    assert_eq!(live(&s), before);
    // A missing identity file is an operational/not-found error, not a success.
    let out = s.env.tv.run(&[
        "restore",
        T,
        "--snapshot",
        &s.snap,
        "--identity",
        "/nonexistent/key.txt",
    ]);
    assert_ne!(
        out.code, 0,
        "restore with a missing identity file succeeded"
    );
    // And the right key still works afterwards.
    s.env.tv.restore(T, &s.snap, &s.key, None);
}

#[test]
fn flipped_byte_in_pack_is_detected() {
    let s = setup("integrity_flip");
    for p in packs(&s) {
        let mut b = std::fs::read(&p).unwrap();
        let i = b.len() / 2;
        b[i] ^= 0x01;
        std::fs::write(&p, b).unwrap();
    }
    restore_fails(
        &s,
        s.key.identity_str(),
        &[3],
        &[
            "integrity",
            "corrupt",
            "checksum",
            "hash",
            "mismatch",
            "decrypt",
            "authentic",
            "tag",
            "invalid",
        ],
    );
    verify_reports_damage(&s);
}

#[test]
fn truncated_pack_is_detected() {
    let s = setup("integrity_truncate");
    for p in packs(&s) {
        let len = std::fs::metadata(&p).unwrap().len();
        let f = std::fs::OpenOptions::new().write(true).open(&p).unwrap();
        f.set_len(len / 2).unwrap();
    }
    restore_fails(
        &s,
        s.key.identity_str(),
        &[3],
        &[
            "truncat",
            "corrupt",
            "short",
            "eof",
            "length",
            "size",
            "integrity",
            "checksum",
            "mismatch",
            "hash",
            "range",
        ],
    );
    verify_reports_damage(&s);
}

#[test]
fn deleted_manifest_is_detected() {
    let s = setup("integrity_manifest");
    let mut gone = store_files_under(&s.env.tv.vault, "manifests");
    gone.extend(store_files_under(&s.env.tv.vault, "snapshots"));
    assert!(
        !gone.is_empty(),
        "no manifests/ or snapshots/ files in the store: {:#?}",
        walk(&s.env.tv.vault)
    );
    for p in &gone {
        std::fs::remove_file(p).unwrap();
    }
    restore_fails(
        &s,
        s.key.identity_str(),
        &[3, 4],
        &["manifest", "snapshot", "not found", "missing"],
    );
    verify_reports_damage(&s);
}

#[test]
fn flipped_byte_in_manifest_is_detected() {
    let s = setup("integrity_manifest_flip");
    let files = store_files_under(&s.env.tv.vault, "manifests");
    assert!(
        !files.is_empty(),
        "no manifests/ files: {:#?}",
        walk(&s.env.tv.vault)
    );
    for p in &files {
        let mut b = std::fs::read(p).unwrap();
        // Change a digit (a count, size or hash character) if any, else any byte.
        let i = b
            .iter()
            .rposition(u8::is_ascii_digit)
            .unwrap_or(b.len() / 2);
        b[i] = if b[i] == b'1' {
            b'2'
        } else if b[i].is_ascii_digit() {
            b'1'
        } else {
            b[i] ^ 1
        };
        std::fs::write(p, b).unwrap();
    }
    restore_fails(
        &s,
        s.key.identity_str(),
        &[3],
        &[
            "manifest",
            "integrity",
            "corrupt",
            "checksum",
            "mismatch",
            "authentic",
            "decrypt",
            "invalid",
        ],
    );
    verify_reports_damage(&s);
}

#[test]
fn swapped_packs_are_detected() {
    let s = setup("integrity_swap");
    // A second snapshot writes a second pack (the live rows changed in setup()).
    let snap2 = s.env.tv.backup_all();
    let mut p = packs(&s);
    assert!(
        p.len() >= 2,
        "expected two packs after two different backups: {p:#?}"
    );
    p.truncate(2);
    let (a, b) = (std::fs::read(&p[0]).unwrap(), std::fs::read(&p[1]).unwrap());
    std::fs::write(&p[0], &b).unwrap();
    std::fs::write(&p[1], &a).unwrap();
    // A restore reads only the blocks of tables whose live rows differ: change them first.
    s.env
        .db
        .exec("UPDATE docs SET title = 'edited again' WHERE tenant_id = 'acme' AND id % 3 = 0");
    let before = whole(&s);
    for snap in [&s.snap, &snap2] {
        let out = s.env.tv.run(&[
            "restore",
            T,
            "--snapshot",
            snap,
            "--identity",
            s.key.identity_str(),
        ]);
        out.assert_code(3, &format!("restore of {snap} with two pack files swapped"));
    }
    assert_eq!(whole(&s), before, "live data changed by failed restores");
    verify_reports_damage(&s);
}
