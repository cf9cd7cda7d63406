//! The crate layout holds: each Lambda and each library crate links only what its layer may
//! (`cargo tree`, normal dependencies, as a deployment builds them), and the library crates
//! depend on each other only downwards (functions -> engines, CRMs, graph -> core).

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

/// The packages `package` links (normal dependencies, features as its own build resolves them).
fn linked(package: &str) -> BTreeSet<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .current_dir(&root)
        .args([
            "tree",
            "--offline",
            "-e",
            "normal",
            "--prefix",
            "none",
            "-p",
            package,
        ])
        .output()
        .expect("cargo tree runs");
    assert!(
        out.status.success(),
        "cargo tree -p {package}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_string)
        .collect()
}

/// Crates a layer must never link, by what they would bring: the embedded engine, an HTTP
/// client, QR codes, the AWS SDK, a CRM adapter.
const SQLITE: &[&str] = &["rusqlite", "libsqlite3-sys", "wabridge-sqlite"];
const HTTP_CLIENT: &[&str] = &["reqwest"];
const QR: &[&str] = &["qrcode", "png"];
const AWS: &[&str] = &[
    "aws-config",
    "aws-sdk-dynamodb",
    "aws-sdk-sqs",
    "wabridge-aws",
];
const LAMBDA: &[&str] = &["lambda_runtime", "lambda_http", "aws_lambda_events"];
/// A second crypto library beside ring (the SDK's and reqwest's default) costs each package
/// about a megabyte: the Lambdas use ring only (wabridge-aws, wabridge-http).
const AWS_LC: &[&str] = &["aws-lc-rs", "aws-lc-sys"];
/// What the Lambda packages shed to keep ingest under 3 MB (docs/benchmarks.md, "Lambda
/// packages"): aws-config's credential chain with its STS and SSO clients (the Lambdas read
/// Lambda's environment, wabridge-aws `sdk::lambda_config`; only the CLI enables
/// `credential-chain`), HTTP/2 and aws-smithy-http-client (the SDK's client is wabridge-aws's
/// HTTP/1.1 one), and EnvFilter's matchers (`RUST_LOG` is read by wabridge-core's telemetry).
const LAMBDA_SIZE: &[&str] = &[
    "aws-config",
    "aws-sdk-sts",
    "aws-sdk-sso",
    "aws-sdk-ssooidc",
    "aws-smithy-http-client",
    "h2",
    "matchers",
];

fn assert_links_none(package: &str, groups: &[&[&str]]) {
    let deps = linked(package);
    assert!(deps.contains(package), "cargo tree listed {deps:?}");
    let bad: Vec<&str> = groups
        .iter()
        .flat_map(|g| g.iter().copied())
        .filter(|d| deps.contains(*d))
        .collect();
    assert!(
        bad.is_empty(),
        "{package} links {bad:?}, which its layer must not"
    );
}

fn assert_links(package: &str, wanted: &[&str]) {
    let deps = linked(package);
    for w in wanted {
        assert!(deps.contains(*w), "{package} should link {w}: {deps:?}");
    }
}

#[test]
fn core_has_no_io_dependency() {
    assert_links_none(
        "wabridge-core",
        &[
            SQLITE,
            HTTP_CLIENT,
            QR,
            AWS,
            LAMBDA,
            &["hyper", "wabridge-crm", "wabridge-graph"],
        ],
    );
}

#[test]
fn engines_and_adapters_depend_only_on_core() {
    assert_links_none(
        "wabridge-sqlite",
        &[
            HTTP_CLIENT,
            QR,
            AWS,
            LAMBDA,
            &["wabridge-crm", "wabridge-graph"],
        ],
    );
    assert_links_none(
        "wabridge-aws",
        &[
            SQLITE,
            HTTP_CLIENT,
            QR,
            AWS_LC,
            LAMBDA_SIZE,
            &["wabridge-crm", "wabridge-graph", "lambda_http"],
        ],
    );
    assert_links_none(
        "wabridge-graph",
        &[SQLITE, QR, AWS, LAMBDA, AWS_LC, &["wabridge-crm"]],
    );
    assert_links_none(
        "wabridge-http",
        &[
            SQLITE,
            QR,
            AWS,
            LAMBDA,
            AWS_LC,
            &["wabridge-crm", "wabridge-graph"],
        ],
    );
    assert_links_none(
        "wabridge-crm",
        &[SQLITE, QR, AWS, LAMBDA, AWS_LC, &["wabridge-graph"]],
    );
    assert_links_none(
        "wabridge-attribution",
        &[SQLITE, AWS, LAMBDA, &["wabridge-crm"]],
    );
}

/// aws-sdk-s3 (multipart uploads, copies, its presigner): the media function writes media files
/// and the sender reads media sends' files with it. It took ingest's package from 2.84 to
/// 3.74 MB (x86_64), over its 3 MB goal; ingest presigns `GET /media` redirects and deletes
/// erased files with aws-sigv4 instead (wabridge-aws `s3_media_links`). The sender's package
/// grew with it (not measured again: docs/media.md says so).
const S3_SDK: &[&str] = &["aws-sdk-s3"];

#[test]
fn ingest_links_core_and_aws_only() {
    assert_links("ingest", &["wabridge-core", "wabridge-aws", "lambda_http"]);
    assert_links_none(
        "ingest",
        &[
            SQLITE,
            HTTP_CLIENT,
            QR,
            AWS_LC,
            LAMBDA_SIZE,
            S3_SDK,
            &[
                "wabridge-crm",
                "wabridge-graph",
                "wabridge-attribution",
                "wabridge-http",
            ],
        ],
    );
}

#[test]
fn the_media_function_links_the_graph_client_and_s3_but_no_crm() {
    assert_links(
        "media",
        &[
            "wabridge-core",
            "wabridge-aws",
            "wabridge-graph",
            "aws-sdk-s3",
        ],
    );
    assert_links_none(
        "media",
        &[
            SQLITE,
            QR,
            AWS_LC,
            LAMBDA_SIZE,
            &["wabridge-crm", "wabridge-attribution", "lambda_http"],
        ],
    );
}

#[test]
fn crm_sync_links_the_http_crms_but_no_engine_of_its_own_kind() {
    assert_links(
        "crm-sync",
        &["wabridge-core", "wabridge-aws", "wabridge-crm"],
    );
    assert_links_none(
        "crm-sync",
        &[
            SQLITE,
            QR,
            AWS_LC,
            LAMBDA_SIZE,
            S3_SDK,
            &["wabridge-graph", "wabridge-attribution", "lambda_http"],
        ],
    );
}

#[test]
fn sender_links_the_graph_client_and_nothing_of_the_crms() {
    assert_links(
        "sender",
        &[
            "wabridge-core",
            "wabridge-aws",
            "wabridge-graph",
            "aws-sdk-s3",
        ],
    );
    assert_links_none(
        "sender",
        &[
            SQLITE,
            QR,
            AWS_LC,
            LAMBDA_SIZE,
            &["wabridge-crm", "wabridge-attribution", "lambda_http"],
        ],
    );
}

#[test]
fn attribution_links_qr_codes_and_the_graph_client_but_no_crm() {
    assert_links(
        "attribution",
        &["wabridge-attribution", "qrcode", "reqwest"],
    );
    assert_links_none(
        "attribution",
        &[SQLITE, AWS_LC, LAMBDA_SIZE, &["wabridge-crm"]],
    );
}

/// The CLI keeps aws-config's standard chain (profiles, SSO) for operators' machines.
#[test]
fn the_cli_has_the_standard_credential_chain() {
    assert_links("wabridge", &["aws-config", "wabridge-aws"]);
}
