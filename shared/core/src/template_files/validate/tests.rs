use super::*;
use crate::template_files::TemplateFile;

fn check(text: &str) -> Vec<Finding> {
    let t = TemplateFile::parse("t.toml", text.as_bytes()).expect("parses");
    validate("templates/t.toml", None, &t)
}

fn errors(text: &str) -> Vec<String> {
    check(text)
        .into_iter()
        .filter(|f| f.severity == Severity::Error)
        .map(|f| f.to_string())
        .collect()
}

fn has(found: &[String], needle: &str) -> bool {
    found.iter().any(|f| f.contains(needle))
}

#[test]
fn the_worked_examples_are_clean() {
    for (file, text) in [
        (
            "pedido_enviado",
            include_str!("../../../../../docs/templates/pedido_enviado.toml"),
        ),
        (
            "oferta_fin_de_ano",
            include_str!("../../../../../docs/templates/oferta_fin_de_ano.toml"),
        ),
        (
            "codigo_acceso",
            include_str!("../../../../../docs/templates/codigo_acceso.toml"),
        ),
    ] {
        let t = TemplateFile::parse(file, text.as_bytes()).unwrap();
        let findings = validate(file, Some(file), &t);
        assert!(findings.is_empty(), "{file}: {findings:#?}");
    }
}

#[test]
fn a_variable_without_an_example_names_template_language_and_variable() {
    let found = errors(
        r#"
name = "aviso"
category = "UTILITY"
parameter_format = "NAMED"
[languages.es_MX]
body.text = "Hola {{first_name}}, tu cita es el {{date}}."
body.examples = { first_name = "Ana" }
"#,
    );
    assert_eq!(
        found,
        ["error: templates/t.toml: aviso [es_MX] body.examples: {{date}} has no example"]
    );
    // Positional: one example short, and one too many elsewhere.
    let found = errors(
        r#"
name = "aviso"
category = "UTILITY"
[languages.pt_BR]
header = { format = "TEXT", text = "Pedido {{1}}", examples = ["A1", "A2"] }
body.text = "Olá {{1}}, seu pedido {{2}} chegou."
body.examples = ["Ana"]
"#,
    );
    assert!(
        has(&found, "aviso [pt_BR] body.examples: {{2}} has no example"),
        "{found:?}"
    );
    assert!(
        has(&found, "header.examples: 2 examples for 1 variables"),
        "{found:?}"
    );
}

#[test]
fn names_categories_formats_and_kinds() {
    let found = errors(
        r#"
name = "Pedido-Enviado"
category = "PROMOTIONAL"
parameter_format = "MIXED"
[languages.es_MX]
body.text = "Hola"
"#,
    );
    assert!(
        has(&found, "name: `Pedido-Enviado`: lowercase letters"),
        "{found:?}"
    );
    assert!(has(&found, "category: unknown value `PROMOTIONAL`; expected one of MARKETING, UTILITY, AUTHENTICATION"), "{found:?}");
    assert!(
        has(&found, "parameter_format: unknown value `MIXED`"),
        "{found:?}"
    );

    let found = errors(
        r#"
name = "a"
category = "MARKETING"
[languages.es_mx]
header = { format = "GIF", sample = "x.gif" }
body.text = "Hola"
buttons = [{ type = "CALL_ME", text = "x" }]
"#,
    );
    assert!(
        has(&found, "languages: `es_mx` is not a language code"),
        "{found:?}"
    );
    assert!(
        has(&found, "header.format: unknown value `GIF`"),
        "{found:?}"
    );
    assert!(
        has(
            &found,
            "buttons[0].type: unknown value `CALL_ME`; expected one of QUICK_REPLY"
        ),
        "{found:?}"
    );

    let t = TemplateFile::parse(
        "x.toml",
        b"name = \"a\"\ncategory = \"UTILITY\"\n[languages.en]\nbody.text = \"Hi\"\n",
    )
    .unwrap();
    let found = validate("x.toml", Some("b"), &t);
    assert!(
        found[0]
            .message
            .contains("differs from the file name `b.toml`"),
        "{found:?}"
    );
}

#[test]
fn lengths_and_variable_rules() {
    let long = "x".repeat(1025);
    let found = errors(&format!(
        r#"
name = "a"
category = "UTILITY"
[languages.es_MX]
header = {{ format = "TEXT", text = "{{{{1}}}} y {{{{2}}}}", examples = ["a", "b"] }}
body.text = "{long}"
footer = "Gracias {{{{1}}}}"
"#
    ));
    assert!(
        has(
            &found,
            "body.text: 1025 characters; Meta allows at most 1024"
        ),
        "{found:?}"
    );
    assert!(
        has(&found, "header.text: a header takes at most one variable"),
        "{found:?}"
    );
    assert!(
        has(&found, "footer: a footer takes no variables"),
        "{found:?}"
    );

    let found = errors(
        r#"
name = "a"
category = "UTILITY"
[languages.es_MX]
body.text = "{{1}} tu pedido {{3}} y {{name}}"
body.examples = ["a", "b", "c"]
"#,
    );
    assert!(
        has(
            &found,
            "{{name}} is named but the template's parameter_format is POSITIONAL"
        ),
        "{found:?}"
    );
    assert!(
        has(&found, "numbered {{1}}, {{2}}, … without gaps"),
        "{found:?}"
    );
    assert!(has(&found, "starts or ends with a variable"), "{found:?}");

    let found = errors(
        r#"
name = "a"
category = "UTILITY"
parameter_format = "NAMED"
[languages.es_MX]
header = { format = "TEXT", text = "Pedido {{1}}", examples = ["x"] }
body.text = "Hola {{Nombre}} ya"
body.examples = { Nombre = "Ana", extra = "x" }
"#,
    );
    assert!(
        has(
            &found,
            "header.text: {{1}} is positional but the template's parameter_format is NAMED"
        ),
        "{found:?}"
    );
    assert!(
        has(&found, "{{Nombre}}: a named variable is lowercase"),
        "{found:?}"
    );
    assert!(
        has(
            &found,
            "body.examples: `extra` is not a variable of the text"
        ),
        "{found:?}"
    );
    assert!(
        has(
            &found,
            "header.examples: a NAMED template gives its examples as a table"
        ),
        "{found:?}"
    );
}

#[test]
fn buttons_by_kind_and_count() {
    let found = errors(
        r#"
name = "a"
category = "MARKETING"
[languages.es_MX]
body.text = "Hola"
buttons = [
  { type = "QUICK_REPLY", text = "Sí" },
  { type = "URL", text = "Ver", url = "https://x.example/{{1}}" },
  { type = "QUICK_REPLY", text = "Un texto de botón demasiado largo" },
  { type = "URL", text = "A", url = "ftp://x" , example = "y"},
  { type = "URL", text = "B", url = "https://b.example" },
  { type = "PHONE_NUMBER", text = "Llamar", phone_number = "+52 55 1234" },
  { type = "OTP", otp_type = "COPY_CODE" },
  { type = "COPY_CODE" },
  { type = "QUICK_REPLY", text = "No", url = "https://x.example" },
]
"#,
    );
    for needle in [
        "buttons: 3 URL buttons; Meta allows at most 2",
        "QUICK_REPLY buttons must be grouped together",
        "buttons[1].example: missing: the full example address",
        "buttons[2].text: 33 characters; Meta allows at most 25",
        "buttons[3].url: an http(s) address",
        "buttons[3].example: a URL without a variable takes no example",
        "buttons[5].phone_number: digits with the country code",
        "buttons[6].type: OTP buttons belong to AUTHENTICATION templates",
        "buttons[7].example: missing: the example code",
        "buttons[8].url: a QUICK_REPLY button takes no url",
    ] {
        assert!(has(&found, needle), "{needle}: {found:#?}");
    }
}

#[test]
fn authentication_and_media_rules() {
    let found = errors(
        r#"
name = "codigo"
category = "AUTHENTICATION"
message_send_ttl_seconds = 3600
[languages.es_MX]
body.text = "Tu código es {{1}}"
code_expiration_minutes = 120
buttons = [{ type = "OTP", otp_type = "ONE_TAP" }, { type = "QUICK_REPLY", text = "x" }]
"#,
    );
    for needle in [
        "message_send_ttl_seconds: 3600: AUTHENTICATION templates take 30 to 900 seconds",
        "body: an AUTHENTICATION template's text is Meta's own",
        "code_expiration_minutes: 120: 1 to 90 minutes",
        "buttons: an AUTHENTICATION template has exactly one button, of type OTP",
        "buttons[0].package_name: ONE_TAP needs package_name and signature_hash",
    ] {
        assert!(has(&found, needle), "{needle}: {found:#?}");
    }
    let found = errors(
        r#"
name = "a"
category = "MARKETING"
[languages.es_MX]
header = { format = "IMAGE", sample = "oferta.gif" }
body.text = "Hola"
security_recommendation = true
[languages.pt_BR]
header = { format = "DOCUMENT" }
body.text = "Olá"
"#,
    );
    assert!(
        has(
            &found,
            "header.sample: `oferta.gif`: IMAGE samples are jpg, jpeg, png files"
        ),
        "{found:?}"
    );
    assert!(
        has(
            &found,
            "[es_MX] security_recommendation: only AUTHENTICATION"
        ),
        "{found:?}"
    );
    assert!(
        has(
            &found,
            "[pt_BR] header.sample: missing: a DOCUMENT header needs a sample"
        ),
        "{found:?}"
    );
}

#[test]
fn a_promotional_utility_template_is_a_warning_with_the_reason() {
    let findings = check(
        r#"
name = "pago_recibido"
category = "UTILITY"
[languages.es_MX]
body.text = "Recibimos tu pago de {{1}}. Aprovecha 15% de descuento en tu próxima compra."
body.examples = ["$450"]
[languages.pt_BR]
body.text = "Recebemos seu pagamento de {{1}}. Obrigado!"
body.examples = ["R$ 90"]
"#,
    );
    assert_eq!(findings.len(), 1, "{findings:#?}");
    let w = &findings[0];
    assert_eq!(w.severity, Severity::Warning);
    assert_eq!(w.language.as_deref(), Some("es_MX"));
    assert!(
        w.message.contains("recategorises a UTILITY template"),
        "{w}"
    );
    // The same words in a MARKETING template are what it is for.
    let findings = check(
        r#"
name = "oferta"
category = "MARKETING"
[languages.es_MX]
body.text = "Aprovecha 15% de descuento, {{1}}."
body.examples = ["Ana"]
"#,
    );
    assert!(findings.is_empty(), "{findings:#?}");
}

#[test]
fn two_files_may_not_define_one_name() {
    let found = validate_names([("a.toml", "x"), ("b.toml", "y"), ("c.toml", "x")]);
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].file, "c.toml");
    assert!(found[0].message.contains("also defined in a.toml"));
}
