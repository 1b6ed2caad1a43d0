//! The dashboard in a real browser: headless Chromium (the Debian `chromium` package;
//! `.ci/run` installs it) loads the page from a real `cohort serve` on 127.0.0.1. Groups
//! and their counts render; a definition opened with a `/#build=<JSON>` link shows the
//! count `cohort size` gives for the same definition saved as a group file; groups of the
//! first run are marked new; a misspelt attribute shows its problem next to its
//! condition. Screenshots are kept under `<target>/dashboard-shots/`.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::harness::{skipped, SKIP};
use super::serve::{published, Server};

const AS_OF: &str = "2026-11-20T00:00:00Z";

/// How long one Chromium run may take before it is killed.
const BROWSER_DEADLINE: Duration = Duration::from_secs(90);

/// The Chromium binary on PATH, if any.
fn chromium() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    ["chromium", "chromium-browser", "google-chrome"]
        .iter()
        .flat_map(|name| std::env::split_paths(&path).map(move |dir| dir.join(name)))
        .find(|candidate| candidate.is_file())
}

/// Where screenshots go: `$CARGO_TARGET_DIR/dashboard-shots` (the target folder's).
fn shots_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_TARGET_TMPDIR"))
                .parent()
                .unwrap()
                .to_path_buf()
        });
    let dir = target.join("dashboard-shots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs headless Chromium on `url` with a fresh profile, `extra` flags last; its stdout.
/// Bounded: a browser that outlives [`BROWSER_DEADLINE`] is killed (by its PID).
fn run_chromium(browser: &Path, url: &str, extra: &[String]) -> String {
    let profile = tempfile::tempdir().unwrap();
    let mut child = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--disable-extensions",
            "--hide-scrollbars",
            "--lang=en-US",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(extra)
        .arg(url)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", browser.display()));
    let mut stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut out = String::new();
        let _ = stdout.read_to_string(&mut out);
        out
    });
    let started = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if started.elapsed() > BROWSER_DEADLINE {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium did not finish within {BROWSER_DEADLINE:?} on {url}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    reader.join().unwrap()
}

/// The DOM once the page has run for 5 s of virtual time (network waits don't count).
fn dump_dom(browser: &Path, url: &str) -> String {
    run_chromium(
        browser,
        url,
        &["--virtual-time-budget=5000".into(), "--dump-dom".into()],
    )
}

fn screenshot(browser: &Path, url: &str, file: &str, height: u32) -> PathBuf {
    let path = shots_dir().join(file);
    let _ = std::fs::remove_file(&path);
    run_chromium(
        browser,
        url,
        &[
            "--virtual-time-budget=5000".into(),
            format!("--window-size=1400,{height}"),
            format!("--screenshot={}", path.display()),
        ],
    );
    assert!(
        std::fs::metadata(&path).is_ok_and(|m| m.len() > 10_000),
        "screenshot {} was written",
        path.display()
    );
    path
}

/// `1234567` as the page writes it: `1,234,567`.
fn grouped(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The text of the first element after `from` that carries `marker` (up to its `<`).
fn text_after<'a>(dom: &'a str, from: &str, marker: &str) -> &'a str {
    let start = dom
        .find(from)
        .unwrap_or_else(|| panic!("no {from} in the page"));
    let rest = &dom[start..];
    let at = rest
        .find(marker)
        .unwrap_or_else(|| panic!("no {marker} after {from}"));
    let rest = &rest[at..];
    let open = rest.find('>').unwrap() + 1;
    let close = rest[open..].find('<').unwrap();
    &rest[open..open + close]
}

/// An attribute's value on the `<html>` element.
fn html_attribute<'a>(dom: &'a str, name: &str) -> Option<&'a str> {
    let html = &dom[dom.find("<html")?..];
    let html = &html[..html.find('>')?];
    let at = html.find(&format!(" {name}=\""))? + name.len() + 3;
    Some(&html[at..at + html[at..].find('"')?])
}

#[test]
fn serve_dashboard_renders_in_headless_chromium() {
    if skipped("chromium", "serve_dashboard_renders_in_headless_chromium") {
        return;
    }
    let browser = chromium().unwrap_or_else(|| {
        panic!(
            "no chromium on PATH: install it with `apt-get install -y chromium` \
             (scripts/test.sh does), or skip this test with {SKIP}=chromium"
        )
    });
    let p = published("int");
    let server = Server::start(&p, &["--as-of", AS_OF]);
    let base = format!("{}/", server.base);

    // 1. Every group renders with its count.
    let dom = dump_dom(&browser, &base);
    assert_eq!(html_attribute(&dom, "data-loaded"), Some("true"), "{dom}");
    assert_eq!(html_attribute(&dom, "data-rows-complete"), Some("true"));
    let groups = server.get_json("/v1/groups").1;
    let groups = groups["groups"].as_array().unwrap();
    assert_eq!(
        dom.matches("data-testid=\"group-row\"").count(),
        groups.len(),
        "one row per group"
    );
    for g in groups {
        let id = g["id"].as_str().unwrap();
        let cell = text_after(
            &dom,
            &format!("data-group-id=\"{id}\""),
            "data-testid=\"group-members\"",
        );
        assert_eq!(cell, grouped(g["members"].as_u64().unwrap()), "{id}");
        // The only run: each group is new, not "+0 −0".
        assert_eq!(
            text_after(
                &dom,
                &format!("data-group-id=\"{id}\""),
                "data-testid=\"group-new\""
            ),
            "new",
            "{id}"
        );
    }
    assert!(
        !dom.contains("entered since the previous run"),
        "no change shown without a previous run"
    );
    assert_eq!(
        html_attribute(&dom, "data-run-id"),
        server.get_json("/healthz").1["run_id"].as_str()
    );
    if let Some(ms) = html_attribute(&dom, "data-first-render-ms") {
        eprintln!(
            "first render (virtual time): {ms} ms for {} groups",
            groups.len()
        );
    }
    let shot = screenshot(&browser, &base, "groups.png", 1000);
    eprintln!("screenshot: {}", shot.display());

    // 2. A definition from a link: the live count is `cohort size`'s.
    let definition = json!({
        "include": [{"match": "all", "conditions": [
            {"attribute": "country", "op": "equals", "value": "United States"},
            {"attribute": "state", "op": "in", "values": ["Alaska", "Florida", "Texas", "California"]}]}],
        "exclude": [{"match": "any", "conditions": [
            {"attribute": "age", "op": "lt", "value": 18},
            {"attribute": "age", "op": "not_exists"}]}]
    });
    p.write("queries/from_the_page.json", &definition.to_string());
    let expected = p
        .cohort(&["size", "from_the_page", "--as-of", AS_OF, "--format=json"])
        .ok()
        .json();
    std::fs::remove_file(p.path("queries/from_the_page.json")).unwrap();
    let expected = expected["groups"][0]["members"].as_u64().unwrap();
    assert!(expected > 0);
    let link = format!("{base}#build={}", encode(&definition.to_string()));
    let dom = dump_dom(&browser, &link);
    assert_eq!(html_attribute(&dom, "data-size-state"), Some("ok"), "sized");
    let live = &dom[dom
        .find("data-testid=\"live-count\"")
        .expect("a live count")..];
    let live = &live[..live.find('>').unwrap()];
    assert!(
        live.contains(&format!("data-members=\"{expected}\"")),
        "live count {live} == cohort size {expected}"
    );
    assert_eq!(
        text_after(
            &dom,
            "data-testid=\"live-count\"",
            "data-testid=\"live-count\""
        ),
        grouped(expected)
    );
    let shot = screenshot(&browser, &link, "build.png", 1100);
    eprintln!("screenshot: {}", shot.display());

    // 3. A misspelt attribute: its problem, with the hint, on its condition's row.
    let bad = json!({"include": [{"match": "all", "conditions": [
        {"attribute": "country", "op": "equals", "value": "Canada"},
        {"attribute": "agee", "op": "gte", "value": 18}]}]});
    let link = format!("{base}#build={}", encode(&bad.to_string()));
    let dom = dump_dom(&browser, &link);
    assert_eq!(html_attribute(&dom, "data-size-state"), Some("error"));
    let row = dom
        .find("data-path=\"include[0].conditions[1]\"")
        .expect("the condition's row");
    let problem = &dom[row..];
    let problem = &problem[problem
        .find("data-testid=\"problem\"")
        .expect("a problem on the row")..];
    let problem = &problem[..problem.find("</div>").unwrap()];
    assert!(
        problem.contains("unknown attribute 'agee'") && problem.contains("did you mean 'age'?"),
        "{problem}"
    );
    assert!(
        !problem.contains("<code>"),
        "shown on the row, not in the general box: {problem}"
    );
    assert_eq!(
        dom.matches("data-testid=\"problem\"").count(),
        1,
        "one problem, on that row"
    );
    let shot = screenshot(&browser, &link, "build-problem.png", 900);
    eprintln!("screenshot: {}", shot.display());

    // The API the page used agrees.
    let (status, answer): (u16, Value) = server.post("/v1/size", &bad.to_string());
    assert_eq!(status, 422);
    assert_eq!(answer["problems"][0]["path"], "include[0].conditions[1]");
}
