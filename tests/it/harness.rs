//! Test harness: temp projects with real Parquet files, the library pipeline, and the real
//! `cohort` binary.

use std::path::{Path, PathBuf};
use std::process::Command;

use cohort::config::{Overrides, Settings};
use cohort::evaluate::statics::IdKey;
use cohort::{evaluate, pipeline};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::parquet::arrow::ArrowWriter;

pub const AS_OF: &str = "2026-11-22T00:00:00Z";

/// A temporary project folder.
pub struct Project {
    pub dir: tempfile::TempDir,
}

impl Project {
    pub fn new() -> Project {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("queries")).unwrap();
        Project { dir }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn write(&self, rel: &str, text: &str) {
        let path = self.path(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    pub fn write_parquet(&self, rel: &str, batch: &RecordBatch) {
        write_parquet(&self.path(rel), batch);
    }

    pub fn settings(&self) -> Settings {
        Settings::resolve(Overrides {
            config: Some(self.path("cohort.toml")).filter(|p| p.exists()),
            customers: Some(self.path("customers.parquet").display().to_string()),
            queries: Some(self.path("queries")),
            publish: Some(self.path("snapshots").display().to_string()),
            as_of: Some(AS_OF.into()),
            ..Default::default()
        })
        .unwrap()
    }

    /// Runs the real binary in the project folder.
    pub fn cohort(&self, args: &[&str]) -> Output {
        let out = Command::new(env!("CARGO_BIN_EXE_cohort"))
            .args(args)
            .current_dir(self.dir.path())
            .env("RUST_LOG", "warn")
            .output()
            .unwrap();
        Output {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Evaluates every group of the project through the library; members as sorted ids.
    pub async fn members(&self) -> Result<Vec<(String, Vec<IdKey>)>, cohort::Error> {
        let settings = self.settings();
        let ctx = evaluate::session();
        let validated = pipeline::validate(&ctx, &settings).await?;
        let progress = indicatif::ProgressBar::hidden();
        let e = pipeline::evaluate(
            &ctx,
            &settings,
            &validated.schema,
            &validated.groups,
            &[],
            &[],
            &progress,
        )
        .await?;
        let mut out: Vec<(String, Vec<IdKey>)> = e
            .compiled
            .groups
            .iter()
            .zip(&e.members)
            .map(|(g, m)| {
                let mut ids: Vec<IdKey> = m
                    .iter()
                    .map(|p| IdKey::of_row(&e.scan.ids, p as usize).unwrap())
                    .collect();
                ids.sort();
                (g.group.id.clone(), ids)
            })
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }
}

pub fn write_parquet(path: &Path, batch: &RecordBatch) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let file = std::fs::File::create(path).unwrap();
    let mut writer = ArrowWriter::try_new(file, batch.schema(), None).unwrap();
    writer.write(batch).unwrap();
    writer.close().unwrap();
}

pub struct Output {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}\nstderr: {}", self.stdout, self.stderr))
    }

    pub fn ok(self) -> Output {
        assert_eq!(
            self.code, 0,
            "stdout: {}\nstderr: {}",
            self.stdout, self.stderr
        );
        self
    }
}

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

pub fn int_ids(ids: &[i64]) -> Vec<IdKey> {
    ids.iter().map(|i| IdKey::Int(*i as i128)).collect()
}
