//! Hostile tenant ids: each either round-trips (add, backup, restore) or is refused
//! with a clear error; none leaks into file names or SQL.

use tests::*;

fn hostile_ids() -> Vec<(&'static str, String)> {
    vec![
        ("sql-injection", "t'; DROP TABLE x; --".to_string()),
        ("path-traversal", "../../etc".to_string()),
        ("unicode", "ünïcødé-租户".to_string()),
        ("500-chars", "L".repeat(499) + "Z"),
        ("slashes", "a/b\\c".to_string()),
        ("empty", String::new()),
        ("like-wildcard", "%".to_string()),
        ("like-underscore", "plai_".to_string()),
        ("regex", ".*".to_string()),
    ]
}

#[test]
fn hostile_tenant_ids_round_trip_or_are_refused() {
    let env = Env::new("hostile_ids", &["hostile_ids.sql"]);
    env.tv.init(&env.db.url, &[]);
    let key = env.keygen("key.txt");
    let mut c = env.db.client();
    // Every id gets rows, plus a benign tenant as control.
    let mut ids = hostile_ids();
    ids.push(("control", "plain".to_string()));
    for (_, id) in &ids {
        for n in 0..3 {
            c.execute(
                "INSERT INTO notes VALUES ($1, $2, $3)",
                &[id, &n, &format!("note {n} of {id}")],
            )
            .unwrap();
        }
    }

    let mut accepted = Vec::new();
    for (what, id) in &ids {
        let out = env
            .tv
            .run(&["tenant", "add", id, "--recipient", &key.recipient]);
        if out.code == 0 {
            eprintln!("{what}: accepted");
            accepted.push((*what, id.clone()));
        } else {
            eprintln!("{what}: refused (exit {}): {}", out.code, out.stderr.trim());
            assert!(
                out.code > 0 && out.code != 101,
                "{what}: refused with exit {} (crash, not a clean refusal)\nstderr: {}",
                out.code,
                out.stderr
            );
            assert!(
                out.stderr.contains("error") && out.stderr.trim().len() > 10,
                "{what}: refusal gives no clear error message: {:?}",
                out.stderr
            );
        }
    }
    assert!(
        accepted.iter().any(|(w, _)| *w == "control"),
        "the benign id must be accepted"
    );
    assert_eq!(env.db.count("FROM x"), 1, "table x intact after tenant add");

    // `tenant list` shows the accepted ids verbatim.
    let list = env.tv.json(&["tenant", "list"]);
    for (what, id) in &accepted {
        let listed = list
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["tenant"].as_str() == Some(id));
        assert!(
            listed,
            "{what}: accepted id {id:?} missing from tenant list: {list:#}"
        );
    }

    let backup = env.tv.json(&["backup", "--all"]);
    let snap = snapshot_id(&backup);
    for (what, id) in &accepted {
        let t = backup["tenants"]
            .as_array()
            .and_then(|a| a.iter().find(|t| t["tenant"].as_str() == Some(id)));
        let t = t.unwrap_or_else(|| {
            panic!("{what}: accepted id {id:?} not in backup report: {backup:#}")
        });
        assert_eq!(
            t["rows"], 3,
            "{what}: rows backed up for {id:?}: {backup:#}"
        );
    }
    assert_eq!(env.db.count("FROM x"), 1, "table x intact after backup");
    let before: Vec<Vec<String>> = accepted
        .iter()
        .map(|(_, id)| rows_exact(&mut c, "public.notes", "r_.tenant_id = $1", Some(id)))
        .collect();
    c.execute("UPDATE notes SET body = 'wiped'", &[]).unwrap();
    for ((what, id), rows) in accepted.iter().zip(&before) {
        assert_eq!(rows.len(), 3, "{what}: fixture rows");
        let v = env.tv.json(&[
            "restore",
            id,
            "--snapshot",
            &snap,
            "--identity",
            key.identity_str(),
        ]);
        assert_eq!(
            v["tenant"].as_str(),
            Some(id.as_str()),
            "{what}: restore report names the tenant verbatim"
        );
        let now = rows_exact(&mut c, "public.notes", "r_.tenant_id = $1", Some(id));
        assert_rows_eq(&format!("{what}: rows of {id:?} after restore"), rows, &now);
    }
    // Later restores (e.g. of `%`) did not disturb tenants restored earlier.
    for ((what, id), rows) in accepted.iter().zip(&before) {
        let now = rows_exact(&mut c, "public.notes", "r_.tenant_id = $1", Some(id));
        assert_rows_eq(
            &format!("{what}: rows of {id:?} after all restores"),
            rows,
            &now,
        );
    }
    // Refused ids' rows were not touched by any restore.
    let wiped = env.db.count("FROM notes WHERE body = 'wiped'");
    assert_eq!(
        wiped as usize,
        3 * (ids.len() - accepted.len()),
        "only accepted tenants restored"
    );

    // x survived everything, and nothing named after an id was created on disk.
    assert_eq!(
        env.db
            .scalar("to_regclass('public.x') IS NOT NULL")
            .as_deref(),
        Some("true"),
        "table x dropped!"
    );
    assert_eq!(env.db.count("FROM x"), 1, "table x intact");
    let files = walk(env.dir.path());
    for p in &files {
        let s = p.to_string_lossy();
        for bad in ["..", "DROP", "租户", "ünïcødé", "etc", "LLLLLLLLLL", "\\"] {
            assert!(
                !s.contains(bad),
                "file {s:?} under the vault dir contains {bad:?} from a tenant id"
            );
        }
    }
    // Nothing escaped the temp dir either (a `../../etc` write from store/tenants/...).
    let top: Vec<String> = std::fs::read_dir(env.dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    let mut top_sorted = top.clone();
    top_sorted.sort();
    assert_eq!(
        top_sorted,
        vec!["key.txt", "vault"],
        "unexpected entries next to the vault dir"
    );
}
