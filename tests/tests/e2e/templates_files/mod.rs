//! Templates as code: the worked example files of `docs/templates/` planned and applied against
//! a local fake of Meta's template management and review (`meta.rs`), through the core API and
//! through the binary (`wabridge templates check | plan | apply | history | status`); the
//! requests checked against Meta's spec by Prism; the review's webhooks feeding the registry.

mod binary;
mod deployment;
mod meta;
mod plan_apply;
mod prism;
mod wabas;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use sha2::{Digest, Sha256};
use wabridge_core::sends::template_sync::TemplateSyncConfig;
use wabridge_core::template_files::apply::Sample;
use wabridge_core::template_files::plan::Local;
use wabridge_core::template_files::TemplateFile;
use wabridge_graph::GraphTemplateAdmin;
use wabridge_sqlite::{Db, SqliteTemplateHistory};

use meta::*;

/// The worked examples, copied to a folder the test may change.
fn example_folder() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let src = wabridge_tests::workspace_root().join("docs/templates");
    copy_dir(&src, dir.path());
    dir
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}

/// The template files of `dir` and their samples, as the CLI reads them.
struct Files {
    files: Vec<(String, TemplateFile, BTreeMap<String, String>)>,
    samples: BTreeMap<(String, String), Sample>,
}

impl Files {
    fn read(dir: &Path) -> Files {
        let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "toml"))
            .collect();
        paths.sort();
        let mut out = Files {
            files: Vec::new(),
            samples: BTreeMap::new(),
        };
        for p in paths {
            let t =
                TemplateFile::parse(&p.display().to_string(), &std::fs::read(&p).unwrap()).unwrap();
            let mut shas = BTreeMap::new();
            for (lang, c) in &t.languages {
                if let Some(sample) = c.header.as_ref().and_then(|h| h.sample.as_deref()) {
                    let bytes = std::fs::read(dir.join(sample)).unwrap();
                    shas.insert(lang.clone(), hex::encode(Sha256::digest(&bytes)));
                    out.samples.insert(
                        (t.name.clone(), lang.clone()),
                        Sample {
                            file_name: sample.rsplit('/').next().unwrap().to_string(),
                            mime: Sample::mime_for(sample).unwrap(),
                            bytes,
                        },
                    );
                }
            }
            out.files.push((p.display().to_string(), t, shas));
        }
        out
    }

    fn locals(&self) -> Vec<Local<'_>> {
        self.files
            .iter()
            .map(|(f, t, shas)| Local {
                file: f,
                template: t,
                sample_sha256: shas.clone(),
            })
            .collect()
    }
}

fn config(url: &str) -> TemplateSyncConfig {
    TemplateSyncConfig::from_lookup(|n| match n {
        "WHATSAPP_ACCESS_TOKEN" => Some(TOKEN.into()),
        "WHATSAPP_BUSINESS_ACCOUNT_ID" => Some(WABA.into()),
        "WHATSAPP_API_URL" => Some(url.into()),
        _ => None,
    })
    .unwrap()
}

fn admin(url: &str) -> GraphTemplateAdmin {
    GraphTemplateAdmin::new(config(url), Some(APP.into()))
}

fn history() -> (tempfile::TempDir, Db, Arc<SqliteTemplateHistory>) {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path().join("wabridge.db")).unwrap();
    let h = Arc::new(SqliteTemplateHistory::new(db.clone()));
    (dir, db, h)
}
