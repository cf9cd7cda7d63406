use super::*;

const PEDIDO: &str = include_str!("../../../../docs/templates/pedido_enviado.toml");

#[test]
fn the_worked_example_parses() {
    let t = TemplateFile::parse("pedido_enviado.toml", PEDIDO.as_bytes()).unwrap();
    assert_eq!(t.name, "pedido_enviado");
    assert!(t.is_named());
    assert_eq!(
        t.languages.keys().collect::<Vec<_>>(),
        ["es_AR", "es_MX", "pt_BR"]
    );
    let mx = &t.languages["es_MX"];
    assert_eq!(
        mx.body.as_ref().unwrap().examples,
        Some(Examples::Named(
            [
                ("delivery_date", "12 de diciembre"),
                ("first_name", "María"),
                ("order_id", "MX-10293")
            ]
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .into()
        ))
    );
    assert_eq!(mx.buttons[0].kind, "URL");
}

#[test]
fn a_file_that_does_not_parse_names_its_line() {
    let text =
        "name = \"a\"\ncategory = \"UTILITY\"\n\n[languages.es_MX]\nbody = { text = \"Hola\" \n";
    let e = TemplateFile::parse("templates/a.toml", text.as_bytes()).unwrap_err();
    assert!(e.to_string().starts_with("templates/a.toml: line 5"), "{e}");

    // A misspelt field is an error naming it, with its line.
    let text = "name = \"a\"\ncategory = \"UTILITY\"\n[languages.es_MX]\nbody.text = \"Hola\"\nfooterr = \"x\"\n";
    let e = TemplateFile::parse("a.toml", text.as_bytes()).unwrap_err();
    assert!(
        e.problem.contains("line 5") && e.problem.contains("footerr"),
        "{e}"
    );

    // A missing category.
    let e = TemplateFile::parse("a.toml", b"name = \"a\"\n").unwrap_err();
    assert!(e.problem.contains("category"), "{e}");
}

#[test]
fn bytes_that_are_not_a_template_file() {
    let mut bytes = b"name = \"a\"\ncategory = \"UTI".to_vec();
    bytes.push(0xff);
    let e = TemplateFile::parse("a.toml", &bytes).unwrap_err();
    assert_eq!(e.problem, "line 2: not UTF-8");

    let big = vec![b'#'; MAX_FILE_BYTES + 1];
    let e = TemplateFile::parse("a.toml", &big).unwrap_err();
    assert!(e.problem.contains("larger than"), "{e}");
}

/// `docs/templates.schema.json` names exactly the fields the parser takes, with the same
/// value lists as the validation.
#[test]
fn the_json_schema_matches_the_file_model() {
    use serde_json::{json, Value};
    let schema: Value =
        serde_json::from_str(include_str!("../../../../docs/templates.schema.json")).unwrap();
    let defs = &schema["$defs"];
    assert_eq!(
        schema["properties"]["category"]["enum"],
        json!(validate::CATEGORIES)
    );
    assert_eq!(
        schema["properties"]["parameter_format"]["enum"],
        json!(validate::PARAMETER_FORMATS)
    );
    assert_eq!(
        defs["header"]["properties"]["format"]["enum"],
        json!(validate::HEADER_FORMATS)
    );
    assert_eq!(
        defs["button"]["properties"]["type"]["enum"],
        json!(validate::BUTTON_KINDS)
    );
    assert_eq!(
        defs["button"]["properties"]["otp_type"]["enum"],
        json!(validate::OTP_TYPES)
    );

    // A file setting every field the schema names: it parses (the parser refuses unknown
    // fields), and it names nothing the schema lacks.
    let every = r#"
name = "every_field"
category = "MARKETING"
parameter_format = "POSITIONAL"
message_send_ttl_seconds = 86400
[languages.es_MX]
header = { format = "TEXT", text = "Hola {{1}}", examples = ["Ana"], sample = "x.png" }
body = { text = "Hola {{1}} ya", examples = ["Ana"] }
footer = "Pie"
security_recommendation = true
code_expiration_minutes = 5
buttons = [{ type = "URL", text = "t", url = "https://x.example/{{1}}", example = "https://x.example/1", phone_number = "1", otp_type = "COPY_CODE", package_name = "p", signature_hash = "s", autofill_text = "a", flow_id = "f", navigate_screen = "n", flow_action = "navigate" }]
"#;
    TemplateFile::parse("every_field.toml", every.as_bytes()).expect("every schema field parses");
    let file: Value = serde_json::to_value(toml::from_str::<toml::Value>(every).unwrap()).unwrap();
    let keys = |v: &Value| -> Vec<String> {
        let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
        k.sort();
        k
    };
    let language = &file["languages"]["es_MX"];
    for (written, documented) in [
        (&file, &schema["properties"]),
        (language, &defs["language"]["properties"]),
        (&language["header"], &defs["header"]["properties"]),
        (&language["body"], &defs["body"]["properties"]),
        (&language["buttons"][0], &defs["button"]["properties"]),
    ] {
        assert_eq!(keys(written), keys(documented));
    }
}

/// Every prefix of the worked examples (a file cut short, as an editor saves half a line)
/// parses or names its problem, and what parses validates and plans without a panic.
#[test]
fn truncated_files_never_panic() {
    for text in [
        PEDIDO,
        include_str!("../../../../docs/templates/oferta_fin_de_ano.toml"),
        include_str!("../../../../docs/templates/codigo_acceso.toml"),
    ] {
        // Byte prefixes: a cut inside a character is "not UTF-8", with its line.
        for end in 0..=text.len() {
            match TemplateFile::parse("cut.toml", &text.as_bytes()[..end]) {
                Err(e) => assert!(e.to_string().starts_with("cut.toml: "), "{e}"),
                Ok(t) => {
                    let _ = validate::validate("cut.toml", None, &t);
                    for l in t.languages.keys() {
                        let _ = meta::create_body(&t, l, None);
                    }
                }
            }
        }
    }
}
