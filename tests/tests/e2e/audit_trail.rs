//! The audit trail is complete (docs/AUDIT.md): every operation that changes something, whether
//! it succeeds, fails or is refused, and every read of plaintext, with its actor (`--actor`, else
//! the OS user); and it never quotes a record's key values or row data.

use tests::*;

/// A person's e-mail address as the primary key: the kind of value the trail must not hold.
const MARKER: &str = "ada.marker-7731@example.org";

const SCHEMA: &str = "
CREATE TABLE accounts (tenant_id text NOT NULL, email text PRIMARY KEY, name text NOT NULL);
INSERT INTO accounts VALUES
    ('acme', 'ada.marker-7731@example.org', 'Ada'),
    ('acme', 'bob@example.org', 'Bob'),
    ('globex', 'eve@example.org', 'Eve');
";

fn entries(tv: &Tvault) -> Vec<Value> {
    tv.json(&["audit"]).as_array().unwrap().clone()
}

#[test]
fn every_change_refusal_failure_and_read_is_recorded_without_key_values() {
    let env = Env::new("audit_trail", &[]);
    env.db.exec(SCHEMA);
    env.tv.init(&env.db.url, &[]);
    let key = env.keygen("key.txt");
    for t in ["acme", "globex"] {
        env.tv.tenant_add(t, &key);
    }
    env.tv.backup_all();
    let id = key.identity_str();
    let k = format!("email={MARKER}");
    let record = |cmd: &str| -> Vec<String> {
        [
            cmd,
            "acme",
            "--table",
            "public.accounts",
            "--key",
            &k,
            "--identity",
            id,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };
    let run = |args: Vec<String>| {
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        env.tv.run(&a)
    };
    let as_alice = |mut args: Vec<String>| {
        args.splice(0..0, ["--actor".to_string(), "alice".to_string()]);
        args
    };

    run(as_alice(record("show"))).assert_code(0, "show");
    run(record("diff")).assert_code(0, "diff");
    let mut dry = record("restore-records");
    dry.push("--dry-run".into());
    run(dry).assert_code(0, "restore-records --dry-run");
    run(as_alice(record("restore-records"))).assert_code(0, "restore-records");
    env.tv.ok(&["verify", "--tenant", "acme", "--identity", id]);
    // A record that is not there: the failure is recorded, its key is not.
    let missing = format!("email=nobody.{MARKER}");
    env.tv
        .run(&[
            "show",
            "acme",
            "--table",
            "public.accounts",
            "--key",
            &missing,
            "--identity",
            id,
        ])
        .assert_code(4, "show of a missing record");
    // Refused under a legal hold, then done.
    env.tv.ok(&["hold", "set", "acme", "--reason", "case 12"]);
    let erase = record("erase");
    let o = run(as_alice(erase.clone()));
    assert_ne!(o.code, 0, "erase under a hold: {o:?}");
    env.tv
        .run(&["forget-tenant", "acme", "--yes"])
        .assert_code(1, "forget under a hold");
    env.tv.ok(&["hold", "release", "acme"]);
    run(erase).assert_code(0, "erase");
    // A registration refused (the tenant exists).
    env.tv
        .run(&["tenant", "add", "globex", "--recipient", &key.recipient])
        .assert_code(1, "a second registration of globex");
    // A failed backup (the database is gone for it).
    env.tv
        .run(&[
            "backup",
            "--all",
            "--source",
            "host=127.0.0.1 port=1 user=x dbname=y sslmode=disable connect_timeout=2",
        ])
        .assert_code(1, "backup with an unreachable source");

    let all = entries(&env.tv);
    let text = serde_json::to_string(&all).unwrap();
    assert!(
        !text.contains(MARKER),
        "the trail quotes a key value: {text}"
    );
    assert!(!text.contains("Ada"), "the trail quotes row data: {text}");
    let log = std::fs::read_to_string(env.tv.vault.join("audit.log")).unwrap();
    assert!(!log.contains(MARKER));

    let find = |action: &str, pred: &dyn Fn(&Value) -> bool| -> Value {
        all.iter()
            .find(|e| e["action"] == action && pred(e))
            .cloned()
            .unwrap_or_else(|| panic!("no {action} entry like that in {all:#?}"))
    };
    let what = |w: &'static str| move |e: &Value| e["details"]["what"] == w;
    let show = find("read", &what("show"));
    assert_eq!(show["actor"], "alice");
    assert_eq!(show["tenant"], "acme");
    assert_eq!(show["outcome"], "ok");
    let name = show["details"]["records"][0].as_str().unwrap().to_string();
    assert_eq!(name.len(), 32, "{show}");
    let diff = find("read", &what("diff"));
    assert_ne!(
        diff["actor"], "alice",
        "--actor applies to its own run only"
    );
    assert_eq!(
        diff["details"]["records"][0],
        name.as_str(),
        "one record, one name"
    );
    find("read", &what("restore-records --dry-run"));
    find("read", &what("verify"));
    let restored = find("record-restore", &|_| true);
    assert_eq!(restored["actor"], "alice");
    assert_eq!(restored["details"]["records"][0], name.as_str());
    let failed_show = find("read", &|e| {
        e["outcome"]
            .as_str()
            .is_some_and(|o| o.starts_with("failed"))
    });
    assert_ne!(failed_show["details"]["records"][0], name.as_str());
    let refused: Vec<&Value> = all
        .iter()
        .filter(|e| {
            e["action"] == "erasure"
                && e["outcome"]
                    .as_str()
                    .is_some_and(|o| o.starts_with("refused"))
        })
        .collect();
    assert_eq!(refused.len(), 2, "erase and forget refused: {all:#?}");
    assert!(refused.iter().any(|e| e["actor"] == "alice"));
    find("erasure", &|e| e["outcome"] == "ok");
    find("key-change", &|e| {
        e["tenant"] == "globex"
            && e["outcome"]
                .as_str()
                .is_some_and(|o| o.contains("already registered"))
    });
    find("backup", &|e| {
        e["outcome"]
            .as_str()
            .is_some_and(|o| o.starts_with("failed") && o.contains("connect"))
    });
    env.tv.ok(&["audit", "verify"]);
}
