//! The CLI beside the server: generated dev secrets used by `sign` and `post`, and dead letters
//! listed and redriven.

use std::time::{Duration, Instant};

use serde_json::Value;
use wabridge_core::signature::{sign, AppSecret};
use wabridge_tests::gateway::{self, Gateway};

use super::*;

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
    // Generous: each CLI call is a process start, slow on a loaded CI machine.
    let deadline = Instant::now() + Duration::from_secs(60);
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
    let deadline = Instant::now() + Duration::from_secs(60);
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
