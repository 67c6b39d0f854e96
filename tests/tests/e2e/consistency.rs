//! A backup reads one consistent snapshot: transactions committed while it runs are
//! either entirely in it or entirely out of it, across tables.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tests::*;

const TENANTS: [&str; 2] = ["acme", "globex"];

fn invariant(c: &mut Client, tenant: &str) -> (i64, i64, i64) {
    let r = c
        .query_one(
            "SELECT (SELECT coalesce(sum(amount), 0)::bigint FROM wallet_a WHERE tenant_id = $1),
                    (SELECT coalesce(sum(amount), 0)::bigint FROM wallet_b WHERE tenant_id = $1),
                    (SELECT count(*) FROM wallet_a WHERE tenant_id = $1 AND amount <> 0)",
            &[&tenant],
        )
        .unwrap();
    (r.get(0), r.get(1), r.get(2))
}

#[test]
fn backup_is_a_consistent_snapshot_under_concurrent_writes() {
    let (env, key) = Env::with_tenants("consistency", &["consistency.sql"], &TENANTS);
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let mut workers = Vec::new();
    for w in 0..2u64 {
        let (url, stop, done) = (env.db.url.clone(), stop.clone(), done.clone());
        workers.push(std::thread::spawn(move || {
            let mut c = connect(&url);
            let mut i: u64 = w;
            while !stop.load(Ordering::Relaxed) {
                i += 2;
                let t = TENANTS[(i % 2) as usize];
                // Move money from a to b (and touch rows all over both tables), atomically.
                let id = (i * 7919 % 20000 + 1) as i32;
                let id2 = (i * 104729 % 20000 + 1) as i32;
                let amount = (i % 97 + 1) as i64;
                let mut tx = c.transaction().unwrap();
                tx.execute(
                    "UPDATE wallet_a SET amount = amount - $3 WHERE tenant_id = $1 AND id = $2",
                    &[&t, &id, &amount],
                )
                .unwrap();
                tx.execute(
                    "UPDATE wallet_b SET amount = amount + $3 WHERE tenant_id = $1 AND id = $2",
                    &[&t, &id2, &amount],
                )
                .unwrap();
                tx.commit().unwrap();
                done.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    while done.load(Ordering::Relaxed) < 50 {
        std::thread::sleep(Duration::from_millis(10));
    }
    let at_start = done.load(Ordering::Relaxed);
    let snap = env.tv.backup_all();
    let during = done.load(Ordering::Relaxed) - at_start;
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.join().unwrap();
    }
    eprintln!("consistency: {during} transfers committed during the backup");
    assert!(
        during >= 20,
        "only {during} transfers overlapped the backup: test proves nothing"
    );

    let scratch = env.scratch_db("consistency_scratch", &[]);
    scratch.exec(
        "CREATE TABLE wallet_a (tenant_id text NOT NULL, id int NOT NULL, amount bigint NOT NULL, note text, PRIMARY KEY (tenant_id, id));
         CREATE TABLE wallet_b (tenant_id text NOT NULL, id int NOT NULL, amount bigint NOT NULL, note text, PRIMARY KEY (tenant_id, id));
         CREATE TABLE padding (tenant_id text NOT NULL, n int NOT NULL, payload text NOT NULL);",
    );
    let mut s = scratch.client();
    for t in TENANTS {
        env.tv.restore(t, &snap, &key, Some(&scratch.url));
        let (a, b, moved) = invariant(&mut s, t);
        assert_eq!(a + b, 0, "{t}: wallets in the snapshot are inconsistent (a={a}, b={b}): tables read at different times");
        assert!(moved > 0, "{t}: snapshot contains no transfer at all");
        assert_eq!(
            scratch.count(&format!("FROM wallet_a WHERE tenant_id = '{t}'")),
            20000
        );
        assert_eq!(
            scratch.count(&format!("FROM padding WHERE tenant_id = '{t}'")),
            40000
        );
    }
}
