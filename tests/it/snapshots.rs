//! Published snapshots: verified load of damaged files, atomic publish under SIGKILL and
//! concurrent publishers, the run catalog (runs, diff, gc), and reading groups with a
//! roaring implementation other than roaring-rs.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use cohort::Snapshot;
use serde_json::Value;

use super::harness::{runtime, sample_project, Project};

fn latest_run_dir(publish: &Path) -> PathBuf {
    let latest = std::fs::read_to_string(publish.join("LATEST")).unwrap();
    publish.join("runs").join(latest.trim())
}

fn open(publish: &Path) -> cohort::Result<Snapshot> {
    Ok(runtime().block_on(Snapshot::open(&publish.display().to_string()))?)
}

fn members(snapshot: &Snapshot, group: &str) -> BTreeSet<String> {
    snapshot
        .bitmap(group)
        .unwrap()
        .iter()
        .map(|bit| snapshot.external_id(bit))
        .collect()
}

/// The run ids `cohort runs` lists, newest first.
fn run_ids(p: &Project) -> Vec<String> {
    let runs = p.cohort(&["runs", "--format=json"]).ok().json();
    runs["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["run_id"].as_str().unwrap().to_string())
        .collect()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

fn edit_manifest(run: &Path, edit: impl FnOnce(&mut Value)) {
    let path = run.join("manifest.json");
    let mut manifest: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    edit(&mut manifest);
    std::fs::write(path, serde_json::to_vec(&manifest).unwrap()).unwrap();
}

fn flip_byte(path: &Path, at: f64) {
    let mut bytes = std::fs::read(path).unwrap();
    let i = ((bytes.len() as f64) * at) as usize;
    bytes[i] ^= 0x5a;
    std::fs::write(path, bytes).unwrap();
}

fn truncate(path: &Path) {
    let bytes = std::fs::read(path).unwrap();
    std::fs::write(path, &bytes[..bytes.len() / 2]).unwrap();
}

type Damage = fn(&Path, &Path);

#[test]
fn damaged_snapshots_are_refused_with_a_clear_error() {
    let p = sample_project("string");
    p.cohort(&["run", "--as-of=2026-11-22T00:00:00Z"]).ok();
    let published = p.path("snapshots");
    open(&published).expect("the undamaged run loads");

    // (what is damaged, how, a fragment the error must contain)
    let cases: &[(&str, Damage, &str)] = &[
        (
            "bitmaps truncated",
            |_, run| truncate(&run.join("groups.bin")),
            "past the end",
        ),
        (
            "a byte flipped in the bitmaps",
            |_, run| flip_byte(&run.join("groups.bin"), 0.5),
            "checksum mismatch",
        ),
        (
            "bitmaps file missing",
            |_, run| std::fs::remove_file(run.join("groups.bin")).unwrap(),
            "groups.bin",
        ),
        (
            "a byte flipped in the id dictionary",
            |_, run| flip_byte(&run.join("ids.parquet"), 0.5),
            "id dictionary 'ids.parquet': checksum mismatch",
        ),
        (
            "id dictionary truncated",
            |_, run| truncate(&run.join("ids.parquet")),
            "checksum mismatch",
        ),
        (
            "a byte flipped in the id hash",
            |_, run| flip_byte(&run.join("ids.phf"), 0.5),
            "id hash 'ids.phf': checksum mismatch",
        ),
        (
            "id hash missing",
            |_, run| std::fs::remove_file(run.join("ids.phf")).unwrap(),
            "ids.phf",
        ),
        (
            "checksummed id hash that does not fit the dictionary",
            |_, run| {
                // Swap two pilots and checksum the result: intact bytes, wrong answers.
                let mut bytes = std::fs::read(run.join("ids.phf")).unwrap();
                bytes.swap(40, 42);
                bytes.swap(41, 43);
                if bytes[40..42] == bytes[42..44] {
                    bytes[40] ^= 1;
                }
                std::fs::write(run.join("ids.phf"), &bytes).unwrap();
                edit_manifest(run, |m| {
                    m["id_mapping"]["hash_index"]["checksum"] =
                        cohort::snapshot::manifest::checksum(&bytes).into();
                })
            },
            "does not lead id",
        ),
        (
            "manifest is not JSON",
            |_, run| std::fs::write(run.join("manifest.json"), b"\x00\x01garbage").unwrap(),
            "not a Cohort manifest",
        ),
        (
            "manifest of another tool",
            |_, run| std::fs::write(run.join("manifest.json"), br#"{"version": 1}"#).unwrap(),
            "not a Cohort manifest",
        ),
        (
            "manifest from a future format",
            |_, run| edit_manifest(run, |m| m["format_version"] = 2.into()),
            "format version 2 is not supported",
        ),
        (
            "member count disagrees",
            |_, run| {
                edit_manifest(run, |m| {
                    let n = m["groups"][0]["members"].as_u64().unwrap();
                    m["groups"][0]["members"] = (n + 1).into();
                })
            },
            "manifest says",
        ),
        (
            "bitmap range points outside the run",
            |_, run| edit_manifest(run, |m| m["groups"][0]["bitmap"]["path"] = "../x".into()),
            "points outside the run",
        ),
        (
            "checksummed bytes that are not a roaring bitmap",
            |_, run| {
                let garbage = [0xffu8; 24];
                let mut bytes = std::fs::read(run.join("groups.bin")).unwrap();
                let start = bytes.len();
                bytes.extend_from_slice(&garbage);
                std::fs::write(run.join("groups.bin"), bytes).unwrap();
                edit_manifest(run, |m| {
                    m["groups"][0]["bitmap"] = serde_json::json!({
                        "path": "groups.bin",
                        "offset": start,
                        "length": garbage.len(),
                        "checksum": cohort::snapshot::manifest::checksum(&garbage),
                    });
                })
            },
            "not a roaring bitmap",
        ),
        (
            "customer count disagrees with the dictionary",
            |_, run| edit_manifest(run, |m| m["customers"] = 5.into()),
            "holds 3000 ids",
        ),
        (
            "LATEST names a run that does not exist",
            |publish, _| {
                std::fs::write(publish.join("LATEST"), "20260101T000000Z-000000000000\n").unwrap()
            },
            "has no manifest.json",
        ),
        (
            "LATEST holds garbage",
            |publish, _| std::fs::write(publish.join("LATEST"), "../../etc/passwd").unwrap(),
            "does not hold a run id",
        ),
    ];
    for (what, damage, expected) in cases {
        let scratch = tempfile::tempdir().unwrap();
        let publish = scratch.path().join("snapshots");
        copy_dir(&published, &publish);
        damage(&publish, &latest_run_dir(&publish));
        let message = match open(&publish) {
            Ok(_) => panic!("{what}: a damaged snapshot loaded"),
            Err(e) => e.to_string(),
        };
        assert!(
            message.contains(expected),
            "{what}: expected '{expected}' in: {message}"
        );
    }

    // The CLI says the same and exits 1.
    flip_byte(&latest_run_dir(&published).join("groups.bin"), 0.3);
    let out = p.cohort(&["check", "vip", "C00000007"]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(out.stderr.contains("checksum mismatch"), "{}", out.stderr);
}

/// `cohort run` on the sample project with its own `--as-of` (so every run is new).
fn publishing_run(p: &Project, day: u32) -> Command {
    let mut command = p.command(&["run", &format!("--as-of=2026-10-{day:02}T00:00:00Z")]);
    command
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    command
}

#[test]
fn sigkill_at_any_moment_leaves_latest_on_a_complete_run() {
    let p = sample_project("string");
    let publish = p.path("snapshots");
    // How long an undisturbed publishing run takes here.
    let started = Instant::now();
    assert!(publishing_run(&p, 1).status().unwrap().success());
    let full = started.elapsed();
    let mut seen = BTreeSet::new();
    let kills = 24;
    for i in 0..kills {
        let mut child = publishing_run(&p, 2 + i).spawn().unwrap();
        // Spread the kills over the whole run, start to finish.
        std::thread::sleep(full.mul_f64(i as f64 / (kills - 1) as f64));
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();
        let snapshot = open(&publish)
            .unwrap_or_else(|e| panic!("after a kill at step {i}, LATEST does not load: {e}"));
        assert_eq!(snapshot.manifest().customers, 3000);
        seen.insert(snapshot.run_id().to_string());
    }
    // Readers always found a complete run; killed runs never became LATEST half-written.
    assert!(!seen.is_empty());
    // And the next undisturbed run publishes normally over whatever the kills left.
    assert!(publishing_run(&p, 30).status().unwrap().success());
    let last = open(&publish).unwrap();
    assert!(last.manifest().as_of.starts_with("2026-10-30"));
}

#[test]
fn concurrent_publishers_leave_latest_on_one_complete_run() {
    let p = sample_project("int");
    let publish = p.path("snapshots");
    let mut children: Vec<_> = (1..=3)
        .map(|day| publishing_run(&p, day).spawn().unwrap())
        .collect();
    for child in &mut children {
        assert!(child.wait().unwrap().success());
    }
    let snapshot = open(&publish).unwrap();
    let runs = p.cohort(&["runs", "--format=json"]).ok().json();
    let runs = runs["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 3, "each publisher wrote its own complete run");
    assert!(runs.iter().all(|r| r["complete"] == true));
    assert!(runs.iter().any(|r| r["run_id"] == snapshot.run_id()));
}

#[test]
fn rerun_with_the_same_inputs_is_idempotent() {
    let p = sample_project("int");
    let first = p
        .cohort(&["run", "--as-of=2026-11-01T00:00:00Z", "--format=json"])
        .ok()
        .json();
    let run = latest_run_dir(&p.path("snapshots"));
    let bytes = std::fs::read(run.join("groups.bin")).unwrap();
    let manifest = std::fs::read(run.join("manifest.json")).unwrap();
    let second = p
        .cohort(&["run", "--as-of=2026-11-01T00:00:00Z", "--format=json"])
        .ok()
        .json();
    assert_eq!(first["run_id"], second["run_id"]);
    assert_eq!(std::fs::read(run.join("groups.bin")).unwrap(), bytes);
    assert_eq!(std::fs::read(run.join("manifest.json")).unwrap(), manifest);
    let runs = p.cohort(&["runs", "--format=json"]).ok().json();
    assert_eq!(runs["runs"].as_array().unwrap().len(), 1);
}

#[test]
fn diff_matches_members_by_external_id_across_different_dictionaries() {
    let p = sample_project("string");
    p.cohort(&["run", "--as-of=2026-11-01T00:00:00Z"]).ok();
    // The next day's table lost customers and gained others: a different dictionary.
    p.cohort(&[
        "gen",
        "--customers",
        "3500",
        "--id-type",
        "string",
        "--seed",
        "8",
        "--out",
        "data",
    ])
    .ok();
    p.cohort(&["run", "--as-of=2026-11-02T00:00:00Z"]).ok();
    let ids = run_ids(&p);
    let (new_id, old_id) = (&ids[0], &ids[1]);
    let rt = runtime();
    let publish = p.path("snapshots").display().to_string();
    let old = rt.block_on(Snapshot::open_run(&publish, old_id)).unwrap();
    let new = rt.block_on(Snapshot::open_run(&publish, new_id)).unwrap();
    assert!(!old.same_id_space(&new));

    let diff = p.cohort(&["diff", "--format=json"]).ok().json();
    assert_eq!(&diff["from"], old_id.as_str());
    assert_eq!(&diff["to"], new_id.as_str());
    for entry in diff["groups"].as_array().unwrap() {
        let group = entry["group"].as_str().unwrap();
        let (before, after) = (members(&old, group), members(&new, group));
        let entered: BTreeSet<String> = after.difference(&before).cloned().collect();
        let exited: BTreeSet<String> = before.difference(&after).cloned().collect();
        assert_eq!(entry["entered"], entered.len(), "{group}");
        assert_eq!(entry["exited"], exited.len(), "{group}");
        assert_eq!(
            entry["unchanged"],
            before.intersection(&after).count(),
            "{group}"
        );
        for (change, expected) in [("entered", &entered), ("exited", &exited)] {
            let listed = p
                .cohort(&["diff", "--group", group, "--list", change, "--format=json"])
                .ok()
                .json();
            let listed: BTreeSet<String> = listed["customer_ids"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_str().unwrap().to_string())
                .collect();
            assert_eq!(&listed, expected, "{group} {change}");
        }
    }
    let unknown = p.cohort(&["diff", "--group", "nope"]);
    assert_eq!(unknown.code, 2);
}

#[test]
fn gc_keeps_the_newest_runs_and_never_the_latest() {
    let p = sample_project("int");
    for day in 1..=4 {
        p.cohort(&["run", &format!("--as-of=2026-11-0{day}T00:00:00Z")])
            .ok();
    }
    // Point LATEST back at the oldest run (a rollback): gc must keep it.
    let ids = run_ids(&p);
    assert_eq!(ids.len(), 4);
    let oldest = ids.last().unwrap().clone();
    std::fs::write(p.path("snapshots/LATEST"), format!("{oldest}\n")).unwrap();

    let dry = p
        .cohort(&[
            "gc",
            "--keep=1",
            "--min-age=0s",
            "--dry-run",
            "--format=json",
        ])
        .ok()
        .json();
    assert_eq!(dry["deleted"].as_array().unwrap().len(), 2);
    assert_eq!(
        p.cohort(&["runs", "--format=json"]).ok().json()["runs"]
            .as_array()
            .unwrap()
            .len(),
        4
    );

    let gc = p
        .cohort(&["gc", "--keep=1", "--min-age=0s", "--format=json"])
        .ok()
        .json();
    let kept: BTreeSet<&str> = gc["kept"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(kept, BTreeSet::from([ids[0].as_str(), oldest.as_str()]));
    p.cohort(&["check", "vip", "7"]).ok();
    let gc = p
        .cohort(&["gc", "--keep=0", "--min-age=0s", "--format=json"])
        .ok()
        .json();
    assert_eq!(gc["kept"], serde_json::json!([oldest]));
    p.cohort(&["check", "vip", "7"]).ok();
}

/// The committed golden snapshot: inputs, the published run, and the expected members.
fn golden() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

/// A project over the golden inputs, published fresh.
fn golden_project() -> Project {
    let p = Project::new();
    copy_dir(&golden().join("queries"), &p.path("queries"));
    std::fs::copy(
        golden().join("customers.parquet"),
        p.path("customers.parquet"),
    )
    .unwrap();
    p.cohort(&[
        "run",
        "--customers=customers.parquet",
        "--as-of=2026-11-22T00:00:00Z",
    ])
    .ok();
    p
}

fn expected_members() -> Value {
    serde_json::from_slice(&std::fs::read(golden().join("expected.json")).unwrap()).unwrap()
}

#[test]
fn golden_snapshot_is_byte_stable_and_loads() {
    let p = golden_project();
    let fresh = latest_run_dir(&p.path("snapshots"));
    let committed = latest_run_dir(&golden().join("snapshot"));
    // (The run ids differ: they cover the source files' paths and modification times.)
    for file in ["groups.bin", "ids.phf"] {
        assert_eq!(
            std::fs::read(fresh.join(file)).unwrap(),
            std::fs::read(committed.join(file)).unwrap(),
            "{file} is byte-identical to the committed golden file"
        );
    }
    let manifest = |run: &Path| -> Value {
        serde_json::from_slice(&std::fs::read(run.join("manifest.json")).unwrap()).unwrap()
    };
    assert_eq!(manifest(&fresh)["groups"], manifest(&committed)["groups"]);
    assert_eq!(manifest(&fresh)["id_mapping"]["kind"], "dictionary");
    let snapshot = open(&golden().join("snapshot")).unwrap();
    let expected = expected_members();
    for g in snapshot.groups() {
        let want: BTreeSet<String> = expected[&g.id]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect();
        assert_eq!(members(&snapshot, &g.id), want, "{}", g.id);
    }
}

/// Runs from before the perfect hash (a sorted dictionary, no `ids.phf`) load and answer
/// through the table built at load.
#[test]
fn runs_without_an_id_hash_still_load() {
    let before = golden().join("sorted-dictionary");
    let manifest = std::fs::read(latest_run_dir(&before).join("manifest.json")).unwrap();
    let manifest: Value = serde_json::from_slice(&manifest).unwrap();
    assert!(manifest["id_mapping"].get("hash_index").is_none());
    answers_the_expected_members(&before);
}

/// Runs whose perfect hash has the earlier parameters (buckets of ~4 ids, 1% spare slots)
/// load and answer: the parameters are in `ids.phf`'s header.
#[test]
fn runs_with_the_earlier_hash_parameters_still_load() {
    let before = golden().join("four-id-buckets");
    answers_the_expected_members(&before);
}

/// A committed run answers every expected member, through `members`, `contains` and the
/// Python reader.
fn answers_the_expected_members(publish: &Path) {
    let snapshot = open(publish).unwrap();
    let expected = expected_members();
    for g in snapshot.groups() {
        let want: BTreeSet<String> = expected[&g.id]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect();
        assert_eq!(members(&snapshot, &g.id), want, "{}", g.id);
        for id in &want {
            assert!(snapshot.contains(&g.id, id).unwrap(), "{} {id}", g.id);
        }
    }
    assert_eq!(read_with_pyroaring(publish), expected);
}

/// Reads every group with pyroaring (CRoaring) through the manifest alone.
fn read_with_pyroaring(publish: &Path) -> Value {
    let out = Command::new("python3")
        .arg(golden().join("read_snapshot.py"))
        .arg(publish)
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "tests/golden/read_snapshot.py failed (install the test tools with \
         `pip install -r tests/requirements.txt`):\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn pyroaring_reads_published_groups() {
    // The committed golden run, with a string-id dictionary.
    assert_eq!(
        read_with_pyroaring(&golden().join("snapshot")),
        expected_members()
    );
    // Fresh runs: identity mapping and dictionary mapping.
    for id_type in ["int", "string"] {
        let p = sample_project(id_type);
        p.cohort(&["run", "--as-of=2026-11-22T00:00:00Z"]).ok();
        let snapshot = open(&p.path("snapshots")).unwrap();
        let read = read_with_pyroaring(&p.path("snapshots"));
        for g in snapshot.groups() {
            let theirs: BTreeSet<String> = read[&g.id]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_str().unwrap().to_string())
                .collect();
            assert_eq!(theirs, members(&snapshot, &g.id), "{id_type} ids, {}", g.id);
        }
    }
}

#[test]
fn every_lookup_answers_like_the_published_bitmaps() {
    for id_type in ["int", "string"] {
        let p = sample_project(id_type);
        p.cohort(&["run"]).ok();
        let snapshot = open(&p.path("snapshots")).unwrap();
        let groups: Vec<(String, roaring::RoaringBitmap)> = snapshot
            .groups()
            .iter()
            .map(|g| (g.id.clone(), snapshot.bitmap(&g.id).unwrap()))
            .collect();
        // Every customer by external id, and ids the run does not hold.
        let bits = if id_type == "int" {
            let top = groups.iter().filter_map(|(_, b)| b.max()).max().unwrap();
            top + 3
        } else {
            snapshot.manifest().customers as u32
        };
        let mut ids: Vec<(Option<u32>, String)> = (0..bits)
            .map(|bit| (Some(bit), snapshot.external_id(bit)))
            .collect();
        ids.extend(["", "nobody", "-1", "C"].map(|id| (None, id.to_string())));
        let mut checks = Vec::new();
        let mut expected = Vec::new();
        for (bit, id) in &ids {
            let member_of: Vec<&str> = groups
                .iter()
                .filter(|(_, b)| bit.is_some_and(|bit| b.contains(bit)))
                .map(|(g, _)| g.as_str())
                .collect();
            assert_eq!(snapshot.groups_of(id), member_of, "{id_type} {id:?}");
            for (group, bitmap) in &groups {
                let member = bit.is_some_and(|bit| bitmap.contains(bit));
                assert_eq!(
                    snapshot.contains(group, id).unwrap(),
                    member,
                    "{group} {id:?}"
                );
                checks.push((group.as_str(), id.as_str()));
                expected.push(member);
            }
        }
        assert_eq!(snapshot.contains_many(&checks).unwrap(), expected);
        let unknown = snapshot.contains_many(&[(checks[0].0, "1"), ("nope", "1")]);
        assert!(unknown.unwrap_err().to_string().contains("'nope'"));
    }
}
