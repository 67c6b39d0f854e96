//! The support console (docs/CONSOLE.md) in a real browser: headless Chromium driven over
//! WebDriver. Support staff sign in, find a tenant and a record, compare it with the live row,
//! make the dry run, confirm, watch the job and read its audit entry, and the row is back in
//! PostgreSQL; a token of another scope is refused. With `TVAULT_SCREENSHOTS=DIR` set, each page
//! is saved there (docs/console/ holds the ones in the docs).

use fantoccini::{Client, Locator};
use serde_json::json;
use std::path::PathBuf;
use tests::*;

fn shots() -> Option<PathBuf> {
    std::env::var_os("TVAULT_SCREENSHOTS").map(PathBuf::from)
}

async fn shot(c: &Client, name: &str) {
    let png = c.screenshot().await.expect("screenshot");
    assert!(png.len() > 1000, "an empty screenshot of {name}");
    if let Some(dir) = shots() {
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
    }
}

/// The page's text.
async fn text(c: &Client) -> String {
    c.find(Locator::Css("body"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// Every control of the page has a label, and the page has no script.
async fn accessible(c: &Client, page: &str) {
    let unlabelled = c
        .execute(
            "return [...document.querySelectorAll('input:not([type=hidden]),textarea,select')]\
             .filter(e => e.labels.length === 0 && !e.getAttribute('aria-label')).map(e => e.name)",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(unlabelled, json!([]), "controls without a label on {page}");
    let scripts = c
        .execute("return document.scripts.length", vec![])
        .await
        .unwrap();
    assert_eq!(scripts, json!(0), "{page} has a script");
}

/// Clicks `what`, then waits until the page that follows shows `then`.
async fn press(c: &Client, what: Locator<'_>, then: Locator<'_>) {
    c.find(what).await.unwrap().click().await.unwrap();
    c.wait().for_element(then).await.unwrap();
}

async fn sign_in(c: &Client, base: &str, token: &str) {
    c.goto(&format!("{base}/ui")).await.unwrap();
    assert!(c.current_url().await.unwrap().path().ends_with("/ui/login"));
    let field = c.find(Locator::Id("token")).await.unwrap();
    // By keyboard alone: type the token and press Enter.
    field.send_keys(&format!("{token}\u{E007}")).await.unwrap();
    c.wait()
        .for_url(&format!("{base}/ui").parse().unwrap())
        .await
        .unwrap();
}

#[test]
fn support_finds_compares_and_restores_a_record_in_the_browser() {
    let (env, _key, _escrow, _control) = crate::server::server_env("console", "");
    env.db
        .exec("UPDATE users SET email = email || '.old' WHERE tenant_id = 'globex'");
    env.tv.backup_all();
    env.db
        .exec("UPDATE users SET email = 'typo@globex' WHERE id = 121");
    let email = "user1@globex.example.old";
    let others = snapshot_except(&mut env.db.client(), "globex", &[]);
    let operator = bootstrap_operator(&env.tv.vault);
    let server = TestServer::start(&env.tv.vault, "a", None);
    let support = make_token(&server, &operator, "support", &["globex"]);
    let other_scope = make_token(&server, &operator, "support", &["acme"]);
    let base = server.url.clone();
    let browser = Browser::start();
    let rt = tokio::runtime::Runtime::new().unwrap();

    let job_url = rt.block_on(async {
        let c = browser.session().await;
        c.goto(&format!("{base}/ui/login")).await.unwrap();
        accessible(&c, "sign-in").await;
        shot(&c, "login").await;
        sign_in(&c, &base, &support).await;
        // Tenant search: only globex is in this token's scope.
        let q = c.find(Locator::Id("q")).await.unwrap();
        q.send_keys("glob\u{E007}").await.unwrap();
        c.wait()
            .for_element(Locator::LinkText("globex"))
            .await
            .unwrap();
        let page = text(&c).await;
        assert!(!page.contains("acme"), "{page}");
        accessible(&c, "tenants").await;
        shot(&c, "tenants").await;
        // The timeline: two snapshots, newest first.
        press(&c, Locator::LinkText("globex"), Locator::Id("table")).await;
        let page = text(&c).await;
        assert!(
            page.contains("Snapshots") && page.contains("Legal hold"),
            "{page}"
        );
        let rows = c.find_all(Locator::Css("table tbody tr")).await.unwrap();
        assert_eq!(rows.len(), 2, "{page}");
        accessible(&c, "tenant").await;
        shot(&c, "tenant").await;
        // Record lookup by table and key.
        c.find(Locator::Id("table"))
            .await
            .unwrap()
            .send_keys("public.users")
            .await
            .unwrap();
        let k = c.find(Locator::Id("key")).await.unwrap();
        k.send_keys("id=121\u{E007}").await.unwrap();
        c.wait()
            .for_element(Locator::Css("tr.changed"))
            .await
            .unwrap();
        let page = text(&c).await;
        assert!(
            page.contains("changed") && page.contains("added"),
            "versions: {page}"
        );
        assert!(
            page.contains("typo@globex") && page.contains(email),
            "diff: {page}"
        );
        let differing = c.find_all(Locator::Css("tr.changed th")).await.unwrap();
        assert_eq!(differing.len(), 1, "only email differs: {page}");
        assert_eq!(differing[0].text().await.unwrap(), "email");
        accessible(&c, "record").await;
        shot(&c, "record").await;
        // The dry run lists what would change; nothing has yet.
        let confirm_form = Locator::Css("form[action$='/restore/confirm']");
        press(
            &c,
            Locator::Css("form[action$='/restore'] button"),
            confirm_form,
        )
        .await;
        let page = text(&c).await;
        assert!(
            page.contains("update") && page.contains("Nothing has changed yet"),
            "{page}"
        );
        accessible(&c, "dry run").await;
        shot(&c, "dry-run").await;
        let confirm = Locator::Css("form[action$='/restore/confirm'] button");
        press(&c, confirm, Locator::Css("strong.succeeded")).await;
        let page = text(&c).await;
        assert!(
            page.contains("Audit entry") && page.contains("record-restore"),
            "{page}"
        );
        assert!(
            page.contains("Updated 1") || page.contains("updated 1"),
            "{page}"
        );
        accessible(&c, "job").await;
        shot(&c, "job").await;
        let job_url = c.current_url().await.unwrap().to_string();
        c.goto(&format!("{base}/ui/tenants/globex/audit"))
            .await
            .unwrap();
        let page = text(&c).await;
        assert!(
            page.contains("record-restore") && page.contains("support:"),
            "{page}"
        );
        shot(&c, "audit").await;
        c.close().await.unwrap();
        job_url
    });
    // The row is back in PostgreSQL, and nothing else changed.
    assert_eq!(
        env.db
            .scalar("SELECT email FROM users WHERE id = 121")
            .unwrap(),
        email
    );
    assert_eq!(others, snapshot_except(&mut env.db.client(), "globex", &[]));

    // A token of another scope sees neither globex nor its job, and cannot post to it.
    rt.block_on(async {
        let c = browser.session().await;
        sign_in(&c, &base, &other_scope).await;
        let page = text(&c).await;
        assert!(page.contains("acme") && !page.contains("globex"), "{page}");
        c.goto(&format!("{base}/ui/tenants/globex")).await.unwrap();
        let page = text(&c).await;
        assert!(
            page.contains("no such tenant") && !page.contains("Snapshots"),
            "{page}"
        );
        c.goto(&job_url).await.unwrap();
        let page = text(&c).await;
        assert!(page.contains("no such job"), "{page}");
        c.goto(&format!(
            "{base}/ui/tenants/globex/records?table=public.users&key=id=121"
        ))
        .await
        .unwrap();
        let page = text(&c).await;
        assert!(!page.contains(email) && !page.contains("typo"), "{page}");
        shot(&c, "refused").await;
        // Signing out forgets the token.
        c.goto(&format!("{base}/ui")).await.unwrap();
        c.find(Locator::Css("header form button"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        c.goto(&format!("{base}/ui")).await.unwrap();
        assert!(c.current_url().await.unwrap().path().ends_with("/ui/login"));
        c.close().await.unwrap();
    });
    // A wrong token gets the sign-in page again.
    let r = reqwest::blocking::Client::new()
        .post(format!("{base}/ui/login"))
        .form(&[("token", "tvt_wrong")])
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    // A form posted from another site is refused even with the cookie.
    let r = reqwest::blocking::Client::new()
        .post(format!("{base}/ui/tenants/globex/restore"))
        .header("cookie", format!("tvault_token={support}"))
        .header("sec-fetch-site", "cross-site")
        .form(&[
            ("table", "public.users"),
            ("key", "id=121"),
            ("snapshot", "latest"),
        ])
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);
}
