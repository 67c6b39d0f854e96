//! `tvault-server` (docs/SERVER.md), in process on `127.0.0.1:0`, against the real PostgreSQL
//! (the source and a throwaway control database): the authorization matrix over every route
//! the OpenAPI document lists, a tenant's self-service path, a support record restore with
//! escrow, a schedule under an injected clock, a restart in the middle of a job, and two
//! servers sharing one queue with one killed mid-job.

use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tests::*;
use vault_server::ManualClock;

const FIX: [&str; 1] = ["isolation.sql"];

/// acme and globex registered (globex with escrow), one snapshot, a control database, and the
/// `[server]` section; returns the env, the tenants' key, the escrow key and the control db.
pub(crate) fn server_env(name: &str, extra: &str) -> (Env, Key, Key, TestDb) {
    let env = Env::new(name, &FIX);
    let escrow = env.keygen("escrow.txt");
    env.tv
        .init(&env.db.url, &["--escrow-recipient", &escrow.recipient]);
    let key = env.keygen("key.txt");
    env.tv.tenant_add("acme", &key);
    env.tv.ok(&[
        "tenant",
        "add",
        "globex",
        "--recipient",
        &key.recipient,
        "--allow-escrow",
    ]);
    env.tv.backup_all();
    let control = TestDb::new(&format!("{name}_control"));
    let extra = format!(
        "escrow_identity = {:?}\n{extra}",
        escrow.identity.to_str().unwrap()
    );
    configure_server(&env.tv.vault, &control, &extra);
    (env, key, escrow, control)
}

fn job_id(v: &Value) -> String {
    v["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no job id: {v:#}"))
        .to_string()
}

fn identity_text(key: &Key) -> String {
    std::fs::read_to_string(&key.identity).unwrap()
}

#[test]
fn every_route_refuses_other_tenants_and_weaker_roles() {
    let (env, key, _escrow, _control) = server_env("server_authz", "");
    let operator = bootstrap_operator(&env.tv.vault);
    let s = TestServer::start(&env.tv.vault, "a", None);
    let acme = make_token(&s, &operator, "tenant", &["acme"]);
    let support_acme = make_token(&s, &operator, "support", &["acme"]);
    // A job of globex's, which acme's tokens must not see or touch.
    let job = s.expect(
        202,
        "POST",
        "/v1/tenants/globex/exports",
        &operator,
        Some(&json!({})),
    );
    let globex_job = job_id(&job);
    assert_eq!(s.wait_job(&operator, &globex_job)["state"], "succeeded");
    let tokens = s.expect(200, "GET", "/v1/tokens", &operator, None);
    let token_id = tokens[0]["id"].as_str().unwrap().to_string();

    let before_rows = whole_db(&mut env.db.client());
    let before_jobs = s.expect(200, "GET", "/v1/jobs", &operator, None);
    let doc = s.expect(200, "GET", "/v1/openapi.json", &operator, None);
    let paths = doc["paths"].as_object().unwrap();
    assert!(paths.len() >= 30, "{doc:#}");
    let mut walked = 0;
    for (path, methods) in paths {
        for (method, op) in methods.as_object().unwrap() {
            let access = op["x-access"].as_str().unwrap();
            if access == "public" {
                continue;
            }
            walked += 1;
            let concrete = path
                .replace("{tenant}", "globex")
                .replace("{job}", &globex_job)
                .replace("{token}", &token_id);
            let method = method.to_uppercase();
            let body = json!({});
            // No token at all: 401.
            let (status, v) = s.call(&method, &concrete, None, Some(&body));
            assert_eq!(status, 401, "{method} {concrete} without a token: {v:#}");
            for (who, token) in [("tenant acme", &acme), ("support for acme", &support_acme)] {
                let (status, v) = s.call(&method, &concrete, Some(token), Some(&body));
                let listing = !path.contains('{') && access == "any";
                if listing {
                    // Lists answer, with nothing of globex's in them.
                    assert_eq!(status, 200, "{method} {concrete} as {who}: {v:#}");
                    let text = v.to_string();
                    assert!(
                        !text.contains("globex") && !text.contains(&globex_job),
                        "{method} {concrete} as {who} shows globex: {v:#}"
                    );
                } else {
                    assert!(
                        status == 403 || status == 404,
                        "{method} {concrete} as {who}: {status} {v:#}"
                    );
                    assert!(v["error"]["code"].is_string(), "{v:#}");
                    let text = v.to_string();
                    assert!(
                        !text.contains("snapshot") && !text.contains("rows"),
                        "{v:#}"
                    );
                }
            }
            // The tenant's own token on its own tenant's operator and staff routes: 403.
            if ["operator", "staff"].contains(&access) && path.contains("{tenant}") {
                let own = path.replace("{tenant}", "acme");
                let (status, v) = s.call(&method, &own, Some(&acme), Some(&body));
                assert_eq!(status, 403, "{method} {own} as tenant acme: {v:#}");
            }
        }
    }
    assert!(walked >= 30, "walked {walked} routes");
    // Nothing of globex's (or anyone's) changed, and no job was made by the refused calls.
    assert_eq!(before_rows, whole_db(&mut env.db.client()));
    let after_jobs = s.expect(200, "GET", "/v1/jobs", &operator, None);
    assert_eq!(before_jobs, after_jobs);
    // The scoped tokens do see their own tenant.
    let own = s.expect(200, "GET", "/v1/tenants", &acme, None);
    assert_eq!(own.as_array().unwrap().len(), 1, "{own:#}");
    assert_eq!(own[0]["id"], "acme");
    s.expect(
        200,
        "GET",
        "/v1/tenants/acme/snapshots",
        &support_acme,
        None,
    );
    // A revoked token is refused from then on.
    let id = s.expect(200, "GET", "/v1/whoami", &acme, None)["token"]
        .as_str()
        .unwrap()
        .to_string();
    s.expect(200, "DELETE", &format!("/v1/tokens/{id}"), &operator, None);
    let (status, _) = s.call("GET", "/v1/whoami", Some(&acme), None);
    assert_eq!(status, 401);
    drop(key);
}

#[test]
fn a_tenant_registers_a_key_exports_downloads_and_opens_its_data() {
    let clock = Arc::new(ManualClock::new(time::OffsetDateTime::now_utc()));
    let (env, key, _escrow, _control) = server_env("server_self_service", "link_seconds = 60");
    let operator = bootstrap_operator(&env.tv.vault);
    let s = TestServer::start(&env.tv.vault, "a", Some(clock.clone()));
    let acme = make_token(&s, &operator, "tenant", &["acme"]);

    let me = s.expect(200, "GET", "/v1/tenants/acme", &acme, None);
    assert_eq!(me["tenant"]["id"], "acme", "{me:#}");
    // A new key, registered by proving the old one; the old one reads nothing new after.
    let new_key = env.keygen("new-key.txt");
    let body = json!({ "identity": identity_text(&key), "recipients": [new_key.recipient], "revoke": true });
    let (status, v) = s.call(
        "PUT",
        "/v1/tenants/acme/recipients",
        Some(&acme),
        Some(&json!({
        "identity": "AGE-SECRET-KEY-1QQQ", "recipients": [new_key.recipient] })),
    );
    assert_eq!(status, 400, "a malformed identity: {v:#}");
    let record = s.expect(
        200,
        "PUT",
        "/v1/tenants/acme/recipients",
        &acme,
        Some(&body),
    );
    assert_eq!(
        record["recipients"][0],
        json!(new_key.recipient),
        "{record:#}"
    );

    // A cycle (an operator's job), then the tenant's own snapshots.
    let cycle = s.expect(202, "POST", "/v1/backups", &operator, Some(&json!({})));
    assert_eq!(s.wait_job(&operator, &job_id(&cycle))["state"], "succeeded");
    let snaps = s.expect(200, "GET", "/v1/tenants/acme/snapshots", &acme, None);
    assert_eq!(snaps.as_array().unwrap().len(), 2, "{snaps:#}");

    // Export: a job, idempotent under one key.
    let client = reqwest::blocking::Client::new();
    let submit = || {
        client
            .post(format!("{}/v1/tenants/acme/exports", s.url))
            .bearer_auth(&acme)
            .header("Idempotency-Key", "export-1")
            .json(&json!({ "source": "latest", "format": "csv" }))
            .send()
            .unwrap()
    };
    let first = submit();
    assert_eq!(first.status().as_u16(), 202);
    let job: Value = first.json().unwrap();
    let again = submit();
    assert_eq!(again.status().as_u16(), 200);
    assert_eq!(again.json::<Value>().unwrap()["id"], job["id"]);
    let id = job_id(&job);
    let done = s.wait_job(&acme, &id);
    assert_eq!(done["state"], "succeeded", "{done:#}");

    let link = s.expect(200, "POST", &format!("/v1/jobs/{id}/link"), &acme, None);
    let url = link["url"].as_str().unwrap().to_string();
    let (status, bytes) = s.download(&url);
    assert_eq!(status, 200);
    let file = env.path("acme-export.tvx");
    std::fs::write(&file, &bytes).unwrap();
    let (report, dir) = {
        let dir = env.path("opened");
        let v = env.tv.json(&[
            "open",
            file.to_str().unwrap(),
            "--identity",
            new_key.identity_str(),
            "-o",
            dir.to_str().unwrap(),
        ]);
        (v, dir)
    };
    assert_eq!(report["tenant"], "acme", "{report:#}");
    let users = walk(&dir)
        .into_iter()
        .find(|p| p.to_string_lossy().contains("users"))
        .map(|p| std::fs::read_to_string(dir.join(p)).unwrap())
        .unwrap_or_else(|| panic!("no users file in the export: {report:#}"));
    assert!(users.contains("@acme.example"), "{users}");
    assert!(!users.contains("globex"), "{users}");

    // A changed signature is refused; an expired link too.
    let (status, _) = s.download(&url.replace("sig=", "sig=00"));
    assert_eq!(status, 403);
    clock.set(clock.now_plus(Duration::from_secs(120)));
    let (status, _) = s.download(&url);
    assert_eq!(status, 410);
    // Every download is in the audit trail, which the tenant sees (its own entries only).
    let audit = s.expect(200, "GET", "/v1/audit?tenant=acme", &acme, None);
    let downloads = audit
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["details"]["event"] == "export downloaded")
        .count();
    assert_eq!(downloads, 1, "{audit:#}");
    let all = s.expect(200, "GET", "/v1/audit", &acme, None);
    assert!(
        all.as_array()
            .unwrap()
            .iter()
            .all(|e| e["tenant"] == "acme"),
        "{all:#}"
    );
    // The rate limit: 10 exports an hour by default, and the one above is refused.
    for _ in 0..9 {
        s.expect(
            202,
            "POST",
            "/v1/tenants/acme/exports",
            &acme,
            Some(&json!({})),
        );
    }
    let (status, v) = s.call(
        "POST",
        "/v1/tenants/acme/exports",
        Some(&acme),
        Some(&json!({})),
    );
    assert_eq!(status, 429, "{v:#}");
    // A whole restore goes where the tenant lives: elsewhere is for operators, and never to a
    // connection string.
    let (status, v) = s.call(
        "POST",
        "/v1/tenants/acme/restore",
        Some(&acme),
        Some(&json!({ "identity": identity_text(&new_key), "into_database": "other", "dry_run": true })),
    );
    assert_eq!(status, 403, "{v:#}");
    let (status, v) = s.call(
        "POST",
        "/v1/tenants/acme/restore",
        Some(&operator),
        Some(
            &json!({ "identity": identity_text(&new_key), "dry_run": true,
                      "into_database": "host=evil.example dbname=x" }),
        ),
    );
    assert_eq!(status, 400, "{v:#}");
    // Its retention policy, set by itself; a hold, by the operator alone.
    s.expect(
        200,
        "PUT",
        "/v1/tenants/acme/policy",
        &acme,
        Some(&json!({ "keep_last": 3 })),
    );
    let policy = s.expect(200, "GET", "/v1/tenants/acme/policy", &acme, None);
    assert_eq!(policy["policy"]["keep_last"], 3, "{policy:#}");
    let (status, _) = s.call(
        "PUT",
        "/v1/tenants/acme/policy",
        Some(&acme),
        Some(&json!({ "keep_forever": true })),
    );
    assert_eq!(status, 400);
    s.expect(
        200,
        "PUT",
        "/v1/tenants/acme/hold",
        &operator,
        Some(&json!({ "reason": "audit 2031" })),
    );
    let shown = s.expect(200, "GET", "/v1/tenants/acme", &acme, None);
    assert_eq!(shown["hold"]["reason"], "audit 2031", "{shown:#}");
    s.expect(200, "DELETE", "/v1/tenants/acme/hold", &operator, None);
    // Forget: asked by the tenant, carried out after the operator confirms.
    let req = s.expect(202, "POST", "/v1/tenants/acme/forget", &acme, None);
    assert_eq!(req["state"], "pending", "{req:#}");
    let (status, _) = s.call("POST", "/v1/tenants/acme/forget/confirm", Some(&acme), None);
    assert_eq!(status, 403);
    let job = s.expect(
        202,
        "POST",
        "/v1/tenants/acme/forget/confirm",
        &operator,
        None,
    );
    let done = s.wait_job(&operator, &job_id(&job));
    assert_eq!(done["state"], "succeeded", "{done:#}");
    let tenants = s.expect(200, "GET", "/v1/tenants", &operator, None);
    assert!(
        tenants
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["id"] != "acme"),
        "{tenants:#}"
    );
    // The forgotten tenant's token is revoked with it.
    let (status, _) = s.call("GET", "/v1/whoami", Some(&acme), None);
    assert_eq!(status, 401);
    // globex is still there and restorable.
    s.expect(200, "GET", "/v1/tenants/globex/snapshots", &operator, None);
}

trait Later {
    fn now_plus(&self, d: Duration) -> time::OffsetDateTime;
}

impl Later for ManualClock {
    fn now_plus(&self, d: Duration) -> time::OffsetDateTime {
        vault_server::Clock::now(self) + d
    }
}

#[test]
fn support_restores_a_record_with_related_rows_through_escrow() {
    let (env, _key, _escrow, _control) = server_env("server_support", "");
    let operator = bootstrap_operator(&env.tv.vault);
    let s = TestServer::start(&env.tv.vault, "a", None);
    let support = make_token(&s, &operator, "support", &["globex"]);
    let id: i64 = env
        .db
        .scalar("SELECT min(id) FROM users WHERE tenant_id = 'globex'")
        .unwrap()
        .parse()
        .unwrap();
    let email = env
        .db
        .scalar(&format!("SELECT email FROM users WHERE id = {id}"))
        .unwrap();
    env.db.exec(&format!(
        "UPDATE users SET email = 'changed@live' WHERE id = {id}"
    ));
    let before_others = snapshot_except(&mut env.db.client(), "globex", &[]);

    let key = format!("id={id}");
    let versions = s.expect(
        200,
        "GET",
        &format!("/v1/tenants/globex/records?table=public.users&key={key}"),
        &support,
        None,
    );
    assert_eq!(versions.as_array().unwrap().len(), 1, "{versions:#}");
    let diff = s.expect(
        200,
        "POST",
        "/v1/tenants/globex/records/diff",
        &support,
        Some(&json!({ "table": "public.users", "key": key })),
    );
    let text = diff.to_string();
    assert!(
        text.contains("changed@live") && text.contains(&email),
        "{diff:#}"
    );
    let body = json!({ "table": "public.users", "keys": [key], "with_related": true });
    let plan = s.expect(
        200,
        "POST",
        "/v1/tenants/globex/records/restore",
        &support,
        Some(&body),
    );
    let confirmation = plan["confirmation"].as_str().unwrap().to_string();
    assert_eq!(plan["updated"], 1, "{plan:#}");
    // Nothing changed by the dry run.
    assert_eq!(
        env.db
            .scalar(&format!("SELECT email FROM users WHERE id = {id}"))
            .unwrap(),
        "changed@live"
    );
    let mut wrong = body.clone();
    wrong["confirmation"] = json!("0".repeat(64));
    let (status, v) = s.call(
        "POST",
        "/v1/tenants/globex/records/restore",
        Some(&support),
        Some(&wrong),
    );
    assert_eq!(status, 409, "{v:#}");
    let mut confirmed = body.clone();
    confirmed["confirmation"] = json!(confirmation);
    let done = s.expect(
        200,
        "POST",
        "/v1/tenants/globex/records/restore",
        &support,
        Some(&confirmed),
    );
    assert_eq!(done["updated"], 1, "{done:#}");
    assert_eq!(
        env.db
            .scalar(&format!("SELECT email FROM users WHERE id = {id}"))
            .unwrap(),
        email
    );
    assert_eq!(
        before_others,
        snapshot_except(&mut env.db.client(), "globex", &[])
    );
    // acme did not allow escrow: support with a scope over it would need acme's key.
    let all_support = make_token(&s, &operator, "support", &[]);
    let (status, v) = s.call(
        "POST",
        "/v1/tenants/acme/records/show",
        Some(&all_support),
        Some(&json!({ "table": "public.users", "key": "id=1" })),
    );
    assert_eq!(status, 400, "{v:#}");
    assert!(v.to_string().contains("escrow"), "{v:#}");
    // The audit trail names the support token.
    let audit = s.expect(200, "GET", "/v1/audit?tenant=globex", &support, None);
    assert!(
        audit
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "record-restore"
                && e["actor"].as_str().unwrap().starts_with("support:")),
        "{audit:#}"
    );
    let jobs = s.expect(200, "GET", "/v1/jobs", &support, None);
    assert!(jobs.to_string().contains("restore-records"), "{jobs:#}");
    // Erasure by support, through escrow: a dry run names what would go, and changes nothing.
    let erase = s.expect(
        200,
        "POST",
        "/v1/tenants/globex/erase",
        &support,
        Some(&json!({ "table": "public.users", "keys": [key], "cascade": true, "dry_run": true })),
    );
    assert!(erase.to_string().contains("public.users"), "{erase:#}");
    assert_eq!(
        env.db
            .scalar(&format!("SELECT email FROM users WHERE id = {id}"))
            .unwrap(),
        email
    );
}

#[test]
fn schedules_fire_under_an_injected_clock_and_never_overlap() {
    let start = time::macros::datetime!(2031-01-01 01:59:00 UTC);
    let clock = Arc::new(ManualClock::new(start));
    let (env, _key, _escrow, _control) = server_env(
        "server_schedule",
        "forget_grace_hours = 24\n[[server.schedule]]\nname = \"nightly\"\nkind = \"backup\"\ncron = \"0 0 2 * * *\"\n\
         [[server.schedule]]\nname = \"drill\"\nkind = \"drill\"\ncron = \"0 30 2 * * *\"\n",
    );
    let operator = bootstrap_operator(&env.tv.vault);
    let s = TestServer::start(&env.tv.vault, "a", Some(clock.clone()));
    let count = |kind: &str| -> Vec<Value> {
        s.expect(200, "GET", "/v1/jobs", &operator, None)
            .as_array()
            .unwrap()
            .iter()
            .filter(|j| j["kind"] == kind)
            .cloned()
            .collect()
    };
    std::thread::sleep(Duration::from_millis(600));
    assert!(count("backup").is_empty(), "fired before its time");
    // acme asks to be forgotten; with a grace period of 24 h, nothing happens before it ends.
    let acme = make_token(&s, &operator, "tenant", &["acme"]);
    let req = s.expect(202, "POST", "/v1/tenants/acme/forget", &acme, None);
    assert_eq!(req["due"], "2031-01-02T01:59:00Z", "{req:#}");
    clock.set(time::macros::datetime!(2031-01-01 02:00:01 UTC));
    let deadline = Instant::now() + Duration::from_secs(20);
    while count("backup").is_empty() {
        assert!(Instant::now() < deadline, "the schedule did not fire");
        std::thread::sleep(Duration::from_millis(100));
    }
    let job = count("backup")[0].clone();
    assert_eq!(job["schedule"], "nightly");
    assert_eq!(s.wait_job(&operator, &job_id(&job))["state"], "succeeded");
    // Still 02:00: no second run.
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(count("backup").len(), 1);
    // The drill at 02:30 restores globex (escrow) into a scratch schema and drops it.
    clock.set(time::macros::datetime!(2031-01-01 02:30:05 UTC));
    let deadline = Instant::now() + Duration::from_secs(20);
    while count("drill").is_empty() {
        assert!(Instant::now() < deadline, "the drill did not fire");
        std::thread::sleep(Duration::from_millis(100));
    }
    let drill = s.wait_job(&operator, &job_id(&count("drill")[0]));
    assert_eq!(drill["state"], "succeeded", "{drill:#}");
    assert_eq!(
        drill["result"]["drills"][0]["tenant"], "globex",
        "{drill:#}"
    );
    assert_eq!(drill["result"]["drills"][0]["ok"], true, "{drill:#}");
    assert_eq!(
        env.db
            .count("FROM pg_namespace WHERE nspname LIKE 'tvault_drill_%'"),
        0,
        "the scratch schema was dropped"
    );
    assert!(
        count("forget").is_empty(),
        "forgotten before the grace period ended"
    );
    // Three days missed: one run makes up for all of them.
    clock.set(time::macros::datetime!(2031-01-04 03:00:00 UTC));
    let deadline = Instant::now() + Duration::from_secs(20);
    while count("backup").len() < 2 {
        assert!(
            Instant::now() < deadline,
            "the missed runs were not made up"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(count("backup").len(), 2);
    // The grace period is over: the scheduler carried the request out, and acme's token went
    // with it.
    let forget = count("forget");
    assert_eq!(forget.len(), 1, "{forget:#?}");
    assert_eq!(
        s.wait_job(&operator, &job_id(&forget[0]))["state"],
        "succeeded"
    );
    let (status, _) = s.call("GET", "/v1/whoami", Some(&acme), None);
    assert_eq!(status, 401);
    let done = s.expect(200, "GET", "/v1/tenants/acme/forget", &operator, None);
    assert_eq!(done["state"], "done", "{done:#}");
    let m = reqwest::blocking::get(format!("{}/metrics", s.url))
        .unwrap()
        .text()
        .unwrap();
    assert!(m.contains("tvault_cycle_duration_seconds_count"), "{m}");
    assert!(
        m.contains("tvault_last_success_timestamp_seconds{kind=\"backup\"}"),
        "{m}"
    );
    let schedules = s.expect(200, "GET", "/v1/schedules", &operator, None);
    assert_eq!(schedules.as_array().unwrap().len(), 2, "{schedules:#}");
}

/// `store_lease_seconds = 8` at the top of a vault's config.
fn short_store_lease(vault: &std::path::Path) {
    let path = vault.join("config.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, format!("store_lease_seconds = 8\n{text}")).unwrap();
}

/// Waits until `id` runs on `node`.
fn wait_running(s: &TestServer, token: &str, id: &str, node: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let j = s.expect(200, "GET", &format!("/v1/jobs/{id}"), token, None);
        if j["state"] == "running" && j["node"] == node {
            return;
        }
        assert!(
            j["state"] == "queued" || j["state"] == "running",
            "the job ended before the kill: {j:#}"
        );
        assert!(Instant::now() < deadline, "{j:#}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Enough rows that a cycle takes a while.
const BIG: &str = "INSERT INTO audit (tenant_id, at, what) \
    SELECT CASE WHEN i % 2 = 0 THEN 'acme' ELSE 'globex' END, i, repeat(md5(i::text), 8) \
    FROM generate_series(1000, 400000) i";

#[test]
fn a_restart_in_the_middle_of_a_job_reports_it_interrupted_and_schedules_resume() {
    let clock = Arc::new(ManualClock::new(
        time::macros::datetime!(2031-01-01 01:00:00 UTC),
    ));
    let (env, key, _escrow, _control) = server_env(
        "server_restart",
        "[[server.schedule]]\nname = \"hourly\"\nkind = \"verify\"\ncron = \"0 0 * * * *\"\n",
    );
    env.db.exec(BIG);
    let operator = bootstrap_operator(&env.tv.vault);
    let s = TestServer::start(&env.tv.vault, "a", Some(clock.clone()));
    // A restore with the tenant's own key: the key lives only in this server's memory.
    let job = s.expect(
        202,
        "POST",
        "/v1/tenants/acme/restore",
        &operator,
        Some(&json!({ "identity": identity_text(&key), "dry_run": true })),
    );
    let cycle = s.expect(202, "POST", "/v1/backups", &operator, Some(&json!({})));
    let id = job_id(&cycle);
    wait_running(&s, &operator, &id, "a");
    s.kill();
    let s = TestServer::start(&env.tv.vault, "a", Some(clock.clone()));
    let j = s.expect(200, "GET", &format!("/v1/jobs/{id}"), &operator, None);
    assert_eq!(j["state"], "interrupted", "{j:#}");
    assert!(j["error"].as_str().unwrap().contains("stopped"), "{j:#}");
    let restore = s.expect(
        200,
        "GET",
        &format!("/v1/jobs/{}", job_id(&job)),
        &operator,
        None,
    );
    assert!(
        ["succeeded", "interrupted"].contains(&restore["state"].as_str().unwrap()),
        "{restore:#}"
    );
    // The vault is consistent: a new cycle succeeds, and the schedule goes on after the restart.
    let again = s.expect(202, "POST", "/v1/backups", &operator, Some(&json!({})));
    assert_eq!(s.wait_job(&operator, &job_id(&again))["state"], "succeeded");
    clock.set(time::macros::datetime!(2031-01-01 02:00:01 UTC));
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let jobs = s.expect(200, "GET", "/v1/jobs", &operator, None);
        if let Some(v) = jobs
            .as_array()
            .unwrap()
            .iter()
            .find(|j| j["kind"] == "verify")
        {
            assert_eq!(s.wait_job(&operator, &job_id(v))["state"], "succeeded");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the schedule did not resume: {jobs:#}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn two_servers_share_one_queue_and_one_takes_over_a_dead_ones_job() {
    let (env, key, escrow, control) = server_env("server_two", "workers = 1");
    // A dead host's store lease blocks others' cycles until it runs out: 8 s here.
    short_store_lease(&env.tv.vault);
    env.db.exec(BIG);
    // Host b: its own state directory on the same store, the same control database.
    let code = std::fs::read_to_string(env.tv.vault.join("vault.key")).unwrap();
    let b = Tvault::new(env.path("host-b"));
    let store = env.tv.vault.join("store").to_string_lossy().into_owned();
    b.ok(&[
        "init",
        "--source",
        &env.db.url,
        "--vault-key",
        code.trim(),
        "--store",
        &store,
        "--escrow-recipient",
        &escrow.recipient,
    ]);
    let acme = format!("acme={}", key.identity_str());
    let globex = format!("globex={}", key.identity_str());
    b.ok(&[
        "inventory",
        "rebuild",
        "--identity",
        &acme,
        "--identity",
        &globex,
    ]);
    short_store_lease(&b.vault);
    configure_server(
        &b.vault,
        &control,
        &format!("escrow_identity = {:?}", escrow.identity.to_str().unwrap()),
    );
    let operator = bootstrap_operator(&env.tv.vault);
    let a = TestServer::start(&env.tv.vault, "a", None);
    let sb = TestServer::start(&b.vault, "b", None);
    // Jobs submitted to either run once, on either.
    let mut ids = vec![];
    for (i, s) in [&a, &sb, &a, &sb].iter().enumerate() {
        let v = s.expect(202, "POST", "/v1/verify", &operator, Some(&json!({})));
        ids.push((i, job_id(&v)));
    }
    for (_, id) in &ids {
        let j = a.wait_job(&operator, id);
        assert_eq!(j["state"], "succeeded", "{j:#}");
        assert_eq!(j["attempts"], 1, "{j:#}");
    }
    // A cycle run by a reaches b's inventory: b lists its snapshots (and finds records in
    // them: globex allowed escrow, whose identity b holds).
    env.db
        .exec("UPDATE users SET email = 'moved@globex.example' WHERE id = 121");
    let cycle = a.expect(
        202,
        "POST",
        "/v1/backups",
        &operator,
        Some(&json!({ "tenants": ["globex"] })),
    );
    assert_eq!(a.wait_job(&operator, &job_id(&cycle))["state"], "succeeded");
    let on_a = a.expect(200, "GET", "/v1/tenants/globex/snapshots", &operator, None);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let on_b = sb.expect(200, "GET", "/v1/tenants/globex/snapshots", &operator, None);
        if on_b == on_a {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "b did not catch up: {on_a:#} vs {on_b:#}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let latest = on_a.as_array().unwrap().last().unwrap()["snapshot"]
        .as_str()
        .unwrap()
        .to_string();
    let found = sb.expect(
        200,
        "GET",
        "/v1/tenants/globex/records?table=public.users&key=id=121",
        &operator,
        None,
    );
    assert!(found.to_string().contains(&latest), "{found:#}");
    assert_eq!(on_a.as_array().unwrap().len(), 2, "{on_a:#}");
    // b stops taking jobs for a moment (killed), a takes a cycle and dies in the middle of it.
    sb.kill();
    let cycle = a.expect(202, "POST", "/v1/backups", &operator, Some(&json!({})));
    let id = job_id(&cycle);
    wait_running(&a, &operator, &id, "a");
    // Queued behind it on a's one worker: a restore with the tenant's key, which only a holds.
    let local = a.expect(
        202,
        "POST",
        "/v1/tenants/globex/restore",
        &operator,
        Some(&json!({ "identity": identity_text(&key), "dry_run": true })),
    );
    a.kill();
    let sb = TestServer::start(&b.vault, "b", None);
    let l = sb.wait_job(&operator, &job_id(&local));
    assert_eq!(l["state"], "interrupted", "{l:#}");
    assert!(l["error"].as_str().unwrap().contains("key"), "{l:#}");
    let j = sb.wait_job(&operator, &id);
    assert_eq!(j["state"], "succeeded", "{j:#}");
    assert_eq!(j["node"], "b", "{j:#}");
    assert_eq!(j["attempts"], 2, "{j:#}");
    assert!(j["error"].is_null(), "{j:#}");

    // A key rotation with revocation on a reaches b before b's next cycle: b seals globex's
    // new snapshot to the new data key, which the old identity does not open.
    let a = TestServer::start(&env.tv.vault, "a", None);
    let globex_token = make_token(&a, &operator, "tenant", &["globex"]);
    let new_key = env.keygen("globex-new.txt");
    a.expect(
        200,
        "PUT",
        "/v1/tenants/globex/recipients",
        &globex_token,
        Some(&json!({ "identity": identity_text(&key), "recipients": [new_key.recipient], "revoke": true })),
    );
    // A policy and a hold set through a: b takes them (the servers share their memory of the
    // versions last written), and releases the hold.
    a.expect(
        200,
        "PUT",
        "/v1/tenants/globex/policy",
        &globex_token,
        Some(&json!({ "keep_last": 5 })),
    );
    a.expect(
        200,
        "PUT",
        "/v1/tenants/globex/hold",
        &operator,
        Some(&json!({ "reason": "case 7" })),
    );
    a.kill();
    let shown = sb.expect(200, "GET", "/v1/tenants/globex", &operator, None);
    assert_eq!(shown["policy"]["keep_last"], 5, "{shown:#}");
    assert_eq!(shown["hold"]["reason"], "case 7", "{shown:#}");
    sb.expect(200, "DELETE", "/v1/tenants/globex/hold", &operator, None);
    let retention = sb.expect(
        202,
        "POST",
        "/v1/retention",
        &operator,
        Some(&json!({ "dry_run": true })),
    );
    assert_eq!(
        sb.wait_job(&operator, &job_id(&retention))["state"],
        "succeeded"
    );
    env.db
        .exec("UPDATE users SET email = 'after-rotation@globex.example' WHERE id = 122");
    let cycle = sb.expect(
        202,
        "POST",
        "/v1/backups",
        &operator,
        Some(&json!({ "tenants": ["globex"] })),
    );
    let done = sb.wait_job(&operator, &job_id(&cycle));
    assert_eq!(done["state"], "succeeded", "{done:#}");
    assert_eq!(done["node"], "b", "{done:#}");
    let with = |k: &Key| {
        let job = sb.expect(
            202,
            "POST",
            "/v1/tenants/globex/restore",
            &operator,
            Some(&json!({ "identity": identity_text(k), "dry_run": true })),
        );
        sb.wait_job(&operator, &job_id(&job))
    };
    let new = with(&new_key);
    assert_eq!(new["state"], "succeeded", "{new:#}");
    let old = with(&key);
    assert_eq!(
        old["state"], "failed",
        "the revoked key still opens the new snapshot: {old:#}"
    );
}

/// A CA, a certificate it signed for `names`, and the certificate's key (PEM).
fn signed(ca: &rcgen::Issuer<'_, rcgen::KeyPair>, names: &[&str]) -> (String, String) {
    let key = rcgen::KeyPair::generate().unwrap();
    let params =
        rcgen::CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
            .unwrap();
    let cert = params.signed_by(&key, ca).unwrap();
    (cert.pem(), key.serialize_pem())
}

#[test]
fn tls_with_client_certificates_and_no_plain_http_off_loopback() {
    let env = Env::new("server_tls", &FIX);
    env.tv.init(&env.db.url, &[]);
    let control = TestDb::new("server_tls_control");
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let ca = rcgen::Issuer::new(ca_params, ca_key);
    let (server_cert, server_key) = signed(&ca, &["localhost", "127.0.0.1"]);
    let (client_cert, client_key) = signed(&ca, &["support-desk"]);
    let write = |name: &str, text: &str| {
        let p = env.path(name);
        std::fs::write(&p, text).unwrap();
        p.to_str().unwrap().to_string()
    };
    let extra = format!(
        "tls_cert = {:?}\ntls_key = {:?}\nclient_ca = {:?}",
        write("server.pem", &server_cert),
        write("server.key", &server_key),
        write("ca.pem", &ca_cert.pem()),
    );
    configure_server(&env.tv.vault, &control, &extra);
    let operator = bootstrap_operator(&env.tv.vault);

    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = env.tv.vault.clone();
    let start = |bind: &str| {
        let dir = dir.clone();
        let bind = bind.to_string();
        rt.block_on(async move {
            let config = vault_core::Vault::load_config(&dir).unwrap();
            let mut server = vault_server::ServerConfig::from_vault(&config).unwrap();
            if bind.starts_with("0.0.0.0") {
                server.tls_cert = None;
                server.tls_key = None;
                server.client_ca = None;
            }
            let vault = vault_core::Vault::open_waiting(&dir, config, Duration::from_secs(20))
                .await
                .unwrap();
            let listener = std::net::TcpListener::bind(&bind).unwrap();
            vault_server::Server::start(vault, server, Default::default(), listener).await
        })
    };
    // Plain HTTP on an address others can reach is refused.
    let refused = start("0.0.0.0:0")
        .err()
        .expect("plain HTTP on 0.0.0.0 was accepted");
    assert!(refused.to_string().contains("plain HTTP"), "{refused:#}");

    let server = start("127.0.0.1:0").unwrap();
    let url = format!("https://localhost:{}/v1/whoami", server.addr().port());
    let root = reqwest::Certificate::from_pem(ca_cert.pem().as_bytes()).unwrap();
    let with_cert = reqwest::blocking::Client::builder()
        .add_root_certificate(root.clone())
        .identity(
            reqwest::Identity::from_pem(format!("{client_cert}{client_key}").as_bytes()).unwrap(),
        )
        .build()
        .unwrap();
    let who: Value = with_cert
        .get(&url)
        .bearer_auth(&operator)
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(who["role"], "operator", "{who:#}");
    // Without a client certificate the handshake fails: no request reaches a route.
    let without = reqwest::blocking::Client::builder()
        .add_root_certificate(root)
        .build()
        .unwrap();
    let err = without.get(&url).bearer_auth(&operator).send();
    assert!(
        err.is_err(),
        "a client without a certificate got {:?}",
        err.map(|r| r.status())
    );
    rt.block_on(server.shutdown(Duration::from_secs(5)));
}

#[test]
fn the_binary_makes_a_token_serves_and_stops_on_sigterm() {
    let env = Env::new("server_binary", &FIX);
    env.tv.init(&env.db.url, &[]);
    let key = env.keygen("key.txt");
    env.tv.tenant_add("acme", &key);
    let control = TestDb::new("server_binary_control");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    configure_server(
        &env.tv.vault,
        &control,
        &format!("listen = \"127.0.0.1:{port}\""),
    );
    let run = |args: &[&str]| {
        std::process::Command::new(server_bin())
            .arg("--vault")
            .arg(&env.tv.vault)
            .args(args)
            .output()
            .unwrap()
    };
    let help = run(&["--help"]);
    let text = String::from_utf8_lossy(&help.stdout);
    assert!(
        text.contains("token") && text.contains("[server]"),
        "{text}"
    );
    let made = run(&["token", "add", "--role", "tenant", "--tenant", "nobody"]);
    assert!(
        !made.status.success(),
        "a token for an unknown tenant was made"
    );
    let made = run(&["token", "add", "--role", "operator", "--label", "ops"]);
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let made: Value = serde_json::from_slice(&made.stdout).unwrap();
    let token = made["token"].as_str().unwrap().to_string();
    let listed = run(&["token", "list"]);
    let listed = String::from_utf8_lossy(&listed.stdout);
    assert!(
        listed.contains("ops") && !listed.contains(&token),
        "{listed}"
    );

    let child = std::process::Command::new(server_bin())
        .arg("--vault")
        .arg(&env.tv.vault)
        .arg("--log-json")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::blocking::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(r) = http.get(format!("{base}/readyz")).send() {
            if r.status().is_success() {
                break;
            }
        }
        assert!(
            Instant::now() < deadline,
            "tvault-server did not become ready"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let health: Value = http
        .get(format!("{base}/healthz"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(health["status"], "ok");
    let tenants: Value = http
        .get(format!("{base}/v1/tenants"))
        .bearer_auth(&token)
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(tenants[0]["id"], "acme", "{tenants:#}");
    let r = http
        .get(format!("{base}/v1/tenants"))
        .bearer_auth("tvt_wrong")
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    assert!(r.headers().contains_key("x-request-id"));
    let status = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "exit {:?}", out.status);
    let log = String::from_utf8_lossy(&out.stderr);
    // Structured logs: one JSON object per line, requests with their ids.
    assert!(
        log.lines()
            .any(|l| l.starts_with('{') && l.contains("request_id")),
        "{log}"
    );
    assert!(!log.contains(&token), "the log shows a token");
}

#[test]
fn a_running_job_is_cancelled_and_a_queued_one_never_runs() {
    let (env, _key, _escrow, _control) = server_env("server_cancel", "workers = 1");
    env.db.exec(BIG);
    let snapshots = env.tv.snapshots().len();
    let operator = bootstrap_operator(&env.tv.vault);
    let s = TestServer::start(&env.tv.vault, "a", None);
    let running = job_id(&s.expect(202, "POST", "/v1/backups", &operator, Some(&json!({}))));
    wait_running(&s, &operator, &running, "a");
    // One worker: this one waits in the queue.
    let queued = job_id(&s.expect(202, "POST", "/v1/verify", &operator, None));
    let j = s.expect(
        200,
        "POST",
        &format!("/v1/jobs/{queued}/cancel"),
        &operator,
        None,
    );
    assert_eq!(j["state"], "cancelled", "{j:#}");
    s.expect(
        200,
        "POST",
        &format!("/v1/jobs/{running}/cancel"),
        &operator,
        None,
    );
    let j = s.wait_job(&operator, &running);
    assert_eq!(j["state"], "cancelled", "{j:#}");
    let (status, _) = s.call(
        "POST",
        &format!("/v1/jobs/{running}/cancel"),
        Some(&operator),
        None,
    );
    assert_eq!(status, 409, "an ended job cannot be cancelled");
    std::thread::sleep(Duration::from_millis(500));
    let q = s.expect(200, "GET", &format!("/v1/jobs/{queued}"), &operator, None);
    assert_eq!(q["state"], "cancelled", "{q:#}");
    assert!(q["started"].is_null(), "{q:#}");
    // The cancelled cycle committed nothing, and the next one works.
    drop(s);
    assert_eq!(env.tv.snapshots().len(), snapshots);
    env.tv.backup_all();
    env.tv.ok(&["verify"]);
}
