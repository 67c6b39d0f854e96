//! Crash and power loss: each operation stopped at each of its crash points (`TVAULT_CRASH_AT`,
//! an abort: nothing flushed, nothing unwound) leaves a vault that the next run finds
//! consistent: backups commit whole or not at all, an erasure is finished by the next one, a
//! forget resumes. Invariants checked after each: `verify` passes, every tenant restores what
//! its latest snapshot holds, nothing erased comes back, nothing of an uncommitted cycle stays.

use super::residue::{contains, data_key, frames, open, MARKER, SCHEMA};
use tests::*;

fn crash(tv: &Tvault, point: &str, args: &[&str]) {
    let mut tv = tv.clone();
    tv.envs.push(("TVAULT_CRASH_AT".into(), point.into()));
    let o = tv.run(args);
    assert!(
        o.code != 0 && o.stderr.contains(&format!("crash point {point}")),
        "{point}: the run did not stop there: {o:?}"
    );
}

const TENANTS: [&str; 3] = ["acme", "globex", "initech"];

#[test]
fn a_backup_stopped_at_any_step_commits_whole_or_not_at_all() {
    for (i, point) in [
        "backup:packs",
        "backup:manifests",
        "backup:record",
        "backup:inventory",
    ]
    .into_iter()
    .enumerate()
    {
        let (env, key) =
            Env::with_tenants(&format!("crash_backup_{i}"), &["interrupted.sql"], &TENANTS);
        let first = env.tv.backup_all();
        env.db.exec("UPDATE events SET kind = kind || '+'");
        let mut c = env.db.client();
        let live: Vec<(i64, String)> = TENANTS
            .iter()
            .map(|t| tenant_checksum(&mut c, "public.events", t))
            .collect();
        crash(&env.tv, point, &["backup", "--all"]);
        // The next cycle cleans up or indexes what the stopped one left, and commits.
        let next = env.tv.backup_all();
        let ids = snapshot_ids(&env.tv.snapshots());
        let committed = point == "backup:record" || point == "backup:inventory";
        // The stopped cycle is listed exactly when its record was written.
        let stopped: Vec<&String> = ids.iter().filter(|s| **s != first && **s != next).collect();
        assert_eq!(stopped.len(), committed as usize, "{point}: {ids:?}");
        // Nothing of an uncommitted cycle is left in the store.
        if !committed {
            let objects = env.objects();
            let pending: Vec<&String> = objects.keys().filter(|k| k.contains(".pending")).collect();
            assert!(pending.is_empty(), "{point}: {pending:?}");
            let listed: std::collections::BTreeSet<String> = ids.iter().cloned().collect();
            for k in objects
                .keys()
                .filter(|k| k.contains("/packs/") || k.contains("/manifests/"))
            {
                let name = k.rsplit('/').next().unwrap();
                assert!(
                    listed.iter().any(|s| name.starts_with(s.as_str())),
                    "{point}: {k} belongs to no committed cycle"
                );
            }
        }
        env.tv.ok(&["verify"]);
        for (t, sum) in TENANTS.iter().zip(&live) {
            c.execute("DELETE FROM events WHERE tenant_id = $1", &[t])
                .unwrap();
            env.tv.restore(t, "latest", &key, None);
            assert_eq!(
                &tenant_checksum(&mut c, "public.events", t),
                sum,
                "{point}: {t}"
            );
        }
    }
}

#[test]
fn an_erasure_stopped_at_any_step_is_finished_by_the_next() {
    for (i, point) in [
        "erase:intent",
        "erase:new-pack",
        "erase:manifests",
        "erase:packs",
    ]
    .into_iter()
    .enumerate()
    {
        let env = Env::new(&format!("crash_erase_{i}"), &[]);
        env.db.exec(SCHEMA);
        env.tv.init(&env.db.url, &[]);
        let key = env.keygen("key.txt");
        for t in ["acme", "globex"] {
            env.tv.tenant_add(t, &key);
        }
        env.tv.backup_all();
        env.db
            .exec("UPDATE people SET note = note || '+' WHERE id % 7 = 0");
        env.tv.backup_all();
        let erased = format!("email={MARKER}");
        let args = [
            "erase",
            "acme",
            "--table",
            "public.people",
            "--key",
            &erased,
            "--identity",
            key.identity_str(),
        ];
        crash(&env.tv, point, &args);
        // Erasing again (the same record, as an operator would) finishes the job.
        env.tv.ok(&args);
        let dk = data_key(&env, "acme", &key);
        for p in env
            .objects()
            .into_keys()
            .filter(|k| k.starts_with(&env.tenant_dir("acme")) && k.ends_with(".pack"))
        {
            let plain = open(&env.read_object(&p), &dk).expect("a pack opens");
            assert!(
                !contains(&frames(&plain), MARKER),
                "{point}: {p} still holds the record"
            );
        }
        env.tv.ok(&[
            "verify",
            "--tenant",
            "acme",
            "--identity",
            key.identity_str(),
        ]);
        env.tv.restore("acme", "latest", &key, None);
        assert_eq!(
            env.db.count("FROM people WHERE tenant_id = 'acme'"),
            399,
            "{point}"
        );
        assert_eq!(env.db.count("FROM people WHERE id = 77"), 0, "{point}");
        env.tv.restore("globex", "latest", &key, None);
    }
}

#[test]
fn a_forget_stopped_at_any_step_resumes() {
    for (i, point) in ["forget:keys", "forget:objects"].into_iter().enumerate() {
        let (env, key) =
            Env::with_tenants(&format!("crash_forget_{i}"), &["interrupted.sql"], &TENANTS);
        env.tv.backup_all();
        let acme = env.tenant_dir("acme");
        crash(&env.tv, point, &["forget-tenant", "acme", "--yes"]);
        env.tv.ok(&["forget-tenant", "acme", "--yes"]);
        assert!(
            env.objects().keys().all(|k| !k.starts_with(&acme)),
            "{point}: objects of acme remain"
        );
        env.tv.ok(&["verify"]);
        let mut c = env.db.client();
        let sum = tenant_checksum(&mut c, "public.events", "globex");
        c.execute("DELETE FROM events WHERE tenant_id = 'globex'", &[])
            .unwrap();
        env.tv.restore("globex", "latest", &key, None);
        assert_eq!(tenant_checksum(&mut c, "public.events", "globex"), sum);
    }
}
