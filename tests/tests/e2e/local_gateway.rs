//! End-to-end tests of the real `wabridge` binary: built once, spawned on port 0 with a temporary
//! data dir, driven over loopback HTTP and through its CLI, its SQLite file inspected directly.

use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use wabridge_core::signature::{sign, AppSecret};
use wabridge_tests::gateway::{self, Gateway};

const SECRET: &str = "local-gateway-test-secret";
const VERIFY_TOKEN: &str = "local-gateway-verify-token";

const ENV: &[(&str, &str)] = &[
    ("WHATSAPP_APP_SECRET", SECRET),
    ("WHATSAPP_VERIFY_TOKEN", VERIFY_TOKEN),
];

/// The gateway over `data` with the test's secret and verify token.
fn start(data: &Path) -> Gateway {
    Gateway::start_in(data, ENV)
}

fn cli(args: &[&str], data: &Path, env: &[(&str, &str)]) -> Output {
    gateway::cli(data, args, env)
}

fn records(data: &Path) -> Vec<Value> {
    gateway::json_lines(&gateway::cli_ok(data, &["records", "--json"], &[]))
}

fn stats(data: &Path) -> Value {
    serde_json::from_str(&gateway::cli_ok(data, &["stats"], &[])).unwrap()
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

async fn post_signed(url: &str, body: &[u8]) -> (u16, Value) {
    gateway::post_signed_with(url, SECRET, body).await
}

fn message(id: &str, from: &str, text: &str) -> Value {
    json!({"from": from, "id": id, "timestamp": "1749416383", "type": "text", "text": {"body": text}})
}

/// A batched delivery: two entries; messages, a status and a field we do not map.
fn batch(tag: &str) -> Vec<u8> {
    json!({
        "object": "whatsapp_business_account",
        "entry": [
            {"id": "102290129340398", "changes": [
                {"field": "messages", "value": {
                    "messaging_product": "whatsapp",
                    "metadata": {"display_phone_number": "15550783881", "phone_number_id": "106540352242922"},
                    "contacts": [{"profile": {"name": "María José"}, "wa_id": "5215512345678"}],
                    "messages": [
                        message(&format!("wamid.{tag}.1"), "5215512345678", "Hola, ¿tienen envío a Monterrey?"),
                        message(&format!("wamid.{tag}.2"), "5215512345678", "Gracias")
                    ]}},
                {"field": "messages", "value": {
                    "messaging_product": "whatsapp",
                    "metadata": {"display_phone_number": "15550783881", "phone_number_id": "106540352242922"},
                    "statuses": [{"id": format!("wamid.{tag}.out"), "status": "delivered",
                                  "timestamp": "1749416400", "recipient_id": "5511987654321"}]}}
            ]},
            {"id": "102290129340399", "changes": [
                {"field": "brand_new_field_meta_added", "value": {"anything": format!("{tag}-x")}}
            ]}
        ]
    })
    .to_string()
    .into_bytes()
}

/// Sorted `event_id`s of the records made from events (activities and unknowns; contacts are
/// merged per person and carry none).
fn keys(records: &[Value]) -> Vec<String> {
    let mut k: Vec<String> = records
        .iter()
        .filter(|r| r["kind"] == "activity" || r["kind"] == "unknown")
        .filter_map(|r| r["event_id"].as_str().map(str::to_string))
        .collect();
    k.sort();
    k
}

fn count_kind(records: &[Value], kind: &str) -> usize {
    records.iter().filter(|r| r["kind"] == kind).count()
}

#[tokio::test]
async fn handshake_echoes_the_challenge_only_with_the_right_token() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path());
    let ok = client()
        .get(format!(
            "{}?hub.mode=subscribe&hub.verify_token={VERIFY_TOKEN}&hub.challenge=1158201444",
            server.webhook()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status().as_u16(), 200);
    assert!(ok.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    assert_eq!(ok.text().await.unwrap(), "1158201444");
    let bad = client()
        .get(format!(
            "{}?hub.mode=subscribe&hub.verify_token=wrong&hub.challenge=1158201444",
            server.webhook()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status().as_u16(), 403);
    let health = client()
        .get(format!("{}/healthz", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status().as_u16(), 200);
}

#[tokio::test]
async fn signed_deliveries_become_records_once_even_when_posted_twice() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path());
    let body = batch("A");
    let (status, _) = post_signed(&server.webhook(), &body).await;
    assert_eq!(status, 200);
    // Meta retries the same delivery (same bytes) and a later one repeats one message.
    let (status, _) = post_signed(&server.webhook(), &body).await;
    assert_eq!(status, 200);
    server.wait_drained();
    let recs = records(dir.path());
    assert!(
        recs.iter().all(|r| r["kind"].is_string()),
        "every line has a kind: {recs:#?}"
    );
    // 2 inbound messages + 1 status = 3 activities, 1 unknown field, 2 people: each once.
    assert_eq!(count_kind(&recs, "activity"), 3, "{recs:#?}");
    assert_eq!(count_kind(&recs, "unknown"), 1, "{recs:#?}");
    assert_eq!(count_kind(&recs, "contact"), 2, "{recs:#?}");
    // The default lead policy opens one lead per person's first conversation: once each too.
    let leads: Vec<&Value> = recs.iter().filter(|r| r["kind"] == "lead").collect();
    let mut lead_contacts: Vec<&str> = leads
        .iter()
        .map(|r| r["contact_id"].as_str().expect("lead has a contact_id"))
        .collect();
    lead_contacts.sort();
    lead_contacts.dedup();
    assert!(!leads.is_empty(), "{recs:#?}");
    assert_eq!(
        lead_contacts.len(),
        leads.len(),
        "one lead per person: {recs:#?}"
    );
    let others = recs
        .iter()
        .filter(|r| r["kind"] != "lead" && r["kind"] != "attribution")
        .count();
    assert_eq!(others, 6, "{recs:#?}");
    let unknown = recs.iter().find(|r| r["kind"] == "unknown").unwrap();
    assert_eq!(unknown["field"], "brand_new_field_meta_added");
    let text = recs
        .iter()
        .find(|r| r["message_id"] == "wamid.A.1")
        .expect("the first message became an activity");
    assert_eq!(text["text"], "Hola, ¿tienen envío a Monterrey?");

    let s = stats(dir.path());
    assert_eq!(s["dedupe_keys"], 4);
    assert_eq!(s["events_queue"]["dead"], 0);
}

#[tokio::test]
async fn bad_requests_get_precise_errors() {
    let dir = tempfile::tempdir().unwrap();
    let server = Gateway::start_in(
        dir.path(),
        &[
            ("WHATSAPP_APP_SECRET", SECRET),
            ("WABRIDGE_MAX_BODY_BYTES", "4096"),
        ],
    );
    let c = client();
    let body = batch("B");

    let unsigned = c
        .post(server.webhook())
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(unsigned.status().as_u16(), 401);
    let v: Value = unsigned.json().await.unwrap();
    assert_eq!(v["error"]["code"], "unauthorized");

    let wrong = c
        .post(server.webhook())
        .header(
            "x-hub-signature-256",
            sign(&AppSecret::new("other").unwrap(), &body),
        )
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status().as_u16(), 401);

    let (status, v) = post_signed(&server.webhook(), b"{\"object\": \"whatsapp_business_acc").await;
    assert_eq!(status, 400, "{v}");
    assert!(
        v["error"]["code"].is_string() && v["error"]["message"].is_string(),
        "{v}"
    );

    let (status, v) = post_signed(&server.webhook(), br#"{"object":"page","entry":[]}"#).await;
    assert_eq!(status, 400, "{v}");
    assert!(
        v["error"]["message"].as_str().unwrap().contains("object"),
        "names the problem: {v}"
    );

    let big = vec![b' '; 4097];
    let (status, v) = post_signed(&server.webhook(), &big).await;
    assert_eq!(status, 413, "{v}");
    assert_eq!(v["error"]["code"], "payload_too_large");
    let huge = vec![b' '; 3 * 1024 * 1024];
    let (status, _) = post_signed(&server.webhook(), &huge).await;
    assert_eq!(status, 413);

    let missing = c.get(format!("{}/nope", server.url)).send().await.unwrap();
    assert_eq!(missing.status().as_u16(), 404);
    assert_eq!(
        missing.json::<Value>().await.unwrap()["error"]["code"],
        "not_found"
    );
    let put = c.put(server.webhook()).body("x").send().await.unwrap();
    assert_eq!(put.status().as_u16(), 405);

    // None of that left anything behind.
    server.wait_drained();
    assert!(records(dir.path()).is_empty());
}

#[tokio::test]
async fn records_and_dedupe_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path());
    let (status, _) = post_signed(&server.webhook(), &batch("R")).await;
    assert_eq!(status, 200);
    server.wait_drained();
    assert!(server.terminate(), "SIGTERM stops the server cleanly");

    let server = start(dir.path());
    assert_eq!(keys(&records(dir.path())).len(), 4);
    // Meta retrying after our restart must still be recognised.
    let (status, _) = post_signed(&server.webhook(), &batch("R")).await;
    assert_eq!(status, 200);
    let (status, _) = post_signed(&server.webhook(), &batch("S")).await;
    assert_eq!(status, 200);
    server.wait_drained();
    let recs = records(dir.path());
    assert_eq!(keys(&recs).len(), 8);
    let mut unique = keys(&recs);
    unique.dedup();
    assert_eq!(unique.len(), 8, "no duplicates after the restart");
}

/// A store failure between accepting the request and queuing its events: a trigger (installed
/// in the live database file from outside the process) aborts the dedupe mark of one event (its
/// append to the recent-keys log), after earlier events of the same delivery were already
/// enqueued and marked in that transaction.
#[tokio::test]
async fn a_store_failure_answers_5xx_and_the_retry_loses_and_duplicates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path());
    let db = rusqlite::Connection::open(dir.path().join("wabridge.db")).unwrap();
    db.busy_timeout(Duration::from_secs(5)).unwrap();
    db.execute_batch(
        "CREATE TRIGGER inject_fault BEFORE INSERT ON dedupe_log
         WHEN NEW.key LIKE '%wamid.F.2%' BEGIN SELECT RAISE(ABORT, 'injected fault'); END;",
    )
    .unwrap();
    let body = batch("F");
    let (status, v) = post_signed(&server.webhook(), &body).await;
    assert!(
        status >= 500,
        "a store failure must ask Meta to retry, got {status}: {v}"
    );
    let queued: i64 = db
        .query_row("SELECT count(*) FROM queue_messages", [], |r| r.get(0))
        .unwrap();
    let marked: i64 = db
        .query_row(
            "SELECT (SELECT count(*) FROM dedupe_keys) + (SELECT count(*) FROM dedupe_log)",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(
        (queued, marked),
        (0, 0),
        "nothing of the failed delivery was kept"
    );

    db.execute_batch("DROP TRIGGER inject_fault").unwrap();
    let (status, _) = post_signed(&server.webhook(), &body).await;
    assert_eq!(status, 200);
    let (status, _) = post_signed(&server.webhook(), &body).await;
    assert_eq!(status, 200);
    server.wait_drained();
    let recs = records(dir.path());
    let mut k = keys(&recs);
    assert_eq!(
        k.len(),
        4,
        "every event of the retried delivery exactly once: {k:?}"
    );
    k.dedup();
    assert_eq!(k.len(), 4);
}

#[tokio::test]
async fn dev_secrets_are_generated_once_private_and_usable_by_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = Gateway::start_in(&data, &[]);
    let printed = server.startup_lines.join("\n");
    let secrets: Value =
        serde_json::from_slice(&std::fs::read(data.join("secrets.json")).unwrap()).unwrap();
    let app_secret = secrets["app_secret"].as_str().unwrap().to_string();
    assert!(app_secret.len() >= 32);
    assert!(printed.contains(&app_secret), "printed once on first start");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(data.join("secrets.json"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    // `sign` uses the generated secret, and `post` gets 200 with it.
    let file = dir.path().join("payload.json");
    std::fs::write(&file, batch("P")).unwrap();
    let out = cli(&["sign", file.to_str().unwrap()], &data, &[]);
    assert!(out.status.success());
    let expected = sign(&AppSecret::new(app_secret.clone()).unwrap(), &batch("P"));
    assert_eq!(
        String::from_utf8(out.stdout).unwrap().trim(),
        format!("X-Hub-Signature-256: {expected}")
    );
    let out = cli(
        &["post", file.to_str().unwrap(), "--url", &server.webhook()],
        &data,
        &[],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // A wrong secret makes `post` fail with a clear message and a non-zero exit.
    let out = cli(
        &["post", file.to_str().unwrap(), "--url", &server.webhook()],
        &data,
        &[("WHATSAPP_APP_SECRET", "not-the-secret")],
    );
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("401"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // A folder: every .json file is posted.
    let folder = dir.path().join("many");
    std::fs::create_dir(&folder).unwrap();
    for tag in ["M1", "M2", "M3"] {
        std::fs::write(folder.join(format!("{tag}.json")), batch(tag)).unwrap();
    }
    let out = cli(
        &["post", folder.to_str().unwrap(), "--url", &server.webhook()],
        &data,
        &[],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    server.wait_drained();
    assert_eq!(keys(&records(&data)).len(), 16, "4 deliveries × 4 events");

    // Restart: same secrets, not printed again.
    assert!(server.terminate());
    let server = Gateway::start_in(&data, &[]);
    let printed = server.startup_lines.join("\n");
    assert!(!printed.contains(&app_secret));
    let again: Value =
        serde_json::from_slice(&std::fs::read(data.join("secrets.json")).unwrap()).unwrap();
    assert_eq!(again, secrets);
}

#[tokio::test]
async fn dead_letters_are_listed_and_redriven_from_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let _server = start(dir.path());
    // A queue body no consumer can read: dead-lettered with its reason, not retried forever.
    let db = rusqlite::Connection::open(dir.path().join("wabridge.db")).unwrap();
    db.busy_timeout(Duration::from_secs(5)).unwrap();
    db.execute(
        "INSERT INTO queue_messages(queue, msg_key, body, visible_at, receive_count, enqueued_at)
         VALUES ('events', 'broken', '{\"not\":\"an event\"}', 0, 0, 0)",
        [],
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let listed = loop {
        let out = cli(&["dead-letters", "list", "--json"], dir.path(), &[]);
        assert!(out.status.success());
        let text = String::from_utf8(out.stdout).unwrap();
        if !text.trim().is_empty() {
            break text;
        }
        assert!(Instant::now() < deadline, "never dead-lettered");
        std::thread::sleep(Duration::from_millis(25));
    };
    let lines: Vec<Value> = listed
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["queue"], "events");
    assert_eq!(lines[0]["body"]["not"], "an event");
    assert!(
        !lines[0]["reason"].as_str().unwrap_or("").is_empty(),
        "dead-lettered with a reason: {}",
        lines[0]
    );
    let id = lines[0]["id"].as_str().unwrap().to_string();
    // The table names the same letter with its queue, receive count and reason.
    let table = gateway::cli_ok(dir.path(), &["dead-letters", "list"], &[]);
    let row = table
        .lines()
        .find(|l| l.split_whitespace().nth(1) == Some(id.as_str()))
        .unwrap_or_else(|| panic!("the table lists id {id}: {table}"));
    assert!(row.starts_with("events"), "{row}");
    assert!(
        row.contains(
            lines[0]["reason"]
                .as_str()
                .unwrap()
                .split_whitespace()
                .next()
                .unwrap()
        ),
        "{row}"
    );

    let out = cli(
        &["dead-letters", "redrive", "--id", "424242"],
        dir.path(),
        &[],
    );
    assert!(!out.status.success(), "an unknown id is an error");
    assert!(String::from_utf8_lossy(&out.stderr).contains("424242"));
    let out = cli(&["dead-letters", "redrive", "--id", &id], dir.path(), &[]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("redrove 1"));
    // Back on its queue with a fresh receive count, the consumer reads it again and dead-letters
    // it again: same id, one receive.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let row: Option<(String, i64)> = db
            .query_row(
                "SELECT queue, receive_count FROM queue_dead_letters WHERE id = ?1",
                [id.parse::<i64>().unwrap()],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .ok();
        if let Some((queue, receives)) = row {
            assert_eq!((queue.as_str(), receives), ("events", 1));
            break;
        }
        assert!(
            Instant::now() < deadline,
            "redriven message never came back"
        );
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// Runs `wabridge serve` over `data`, which must exit by itself (within 30 s): its status and
/// stderr.
fn serve_until_it_exits(data: &Path, env: &[(&str, &str)]) -> (std::process::ExitStatus, String) {
    let mut child = gateway::command(env)
        .args(["serve", "--addr", "127.0.0.1:0", "--data"])
        .arg(data)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            panic!("serve kept running with {env:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    (status, err)
}

/// A retention that is not a whole number of days stops `serve` at start, naming the variable,
/// rather than purging on a guess.
#[test]
fn serve_refuses_a_bad_ledger_retention() {
    let dir = tempfile::tempdir().unwrap();
    let (status, err) =
        serve_until_it_exits(dir.path(), &[("WABRIDGE_LEDGER_RETENTION_DAYS", "0")]);
    assert!(!status.success());
    assert!(err.contains("WABRIDGE_LEDGER_RETENTION_DAYS"), "{err}");
}

/// A second `serve` on a data dir in use stops at start with a message saying why: the inbox
/// keeps its recent dedupe keys in memory, so two would not see each other's keys. Once the
/// first is gone, the data dir serves again and still knows what the first accepted.
#[tokio::test]
async fn a_second_serve_on_the_same_data_dir_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path());
    let body = batch("L");
    let (status, v) = post_signed(&server.webhook(), &body).await;
    assert_eq!(status, 200, "{v}");
    let (status, err) = serve_until_it_exits(dir.path(), &[]);
    assert!(!status.success());
    assert!(err.contains("another wabridge process"), "{err}");
    assert!(
        err.contains("one `wabridge serve` per data directory"),
        "{err}"
    );

    drop(server);
    let server = start(dir.path());
    let (status, v) = post_signed(&server.webhook(), &body).await;
    assert_eq!((status, v["accepted"].as_u64()), (200, Some(0)), "{v}");
    assert_eq!(v["duplicates"].as_u64(), Some(4), "{v}");
}

/// During a burst the writer leaves the WAL alone (no checkpoint holds up an ack) instead of
/// checkpointing every 1,000 pages as SQLite does by default; `wabridge stats` still opens
/// while the burst's writer holds the write lock.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_burst_grows_the_wal_past_the_usual_checkpoint_and_stats_still_opens() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path());
    let text = "Hola, quisiera información sobre el plan empresarial. ".repeat(20);
    // 6,400 events: about 18 MB of WAL on an idle machine when nothing restarts it, well past the
    // bound asserted below even on a loaded one, whose bigger group commits write fewer partly
    // filled pages (half as many events once made only 5.6 MB). Restarting the WAL at 1,000
    // pages, as SQLite does by default, keeps it near 4.1 MB.
    let posts: Vec<Vec<u8>> = (0..320)
        .map(|p| {
            let messages: Vec<Value> = (0..20)
                .map(|m| message(&format!("wamid.WAL{p}x{m}"), "5215512345678", &text))
                .collect();
            serde_json::to_vec(&json!({
                "object": "whatsapp_business_account",
                "entry": [{"id": "102290129340398", "changes": [{"field": "messages", "value": {
                    "messaging_product": "whatsapp",
                    "metadata": {"display_phone_number": "15550783881", "phone_number_id": "106540352242922"},
                    "messages": messages
                }}]}]
            }))
            .unwrap()
        })
        .collect();
    let url = server.webhook();
    let data = dir.path().to_path_buf();
    let stats_during = tokio::task::spawn_blocking(move || {
        std::thread::sleep(Duration::from_millis(300));
        cli(&["stats"], &data, &[])
    });
    // 32 posts in flight at a time: a burst (8 or more in flight).
    let mut posts = posts.into_iter();
    let mut running = tokio::task::JoinSet::new();
    loop {
        while running.len() < 32 {
            let Some(body) = posts.next() else { break };
            let url = url.clone();
            running.spawn(async move { post_signed(&url, &body).await });
        }
        let Some(done) = running.join_next().await else {
            break;
        };
        let (status, v) = done.unwrap();
        assert_eq!(status, 200, "{v}");
    }
    let wal = std::fs::metadata(dir.path().join("wabridge.db-wal"))
        .unwrap()
        .len();
    // SQLite's default would have restarted the WAL at 1,000 pages (4 MiB) again and again.
    assert!(wal > 6 * 1024 * 1024, "WAL of {wal} bytes");
    let out = stats_during.await.unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(stats(dir.path())["dedupe_keys"].as_u64(), Some(6400));
}
