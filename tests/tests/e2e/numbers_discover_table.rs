//! `wabridge numbers discover --table T` (the real binary) over moto and Prism: the numbers of
//! each WABA compared with a deployment's registry items, read with the tokens of the stack's
//! secret. A registered number is named; each new one comes as an entry with the CRM target of
//! its WABA's registered number and the `numbers add --table` command that registers it, and
//! that command, run as printed, adds it. A WABA with no registered number gets an empty CRM
//! kind that `numbers add` refuses until it is filled in. The scene (Meta's answers) is
//! `numbers_discover`'s.

use serde_json::json;
use wabridge_aws::dynamo::numbers::DynamoNumbers;
use wabridge_tests::gateway;
use wabridge_tests::prism::{spec_keeping, Prism};
use wabridge_tests::{create_table, require_aws, unique_name};

use crate::numbers_discover::{front, text, A, B, B_TOKEN, MX, MX2, MX3, MX_TOKEN, US};

const REGISTRY: &str = r#"
[[number]]
label = "ventas-mx"
phone_number_id = "106540352242922"
waba_id = "102290129340398"
display_number = "+52 55 5000 1111"
token_key = "WHATSAPP_ACCESS_TOKEN_MX"
[number.crm]
kind = "webhook"
settings = { CRM_WEBHOOK_URL = "https://crm.example/mx" }
secrets = { CRM_WEBHOOK_SECRET = "CRM_WEBHOOK_SECRET_MX" }
"#;

/// The entry (its lines up to the hint) of the number `id` in discover's output.
fn entry_of(stdout: &str, id: &str) -> String {
    let chunk = stdout
        .split("\n\n")
        .find(|c| c.contains(&format!("phone_number_id = \"{id}\"")))
        .unwrap_or_else(|| panic!("no entry for {id}: {stdout}"));
    chunk
        .lines()
        .filter(|l| !l.starts_with("# to register it"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discover_with_a_table_prints_the_numbers_add_commands_that_register_the_new_numbers() {
    let aws = require_aws!();
    let endpoint = wabridge_tests::moto_endpoint().unwrap();
    let spec_dir = tempfile::tempdir().unwrap();
    let Some(spec) = spec_keeping(spec_dir.path(), "/{Version}/{Phone-Number-ID}") else {
        return;
    };
    let Some(prism) = Prism::start_with_spec(&spec) else {
        return;
    };
    let (graph, seen) = front(&prism).await;
    let table = create_table(&aws.dynamo, &unique_name("discover-table")).await;
    let secret = unique_name("discover-secret");
    let values = json!({"WHATSAPP_ACCESS_TOKEN_MX": MX_TOKEN, "WHATSAPP_ACCESS_TOKEN": B_TOKEN,
                        "CRM_WEBHOOK_SECRET_MX": "whsec_bXgtc2VjcmV0"});
    aws.secrets
        .create_secret()
        .name(&secret)
        .secret_string(values.to_string())
        .send()
        .await
        .unwrap();
    let split = wabridge_core::numbers::items::split("numbers.toml", REGISTRY.as_bytes()).unwrap();
    DynamoNumbers::new(aws.dynamo.clone(), &table)
        .put(None, &split.entries)
        .await
        .unwrap();
    let run = |args: &[&str], with_secret: bool| {
        let mut env = vec![("WHATSAPP_API_URL", graph.as_str())];
        if with_secret {
            env.push(("WABRIDGE_SECRETS_ARN", secret.as_str()));
        }
        gateway::against_aws(&endpoint, args, &env)
    };

    let discover = [
        "numbers", "discover", "--table", &table, "--waba", A, "--waba", B,
    ];
    let out = run(&discover, true);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{stderr}");
    // Each WABA read with its token from the stack's secret, every request one Meta's spec takes.
    for (path, query, auth, status) in seen.lock().unwrap().iter() {
        assert!((200..300).contains(status), "Prism refused {path}?{query}");
        let token = if path.contains(B) || path.ends_with(US) {
            B_TOKEN
        } else {
            MX_TOKEN
        };
        assert_eq!(auth, &format!("Bearer {token}"), "{path}");
    }
    assert!(
        stdout.contains(&format!("# ventas-mx ({MX}) is already in the registry")),
        "{stdout}"
    );
    for label in ["panaderia-nunez-mx", "ventas-norte-mx", "jaspers-market-us"] {
        assert!(
            stdout.contains(&format!(
                "# to register it: save the entry as {label}.toml, then: wabridge numbers add --table {table} --from {label}.toml"
            )),
            "{label}: {stdout}"
        );
    }
    assert!(!stdout.contains(MX_TOKEN) && !stderr.contains(MX_TOKEN));

    // The printed command, run as printed, registers the number with its WABA's CRM target.
    let dir = tempfile::tempdir().unwrap();
    let save = |label: &str, id: &str| {
        let path = dir.path().join(format!("{label}.toml"));
        std::fs::write(&path, entry_of(&stdout, id)).unwrap();
        path.display().to_string()
    };
    let file = save("panaderia-nunez-mx", MX2);
    let out = run(
        &["numbers", "add", "--table", &table, "--from", &file],
        true,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let numbers = DynamoNumbers::new(aws.dynamo.clone(), &table)
        .load()
        .await
        .unwrap()
        .unwrap();
    let added = numbers.find("panaderia-nunez-mx").expect("added");
    assert_eq!(
        (added.phone_number_id.as_str(), added.waba_id.as_str()),
        (MX2, A)
    );
    assert_eq!(added.crm, numbers.find("ventas-mx").unwrap().crm);
    // Discover now names it registered and no longer offers it.
    let out = run(&discover, true);
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains(&format!(
            "# panaderia-nunez-mx ({MX2}) is already in the registry"
        )) && stdout.contains(&format!("phone_number_id = \"{MX3}\"")),
        "{stdout}"
    );

    // B has no registered number: its entry's CRM is to be chosen, and `numbers add` says so.
    let file = save("jaspers-market-us", US);
    let out = run(
        &["numbers", "add", "--table", &table, "--from", &file],
        true,
    );
    let stderr = text(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("number `jaspers-market-us`: `crm` needs a `kind`"),
        "{stderr}"
    );

    // Without the stack's secret there is no token: the error names --table and the secret.
    let out = run(&discover, false);
    let stderr = text(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("--table") && stderr.contains("WABRIDGE_SECRETS_ARN is not set"),
        "{stderr}"
    );
}
