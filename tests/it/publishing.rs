//! Publishing never silently changes what services see: `run --only` carries the other
//! groups over, backfills don't move `LATEST`, `gc` can't race a publish, and manifests that
//! contradict themselves are refused.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use cohort::Snapshot;
use datafusion::arrow::array::{ArrayRef, Int64Array, StringArray};
use datafusion::arrow::record_batch::RecordBatch;
use serde_json::Value;

use super::harness::{runtime, sample_project, test_manifest, Project};

fn latest(p: &Project) -> String {
    std::fs::read_to_string(p.path("snapshots/LATEST"))
        .unwrap()
        .trim()
        .to_string()
}

fn manifest(p: &Project, run: &str) -> Value {
    let path = p.path(&format!("snapshots/runs/{run}/manifest.json"));
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

fn group<'a>(manifest: &'a Value, id: &str) -> &'a Value {
    manifest["groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["id"] == id)
        .unwrap_or_else(|| panic!("no group '{id}' in {manifest}"))
}

fn group_ids(manifest: &Value) -> BTreeSet<String> {
    manifest["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["id"].as_str().unwrap().to_string())
        .collect()
}

fn open(p: &Project) -> Snapshot {
    let url = p.path("snapshots").display().to_string();
    runtime().block_on(Snapshot::open(&url)).unwrap()
}

fn members(snapshot: &Snapshot, group: &str) -> BTreeSet<String> {
    let bitmap = snapshot.bitmap(group).unwrap();
    bitmap.iter().map(|b| snapshot.external_id(b)).collect()
}

#[test]
fn run_only_carries_every_other_group_over_unchanged() {
    let p = sample_project("int");
    let first = p
        .cohort(&["run", "--as-of=2026-11-01T00:00:00Z", "--format=json"])
        .ok()
        .json();
    let first_id = first["run_id"].as_str().unwrap().to_string();
    let before = manifest(&p, &first_id);

    let second = p
        .cohort(&[
            "run",
            "--only=vip",
            "--as-of=2026-11-02T00:00:00Z",
            "--format=json",
        ])
        .ok()
        .json();
    let second_id = second["run_id"].as_str().unwrap().to_string();
    assert_ne!(first_id, second_id);
    assert_eq!(latest(&p), second_id);
    let after = manifest(&p, &second_id);
    assert_eq!(
        group_ids(&after),
        group_ids(&before),
        "no audience vanished"
    );
    for g in before["groups"].as_array().unwrap() {
        let id = g["id"].as_str().unwrap();
        let now = group(&after, id);
        if id == "vip" {
            assert!(now.get("carried_from").is_none(), "vip was evaluated");
            continue;
        }
        for key in ["members", "definition_hash", "name"] {
            assert_eq!(now[key], g[key], "{id}: {key}");
        }
        assert_eq!(now["bitmap"]["checksum"], g["bitmap"]["checksum"], "{id}");
        assert_eq!(now["carried_from"], first_id.as_str(), "{id}");
        assert_eq!(now["as_of"], "2026-11-01T00:00:00Z", "{id}");
    }
    let reported: BTreeSet<&str> = second["groups"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|g| g["carried"] == true)
        .map(|g| g["group"].as_str().unwrap())
        .collect();
    assert_eq!(
        reported.len(),
        before["groups"].as_array().unwrap().len() - 1
    );
    // Carried groups answer like they did.
    let (old, new) = (
        runtime()
            .block_on(Snapshot::open_run(
                &p.path("snapshots").display().to_string(),
                &first_id,
            ))
            .unwrap(),
        open(&p),
    );
    for g in old.groups() {
        assert_eq!(members(&new, &g.id), members(&old, &g.id), "{}", g.id);
    }
    // A carried group carried again still names the run that evaluated it.
    let third = p
        .cohort(&[
            "run",
            "--only=vip",
            "--as-of=2026-11-03T00:00:00Z",
            "--format=json",
        ])
        .ok()
        .json();
    let third = manifest(&p, third["run_id"].as_str().unwrap());
    let carried = group(&third, "us_adults");
    assert_eq!(carried["carried_from"], first_id.as_str());
    assert_eq!(carried["as_of"], "2026-11-01T00:00:00Z");
}

/// A small project over string ids, written by hand.
fn string_project(ids: &[&str], ages: &[i64]) -> Project {
    let p = Project::new();
    write_customers(&p, ids, ages);
    p.write(
        "queries/adults.toml",
        "[[include]]\nconditions = [{ attribute = \"age\", op = \">=\", value = 18 }]\n",
    );
    p.write(
        "queries/teens.toml",
        "[[include]]\nconditions = [{ attribute = \"age\", op = \"<\", value = 18 }]\n",
    );
    p.write("cohort.toml", "customers = \"customers.parquet\"\n");
    p
}

fn write_customers(p: &Project, ids: &[&str], ages: &[i64]) {
    let batch = RecordBatch::try_from_iter(vec![
        (
            "customer_id",
            Arc::new(StringArray::from(ids.to_vec())) as ArrayRef,
        ),
        ("age", Arc::new(Int64Array::from(ages.to_vec())) as ArrayRef),
    ])
    .unwrap();
    p.write_parquet("customers.parquet", &batch);
}

#[test]
fn run_only_translates_carried_groups_when_the_customers_changed() {
    let p = string_project(&["a", "b", "c", "d"], &[30, 40, 10, 50]);
    p.cohort(&["run", "--as-of=2026-11-01"]).ok();
    // "b" leaves, "e" arrives: the dictionary differs, so bits differ.
    write_customers(&p, &["a", "c", "d", "e"], &[30, 10, 50, 60]);
    p.cohort(&["run", "--only=teens", "--as-of=2026-11-02"])
        .ok();
    let snapshot = open(&p);
    // adults is carried (not re-evaluated: "e" is not in it), translated by id, "b" dropped.
    assert_eq!(
        members(&snapshot, "adults"),
        BTreeSet::from(["a".to_string(), "d".to_string()])
    );
    assert_eq!(
        members(&snapshot, "teens"),
        BTreeSet::from(["c".to_string()])
    );
    assert!(
        snapshot
            .manifest()
            .warnings
            .iter()
            .any(|w| w.contains("'adults'") && w.contains("1 member(s)")),
        "{:?}",
        snapshot.manifest().warnings
    );
}

#[test]
fn a_full_run_removes_groups_whose_file_was_deleted_and_says_so() {
    let p = string_project(&["a", "b"], &[30, 10]);
    p.cohort(&["run", "--as-of=2026-11-01"]).ok();
    std::fs::remove_file(p.path("queries/teens.toml")).unwrap();
    // --only keeps it (carried over) ...
    p.cohort(&["run", "--only=adults", "--as-of=2026-11-02"])
        .ok();
    assert!(open(&p).cardinality("teens").is_some());
    // ... a full run removes it, and says so.
    let out = p.cohort(&["run", "--as-of=2026-11-03"]).ok();
    assert!(out.stderr.contains("removed: teens"), "{}", out.stderr);
    assert!(open(&p).cardinality("teens").is_none());
    let json = p
        .cohort(&["run", "--as-of=2026-11-04", "--format=json"])
        .ok()
        .json();
    assert_eq!(json["removed"], serde_json::json!([]));
}

#[test]
fn an_empty_definitions_folder_is_a_usage_error_and_publishes_nothing() {
    let p = string_project(&["a"], &[30]);
    std::fs::remove_file(p.path("queries/adults.toml")).unwrap();
    std::fs::remove_file(p.path("queries/teens.toml")).unwrap();
    let out = p.cohort(&["run"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains("no group definitions"),
        "{}",
        out.stderr
    );
    assert!(!p.path("snapshots").exists());
}

#[test]
fn a_backfill_is_published_without_moving_latest_unless_promoted() {
    let p = string_project(&["a", "b"], &[30, 10]);
    let run = |args: &[&str]| {
        let mut all = vec!["run", "--format=json"];
        all.extend_from_slice(args);
        p.cohort(&all).ok().json()
    };
    let newest = run(&["--as-of=2026-11-05"]);
    let backfill = run(&["--as-of=2026-11-03"]);
    assert_eq!(backfill["promoted"], false);
    assert!(backfill["not_promoted_because"]
        .as_str()
        .unwrap()
        .contains("older"));
    assert_eq!(latest(&p), newest["run_id"].as_str().unwrap());
    assert!(p
        .path(&format!(
            "snapshots/runs/{}/manifest.json",
            backfill["run_id"].as_str().unwrap()
        ))
        .exists());
    let text = p.cohort(&["run", "--as-of=2026-11-02"]).ok();
    assert!(text.stderr.contains("LATEST not moved"), "{}", text.stderr);

    let promoted = run(&["--as-of=2026-11-01", "--promote"]);
    assert_eq!(promoted["promoted"], true);
    assert_eq!(latest(&p), promoted["run_id"].as_str().unwrap());
    let never = run(&["--as-of=2026-11-09", "--no-promote"]);
    assert_eq!(never["promoted"], false);
    assert_eq!(latest(&p), promoted["run_id"].as_str().unwrap());

    let runs = p.cohort(&["runs", "--format=json"]).ok().json();
    let marked: Vec<&str> = runs["runs"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["latest"] == true)
        .map(|r| r["run_id"].as_str().unwrap())
        .collect();
    assert_eq!(marked, vec![promoted["run_id"].as_str().unwrap()]);
    let text = p.cohort(&["runs"]).ok();
    assert!(text.stdout.contains(&format!(
        "{} (LATEST)",
        promoted["run_id"].as_str().unwrap()
    )));
    let both = p.cohort(&["run", "--promote", "--no-promote"]);
    assert_eq!(both.code, 2);
}

/// Sets every file of a run folder's modification time `age` into the past.
fn backdate(dir: &Path, age: Duration) {
    let then = SystemTime::now() - age;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            let file = std::fs::File::options().write(true).open(&path).unwrap();
            file.set_modified(then).unwrap();
        }
    }
}

fn run_dir(p: &Project, run: &str) -> PathBuf {
    p.path(&format!("snapshots/runs/{run}"))
}

/// `gc --keep 1` racing an idempotent rerun (which rewrites an old run, then points
/// `LATEST` at it): whatever the interleaving, a run that exits 0 leaves `LATEST` on a
/// complete run that loads. Real processes, many trials.
#[test]
fn gc_racing_an_idempotent_rerun_never_leaves_latest_on_a_deleted_run() {
    let p = string_project(&["a", "b", "c"], &[30, 10, 50]);
    let old = p
        .cohort(&["run", "--as-of=2026-11-01", "--format=json"])
        .ok()
        .json()["run_id"]
        .as_str()
        .unwrap()
        .to_string();
    let trials = 12;
    for trial in 0..trials {
        // A newer run is LATEST; the old one is past --keep and older than --min-age.
        p.cohort(&["run", &format!("--as-of=2026-11-{:02}", 2 + trial)])
            .ok();
        if run_dir(&p, &old).exists() {
            backdate(&run_dir(&p, &old), Duration::from_secs(7200));
        }
        let rerun = p
            .command(&["run", "--as-of=2026-11-01", "--promote"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // Stagger gc over the rerun's lifetime.
        std::thread::sleep(Duration::from_millis(40 * trial as u64));
        let gc = p
            .command(&["gc", "--keep=1", "--min-age=1s"])
            .output()
            .unwrap();
        let rerun_out = rerun.wait_with_output().unwrap();
        assert!(
            gc.status.success(),
            "trial {trial}: gc failed: {}",
            String::from_utf8_lossy(&gc.stderr)
        );
        if rerun_out.status.success() {
            assert_eq!(latest(&p), old, "trial {trial}");
            let url = p.path("snapshots").display().to_string();
            runtime()
                .block_on(Snapshot::open(&url))
                .unwrap_or_else(|e| {
                    panic!("trial {trial}: LATEST names a run that does not load: {e}")
                });
        }
    }
}

#[test]
fn gc_removes_folders_completely_and_keeps_runs_it_cannot_read() {
    let p = string_project(&["a", "b"], &[30, 10]);
    for day in 1..=3 {
        p.cohort(&["run", &format!("--as-of=2026-11-0{day}")]).ok();
    }
    let runs = p.path("snapshots/runs");
    // A publish killed mid-way: no manifest, a temp file left behind.
    let ghost = runs.join("20261020T000000Z-000000000001");
    std::fs::create_dir_all(&ghost).unwrap();
    std::fs::write(ghost.join("groups.bin#12345"), b"partial").unwrap();
    std::fs::write(ghost.join("groups.bin"), b"partial").unwrap();
    // A run of a newer format.
    let future = runs.join("20261021T000000Z-000000000002");
    std::fs::create_dir_all(&future).unwrap();
    std::fs::write(
        future.join("manifest.json"),
        r#"{"format_version": 2, "run_id": "20261021T000000Z-000000000002"}"#,
    )
    .unwrap();
    for dir in std::fs::read_dir(&runs).unwrap() {
        backdate(&dir.unwrap().path(), Duration::from_secs(7200));
    }
    // Young runs are kept by default (--min-age 1h): backdated ones go.
    let gc = p.cohort(&["gc", "--keep=1", "--format=json"]).ok().json();
    let deleted: BTreeSet<&str> = gc["deleted"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(
        deleted.len(),
        3,
        "two old complete runs and the ghost: {gc}"
    );
    assert!(deleted.contains("20261020T000000Z-000000000001"));
    assert!(!ghost.exists(), "no empty folder or temp file is left");
    assert!(future.join("manifest.json").exists());
    assert_eq!(
        gc["unreadable"][0]["run_id"],
        "20261021T000000Z-000000000002"
    );
    let remaining: Vec<_> = std::fs::read_dir(&runs).unwrap().collect();
    assert_eq!(remaining.len(), 2, "LATEST's run and the unreadable one");
    // Nothing left to delete: nothing counted.
    let again = p
        .cohort(&["gc", "--keep=1", "--min-age=0s", "--format=json"])
        .ok()
        .json();
    assert_eq!(again["deleted"], serde_json::json!([]));
}

#[test]
fn a_manifest_that_names_another_run_or_repeats_a_group_is_refused() {
    let p = string_project(&["a", "b"], &[30, 10]);
    p.cohort(&["run", "--as-of=2026-11-01"]).ok();
    let run = latest(&p);
    let path = run_dir(&p, &run).join("manifest.json");
    let original = std::fs::read(&path).unwrap();
    type Edit = fn(&mut Value);
    let cases: &[(&str, Edit)] = &[
        ("names run", |m| {
            m["run_id"] = "20200101T000000Z-aaaaaaaaaaaa".into()
        }),
        ("appears twice", |m| {
            let first = m["groups"][0].clone();
            m["groups"].as_array_mut().unwrap().push(first);
        }),
    ];
    for (want, edit) in cases {
        let mut m: Value = serde_json::from_slice(&original).unwrap();
        edit(&mut m);
        std::fs::write(&path, serde_json::to_vec(&m).unwrap()).unwrap();
        let out = p.cohort(&["check", "adults", "a"]);
        assert_eq!(out.code, 1, "{want}: {}", out.stderr);
        assert!(out.stderr.contains(want), "{want}: {}", out.stderr);
    }
}

/// A run's bitmaps go out in parts as they are serialized, so a publish does not hold them
/// all: how they are split changes neither the run id nor what a reader loads, and no
/// staging folder is left behind, whether the run completes or not.
#[test]
fn groups_written_in_parts_give_the_run_id_and_members_of_one_file() {
    use cohort::snapshot::writer::{publish, Bits, EncodedIds, GroupHeader, Promote, RunWriter};
    use roaring::RoaringBitmap;
    let dir = tempfile::tempdir().unwrap();
    let bitmaps: Vec<RoaringBitmap> = vec![
        RoaringBitmap::new(),
        [7].into_iter().collect(),
        (0..5_000).map(|i| i * 37).collect(),
        (100..900_000).collect(),
        (0..300_000).filter(|i| i % 3 != 0).collect(),
        [(1 << 20) - 1].into_iter().collect(),
    ];
    let headers: Vec<GroupHeader> = (0..bitmaps.len())
        .map(|g| GroupHeader {
            id: format!("g{g}"),
            name: format!("Group {g}"),
            description: None,
            definition_hash: "sha256:test".into(),
            carried: None,
        })
        .collect();
    let location = |name: &str| {
        cohort::snapshot::location::resolve(&dir.path().join(name).display().to_string()).unwrap()
    };
    let ids = || EncodedIds::new("customer_id", None, None).unwrap();
    let rt = runtime();
    let groups: Vec<_> = headers
        .iter()
        .zip(&bitmaps)
        .map(|(header, b)| cohort::snapshot::writer::PublishedGroup {
            header: header.clone(),
            bits: Bits::Bitmap(b.clone()),
        })
        .collect();
    let whole = rt
        .block_on(publish(
            &location("whole"),
            test_manifest("2026-11-22T00:00:00Z", 1 << 20),
            &groups,
            ids(),
            Promote::Auto,
        ))
        .unwrap();
    let split = rt
        .block_on(async {
            let mut run = RunWriter::begin(
                &location("split"),
                test_manifest("2026-11-22T00:00:00Z", 1 << 20),
                &headers,
                ids(),
            )
            .with_part_bytes(1000);
            for b in &bitmaps {
                run.push(Bits::serialized(b)).await?;
            }
            run.finish(Promote::Auto).await
        })
        .unwrap();
    assert_eq!(split.manifest.run_id, whole.manifest.run_id);
    let run_id = &whole.manifest.run_id;
    let files = |name: &str| -> BTreeSet<String> {
        std::fs::read_dir(dir.path().join(name).join("runs").join(run_id))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect()
    };
    assert_eq!(
        files("whole"),
        ["groups.bin", "manifest.json"].map(String::from).into()
    );
    let parts: BTreeSet<String> = split
        .manifest
        .groups
        .iter()
        .map(|g| g.bitmap.path.clone())
        .collect();
    assert!(parts.len() >= 3, "{parts:?}");
    assert_eq!(
        files("split"),
        parts
            .iter()
            .cloned()
            .chain(["manifest.json".into()])
            .collect()
    );
    for name in ["whole", "split"] {
        let runs: Vec<_> = std::fs::read_dir(dir.path().join(name).join("runs"))
            .unwrap()
            .collect();
        assert_eq!(runs.len(), 1, "{name}: only the run, no staging folder");
        let snapshot = rt
            .block_on(Snapshot::open(&dir.path().join(name).display().to_string()))
            .unwrap();
        for (header, b) in headers.iter().zip(&bitmaps) {
            assert_eq!(
                snapshot.bitmap(&header.id).unwrap(),
                *b,
                "{name}: {}",
                header.id
            );
        }
    }
    // A run whose groups do not all come publishes nothing and leaves nothing.
    let short = rt.block_on(async {
        let mut run = RunWriter::begin(
            &location("short"),
            test_manifest("2026-11-23T00:00:00Z", 1 << 20),
            &headers,
            ids(),
        )
        .with_part_bytes(1000);
        for b in &bitmaps[..4] {
            run.push(Bits::serialized(b)).await?;
        }
        run.finish(Promote::Auto).await
    });
    let e = short.unwrap_err().to_string();
    assert!(
        e.contains("4 of the 6 groups announced were written"),
        "{e}"
    );
    let left: Vec<_> = std::fs::read_dir(dir.path().join("short/runs"))
        .unwrap()
        .collect();
    assert!(left.is_empty(), "{left:?}");
    assert!(!dir.path().join("short/LATEST").exists());
}
